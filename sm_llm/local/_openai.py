"""OpenAI-format reference container (vLLM on SageMaker) and the shared chat writer.

The same chat/completions logic also answers TGI's Messages API and LMI's chat
schema; :class:`ChatStyle` captures how each server frames its stream.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sm_llm.local._containers import (
    ContainerError,
    ContainerRequest,
    ContainerResponse,
    ModelInfo,
    Piece,
    compact_json,
    json_response,
    parse_json_body,
)
from sm_llm.local._model import Generation, chat_prompt, count_words, generate

__all__ = ["OPENAI", "ChatStyle", "ChatValidationError", "openai_container", "run_openai"]

_ids = itertools.count(1)


class ChatValidationError(Exception):
    """A bad chat/completions request; each container reports it in its own error format."""


@dataclass(frozen=True)
class ChatStyle:
    """How a server frames OpenAI-format streams.

    ``sse``: ``data:`` lines (else bare JSON lines); ``space`` after ``data:``;
    ``done``: a final ``[DONE]`` event; ``extra``: members added to every object.
    """

    sse: bool = True
    space: bool = True
    done: bool = True
    content_type: str = "text/event-stream"
    id_prefix: str = "chatcmpl-"
    extra: tuple[tuple[str, Any], ...] = ()

    def frame(self, obj: Mapping[str, Any]) -> bytes:
        """One stream record."""
        data = compact_json({**obj, **dict(self.extra)})
        if not self.sse:
            return data + b"\n"
        return (b"data: " if self.space else b"data:") + data + b"\n\n"

    def done_frame(self) -> bytes:
        """The end-of-stream record (empty when the style has none)."""
        if not (self.sse and self.done):
            return b""
        return b"data: [DONE]\n\n" if self.space else b"data:[DONE]\n\n"


OPENAI = ChatStyle()


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


def _deltas(generation: Generation, visible: str) -> list[str]:
    out, used = [], 0
    for token in generation.tokens:
        piece = token[: max(0, len(visible) - used)]
        used += len(piece)
        if piece:
            out.append(piece)
    return out


def _finish(generation: Generation) -> str:
    return "length" if generation.finish_reason == "length" else "stop"


def _usage(generation: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
    }


def _tool_calls(payload: Mapping[str, Any], prompt: str) -> list[dict[str, Any]] | None:
    """TOOL-CALLING HOOK: return OpenAI ``tool_calls`` to answer with instead of text.

    Not implemented yet: ``tools`` / ``tool_choice`` are accepted and ignored.
    """
    del payload, prompt
    return None


def _validate_messages(messages: Any) -> list[Mapping[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise ChatValidationError("'messages' must be a non-empty list")
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ChatValidationError("each message must be an object with a string 'role'")
    return messages


def run_openai(payload: Mapping[str, Any], model: ModelInfo, style: ChatStyle) -> ContainerResponse:
    """Answer a chat (``messages``) or completions (``prompt``) body in OpenAI format."""
    chat = "messages" in payload
    if chat:
        prompt, words = chat_prompt(_validate_messages(payload.get("messages")))
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
    max_tokens = _positive_int(payload, ("max_tokens", "max_completion_tokens"), 256 if chat else 16)
    n = _positive_int(payload, ("n",), 1)
    generation = generate(
        prompt, max_tokens=max_tokens, stop=stops, greeting=model.greeting, prompt_tokens=words
    )
    tool_calls = _tool_calls(payload, prompt) if chat else None
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
        pieces = _stream(head, chat, generation, visible, style, usage)
        return ContainerResponse(200, style.content_type, pieces)
    choices: list[dict[str, Any]] = []
    for index in range(n):
        choice: dict[str, Any] = {"index": index}
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": visible}
            if tool_calls is not None:
                message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
            choice["message"] = message
        else:
            choice["text"] = visible
        choice.update(logprobs=None, finish_reason=_finish(generation))
        choices.append(choice)
    body = {**head, "choices": choices, "usage": _usage(generation), **dict(style.extra)}
    return json_response(200, body)


def _stream(
    head: dict[str, Any],
    chat: bool,
    generation: Generation,
    visible: str,
    style: ChatStyle,
    usage: bool,
) -> Iterator[Piece]:
    head = {**head, "object": "chat.completion.chunk" if chat else "text_completion"}

    def choice(delta: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
        if chat:
            body: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if delta is not None:
                body["content"] = delta
            return {"index": 0, "delta": body, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}

    if chat:
        yield Piece(style.frame({**head, "choices": [choice(None, None, role=True)]}), False)
    for delta in _deltas(generation, visible):
        yield Piece(style.frame({**head, "choices": [choice(delta, None)]}))
    yield Piece(style.frame({**head, "choices": [choice(None, _finish(generation))]}), False)
    if usage:
        yield Piece(style.frame({**head, "choices": [], "usage": _usage(generation)}), False)
    done = style.done_frame()
    if done:
        yield Piece(done, False)


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
