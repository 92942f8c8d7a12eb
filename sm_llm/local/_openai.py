"""OpenAI-format reference container (vLLM on SageMaker) and the shared chat writer.

The same chat/completions logic also answers TGI's Messages API and LMI's chat
schema; :class:`ChatStyle` captures how each server frames its stream. What a reply
holds is decided in ``_openai_plan`` and streams are written in ``_openai_stream``;
this module validates the request and builds the whole reply.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping
from typing import Any

from sm_llm.local._containers import (
    ContainerError,
    ContainerRequest,
    ContainerResponse,
    ModelInfo,
    json_response,
    parse_json_body,
)
from sm_llm.local._model import Generation, chat_prompt, count_words, generate
from sm_llm.local._openai_plan import (
    ToolCall,
    choose_tool,
    next_call_id,
    plan_reply,
    reasoning,
    text_generation,
    wants_reasoning,
)
from sm_llm.local._openai_stream import (
    OPENAI,
    ChatStyle,
    openai_finish,
    text_stream,
    tgi_stream,
    tool_call_stream,
    usage_counts,
)
from sm_llm.local._schema import ChatValidationError, schema_instance

__all__ = [
    "OPENAI",
    "ChatStyle",
    "ChatValidationError",
    "choose_tool",
    "openai_container",
    "run_openai",
    "schema_instance",
    "wants_reasoning",
]

_ids = itertools.count(1)


def _stop_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise ChatValidationError("'stop' must be a string or a list of strings")


def _positive_int(payload: Mapping[str, Any], names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = payload.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ChatValidationError(f"'{name}' must be a positive integer, got {value!r}")
        return value
    return default


def _check_temperature(value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise ChatValidationError(f"'temperature' must be a number in [0, 2], got {value!r}")


def _visible_text(generation: Generation, stops: list[str]) -> str:
    """vLLM drops the stop string and everything after it."""
    text = generation.text
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text



def _validate_messages(messages: Any) -> list[Mapping[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise ChatValidationError("'messages' must be a non-empty list")
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ChatValidationError("each message must be an object with a string 'role'")
    return messages


def run_openai(payload: Mapping[str, Any], model: ModelInfo, style: ChatStyle) -> ContainerResponse:
    """Answer a chat (``messages``) or completions (``prompt``) body in OpenAI format.

    Chat bodies may carry ``tools`` / ``tool_choice`` and ``response_format``: the
    reply is then a tool call (see :func:`choose_tool`, arguments from
    :func:`schema_instance`), ``"Tool result: ..."`` when the last message is a tool
    result, or the JSON text the format asks for. A chat body that asks for reasoning
    (:func:`wants_reasoning`) gets it first, in ``model.reasoning_field``, as vLLM's
    reasoning parsers put it (not in TGI's chunks: TGI has no reasoning parser).
    """
    chat = "messages" in payload
    messages: list[Mapping[str, Any]] = []
    if chat:
        messages = _validate_messages(payload.get("messages"))
        prompt, words = chat_prompt(messages)
    elif "prompt" in payload:
        raw = payload["prompt"]
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        if not isinstance(raw, str):
            raise ChatValidationError("'prompt' must be a string")
        prompt, words = raw, count_words(raw)
    else:
        raise ChatValidationError(
            "Request body matches none of the supported request types: "
            "ChatCompletionRequest (messages), CompletionRequest (prompt)"
        )
    stops = _stop_list(payload.get("stop"))
    _check_temperature(payload.get("temperature"))
    max_tokens = _positive_int(
        payload, ("max_tokens", "max_completion_tokens"), 256 if chat else 16
    )
    n = _positive_int(payload, ("n",), 1)
    plan = plan_reply(payload, messages, prompt) if chat else None
    call = plan if isinstance(plan, ToolCall) else None
    if call is not None:
        tokens = call.completion_tokens()
        generation = Generation([call.arguments], call.arguments, "eos", words, tokens)
    elif isinstance(plan, str):
        generation = text_generation(plan, max_tokens=max_tokens, stops=stops, prompt_tokens=words)
    else:
        generation = generate(
            prompt, max_tokens=max_tokens, stop=stops, greeting=model.greeting, prompt_tokens=words
        )
    thinking = reasoning(payload, prompt, model) if chat and not style.tgi_chunks else None
    if thinking is not None:  # reasoning tokens are completion tokens, as vLLM counts them
        tokens = generation.completion_tokens + len(thinking.pieces)
        generation = dataclasses.replace(generation, completion_tokens=tokens)
    visible = _visible_text(generation, stops)
    head = {
        "id": f"{style.id_prefix}{next(_ids)}",
        "object": ("chat.completion" if chat else "text_completion"),
        "created": int(time.time()),
        "model": model.model_id,
    }
    if payload.get("stream") is True:
        options = payload.get("stream_options")
        usage = isinstance(options, Mapping) and options.get("include_usage") is True
        if style.tgi_chunks and chat:
            pieces = tgi_stream(head, call, generation, visible, style, usage)
        elif call is not None:
            pieces = tool_call_stream(head, call, generation, style, usage, n, thinking)
        else:
            pieces = text_stream(head, chat, generation, visible, style, usage, n, thinking)
        return ContainerResponse(200, style.content_type, pieces)
    choices: list[dict[str, Any]] = []
    for index in range(n):
        choice: dict[str, Any] = {"index": index}
        finish = openai_finish(generation)
        if call is not None:
            tool_call = call.wire(next_call_id())
            choice["message"] = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
            finish = "tool_calls"
        elif chat:
            choice["message"] = {"role": "assistant", "content": visible}
        else:
            choice["text"] = visible
        if thinking is not None:
            choice["message"][thinking.field] = thinking.text
        choice.update(logprobs=None, finish_reason=finish)
        choices.append(choice)
    body = {**head, "choices": choices, "usage": usage_counts(generation, n), **dict(style.extra)}
    return json_response(200, body)


def _error(message: str) -> ContainerError:
    return ContainerError(
        400, {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}
    )


def openai_container(request: ContainerRequest) -> ContainerResponse:
    """The vLLM OpenAI-compatible server behind SageMaker's ``/invocations``."""
    payload = parse_json_body(request.body, _error)
    if not isinstance(payload, dict):
        raise _error("request body must be a JSON object")
    try:
        return run_openai(payload, request.model, OPENAI)
    except ChatValidationError as exc:
        raise _error(str(exc)) from exc
