"""OpenAI-format reference container (vLLM on SageMaker) and the shared chat writer.

The same chat/completions logic also answers TGI's Messages API and LMI's chat
schema; :class:`ChatStyle` captures how each server frames its stream.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
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
from sm_llm.local._model import (
    FinishReason,
    Generation,
    chat_prompt,
    content_text,
    count_words,
    generate,
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
_call_ids = itertools.count(1)
#: Characters of the arguments string per streamed ``tool_calls`` delta.
ARGUMENT_PIECE = 8


@dataclass(frozen=True)
class ChatStyle:
    """How a server frames OpenAI-format streams.

    ``sse``: ``data: `` lines (else bare JSON lines); ``done``: a final ``[DONE]``
    event; ``extra``: members added to every object; ``tgi_chunks``: chat streams in
    TGI's shape (see :func:`_tgi_stream`) instead of vLLM's.
    """

    sse: bool = True
    done: bool = True
    tgi_chunks: bool = False
    content_type: str = "text/event-stream"
    id_prefix: str = "chatcmpl-"
    extra: tuple[tuple[str, Any], ...] = ()

    def frame(self, obj: Mapping[str, Any]) -> bytes:
        """One stream record."""
        data = compact_json({**obj, **dict(self.extra)})
        if not self.sse:
            return data + b"\n"
        return b"data: " + data + b"\n\n"

    def done_frame(self) -> bytes:
        """The end-of-stream record (empty when the style has none)."""
        if not (self.sse and self.done):
            return b""
        return b"data: [DONE]\n\n"


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


def _usage(generation: Generation, n: int) -> dict[str, int]:
    """Token counts; the completion tokens of all ``n`` choices add up, as in vLLM."""
    completion = generation.completion_tokens * n
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": generation.prompt_tokens + completion,
    }


# -- schema-driven values (tool arguments, structured output) -------------------------------

def _json_text(value: Any) -> str:
    """JSON as vLLM's tool parsers and guided decoding write it (``", "`` / ``": "``)."""
    return json.dumps(value, ensure_ascii=False)


# -- tool calls, tool results, response_format ----------------------------------------------


@dataclass(frozen=True)
class _Tool:
    name: str
    parameters: Any


def _cut(text: str) -> list[str]:
    """``text`` in streamed pieces of :data:`ARGUMENT_PIECE` characters."""
    return [text[i : i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)]


@dataclass(frozen=True)
class _ToolCall:
    """The one tool call a reply makes; ``arguments`` is its JSON string."""

    name: str
    arguments: str

    def pieces(self) -> list[str]:
        """The arguments string cut into the streamed deltas."""
        return _cut(self.arguments)

    def completion_tokens(self) -> int:
        """The tool name plus one token per arguments delta (what a stream counts)."""
        return 1 + len(self.pieces())

    def wire(self, call_id: str) -> dict[str, Any]:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def _tools(payload: Mapping[str, Any]) -> list[_Tool]:
    raw = payload.get("tools")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ChatValidationError("'tools' must be a list")
    tools = []
    for item in raw:
        function = item.get("function") if isinstance(item, Mapping) else None
        if (
            not isinstance(function, Mapping)
            or item.get("type", "function") != "function"
            or not isinstance(function.get("name"), str)
        ):
            raise ChatValidationError(
                "each tool must be {'type': 'function', 'function': {'name': ..., 'parameters': ...}}"
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise ChatValidationError(f"tool {function['name']!r}: 'parameters' must be an object")
        tools.append(_Tool(function["name"], parameters or {"type": "object", "properties": {}}))
    return tools


_GENERIC_PARTS = frozenset({"get", "set", "list", "find", "fetch", "make", "tool", "call", "run"})


def _mentioned(names: Sequence[str], text: str) -> str | None:
    """A tool named in ``text``: by full name (whole word first), else by a distinctive part
    of its name (``get_weather`` for "what is the weather ...")."""
    lowered = text.lower()
    found = [n for n in names if n and n.lower() in lowered]
    whole = (n for n in found if re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", lowered))
    by_name = next(whole, found[0] if found else None)
    if by_name is not None:
        return by_name
    words = set(re.findall(r"[a-z0-9]+", lowered))
    for name in names:
        parts = {p for p in re.split(r"[_\-\s]+|(?<=[a-z])(?=[A-Z])", name) if p}
        if any(len(p) > 3 and p.lower() not in _GENERIC_PARTS and p.lower() in words for p in parts):
            return name
    return None


def choose_tool(names: Sequence[str], tool_choice: Any, text: str) -> str | None:
    """The tool the model calls for ``tool_choice`` and user ``text``, or None for text.

    ``"none"``: none. A named choice (``{"type": "function", "function": {"name": X}}``,
    or TGI's bare ``X``): X. ``"required"`` / ``"any"``: the first tool whose name
    appears in ``text`` (case-insensitive), else the first tool. ``"auto"`` / absent:
    the first tool whose name appears in ``text``, else none. A name standing as a
    whole word beats one only found inside a longer word (``magic_function`` inside
    ``magic_function_no_args``).
    """
    mentioned = _mentioned(names, text)
    if tool_choice is None or tool_choice == "auto":
        return mentioned
    if tool_choice == "none":
        return None
    if tool_choice in ("required", "any"):
        if not names:
            raise ChatValidationError(f"tool_choice {tool_choice!r} needs a non-empty 'tools'")
        return mentioned or names[0]
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if tool_choice.get("type", "function") != "function" or not isinstance(name, str):
            raise ChatValidationError(
                "'tool_choice' must be 'none', 'auto', 'required' or "
                "{'type': 'function', 'function': {'name': ...}}"
            )
    elif isinstance(tool_choice, str):
        name = tool_choice
    else:
        raise ChatValidationError(f"invalid 'tool_choice': {tool_choice!r}")
    if name not in names:
        raise ChatValidationError(f"Tool '{name}' has not been passed in `tools`.")
    return name


def _tool_message_text(content: Any) -> str:
    if isinstance(content, Mapping):
        return _json_text(content)
    return content_text(content)


def _tool_results(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """When the last message is a tool result: every tool result since the last assistant turn."""
    if messages[-1].get("role") != "tool":
        return None
    start = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    results = [
        _tool_message_text(m.get("content"))
        for m in messages[start + 1 :]
        if m.get("role") == "tool"
    ]
    return "Tool result: " + "; ".join(results)


_KEY = r"(?!(?:the|a|an|and)\b)[A-Za-z_]\w*"
_KEY_LIST = rf"{_KEY}(?:\s*,\s*(?:and\s+)?{_KEY}|\s+and\s+{_KEY})*"
_KEY_WORD = r"(?:keys?|fields?|propert(?:y|ies))"
_QUOTED_KEYS = re.compile(rf"'({_KEY})'|\"({_KEY})\"|`({_KEY})`")
_KEYS_BEFORE = re.compile(
    rf"\bwith\s+(?:(?:the|a|an)\s+)?({_KEY_LIST})\s+{_KEY_WORD}\b", re.IGNORECASE
)
_KEYS_AFTER = re.compile(
    rf"\b{_KEY_WORD}\s*(?::|named|called)?\s+({_KEY_LIST})(?=\s*(?:[.;!?)]|$))", re.IGNORECASE
)


def _asked_keys(prompt: str) -> list[str]:
    """The keys a JSON-mode prompt asks for: quoted (``'setup'``, ``"setup"``, ```setup```),
    else listed plainly (``with setup and punchline keys``, ``keys: setup, punchline``)."""
    quoted = [next(g for g in groups if g) for groups in _QUOTED_KEYS.findall(prompt)]
    if quoted:
        return list(dict.fromkeys(quoted))
    match = _KEYS_BEFORE.search(prompt) or _KEYS_AFTER.search(prompt)
    if match is None:
        return []
    return list(dict.fromkeys(re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", match.group(1))))


def _formatted_text(payload: Mapping[str, Any], prompt: str) -> str | None:
    """The JSON text a ``response_format`` asks for (None: plain echo)."""
    fmt = payload.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or not isinstance(fmt.get("type"), str):
        raise ChatValidationError("'response_format' must be an object with a string 'type'")
    kind = fmt["type"]
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping):
            raise ChatValidationError("response_format 'json_schema' needs a 'json_schema' object")
        schema = spec.get("schema")
    elif kind in ("json_object", "json"):
        schema = fmt.get("value")  # TGI's grammar form carries the schema in 'value'
    else:
        raise ChatValidationError(f"unsupported response_format type {kind!r}")
    if schema is None:
        # JSON mode without a schema: use the keys the prompt asks for.
        keys = _asked_keys(prompt) or ["echo"]
        return _json_text({key: prompt for key in keys})
    if not isinstance(schema, Mapping):
        raise ChatValidationError("the response_format schema must be an object")
    return _json_text(schema_instance(schema, prompt))


def _plan(
    payload: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], prompt: str
) -> _ToolCall | str | None:
    """What a chat reply holds: a tool call, a fixed text, or None for the echo."""
    tools = _tools(payload)
    name = choose_tool([t.name for t in tools], payload.get("tool_choice"), prompt)
    formatted = _formatted_text(payload, prompt)
    results = _tool_results(messages)
    if results is not None:
        return results
    if name is not None:
        tool = next(t for t in tools if t.name == name)
        return _ToolCall(name, _json_text(schema_instance(tool.parameters, prompt)))
    return formatted


_TOKEN = re.compile(r"\s*\S+")


def _text_generation(
    text: str, *, max_tokens: int, stops: list[str], prompt_tokens: int
) -> Generation:
    """Like :func:`generate` for a fixed reply ``text``: tokens are words with their leading space."""
    candidates = _TOKEN.findall(text)
    if candidates:
        candidates[-1] += text[len(text.rstrip()) :]
    stops = [s for s in stops if s]
    emitted: list[str] = []
    out = ""
    matched: str | None = None
    for token in candidates:
        if len(emitted) >= max_tokens:
            break
        emitted.append(token)
        out += token
        matched = next((s for s in stops if s in out), None)
        if matched is not None:
            break
    reason: FinishReason
    if matched is not None:
        reason = "stop_sequence"
    elif len(emitted) >= max_tokens:
        reason = "length"
    else:
        reason = "eos"
    return Generation(emitted, out, reason, prompt_tokens, len(emitted), matched)


@dataclass(frozen=True)
class _Reasoning:
    """What a reasoning model thinks before answering: ``field`` and its streamed pieces."""

    field: str
    pieces: list[str]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


#: Words of the prompt the reasoning quotes.
_REASONING_WORDS = 8


def wants_reasoning(payload: Mapping[str, Any]) -> bool:
    """Whether a chat request asks a reasoning model to think (as Qwen3 / gpt-oss on vLLM do).

    ``chat_template_kwargs.enable_thinking`` (or ``thinking``) decides when it is a bool;
    otherwise a ``reasoning_effort`` other than ``"none"`` asks for reasoning.
    """
    kwargs = payload.get("chat_template_kwargs")
    if isinstance(kwargs, Mapping):
        for key in ("enable_thinking", "thinking"):
            if isinstance(kwargs.get(key), bool):
                return bool(kwargs[key])
    effort = payload.get("reasoning_effort")
    return effort is not None and effort != "none"


def _reasoning(payload: Mapping[str, Any], prompt: str, model: ModelInfo) -> _Reasoning | None:
    """The deterministic reasoning: ``Let me think about "<first words of the prompt>".``"""
    if not wants_reasoning(payload):
        return None
    words = prompt.split()
    quoted = " ".join(words[:_REASONING_WORDS]) + (" ..." if len(words) > _REASONING_WORDS else "")
    return _Reasoning(model.reasoning_field, _TOKEN.findall(f'Let me think about "{quoted}".'))


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
    plan = _plan(payload, messages, prompt) if chat else None
    call = plan if isinstance(plan, _ToolCall) else None
    if call is not None:
        tokens = call.completion_tokens()
        generation = Generation([call.arguments], call.arguments, "eos", words, tokens)
    elif isinstance(plan, str):
        generation = _text_generation(plan, max_tokens=max_tokens, stops=stops, prompt_tokens=words)
    else:
        generation = generate(
            prompt, max_tokens=max_tokens, stop=stops, greeting=model.greeting, prompt_tokens=words
        )
    thinking = _reasoning(payload, prompt, model) if chat and not style.tgi_chunks else None
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
            pieces = _tgi_stream(head, call, generation, visible, style, usage)
        elif call is not None:
            pieces = _stream_tool_call(head, call, generation, style, usage, n, thinking)
        else:
            pieces = _stream(head, chat, generation, visible, style, usage, n, thinking)
        return ContainerResponse(200, style.content_type, pieces)
    choices: list[dict[str, Any]] = []
    for index in range(n):
        choice: dict[str, Any] = {"index": index}
        finish = _finish(generation)
        if call is not None:
            tool_call = call.wire(f"call_{next(_call_ids)}")
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
    body = {**head, "choices": choices, "usage": _usage(generation, n), **dict(style.extra)}
    return json_response(200, body)


def _stream(
    head: dict[str, Any],
    chat: bool,
    generation: Generation,
    visible: str,
    style: ChatStyle,
    usage: bool,
    n: int,
    thinking: _Reasoning | None = None,
) -> Iterator[Piece]:
    """vLLM's stream: for ``n`` choices, a role chunk per choice, then each token's chunk
    for every choice in turn, then each choice's finish chunk (one choice per chunk).
    Reasoning deltas (``{"reasoning": ...}``) come before the first content delta."""
    head = {**head, "object": "chat.completion.chunk" if chat else "text_completion"}

    def choice(index: int, delta: str | None, role: bool = False) -> dict[str, Any]:
        if chat:
            body: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if delta is not None:
                body["content"] = delta
            return {"index": index, "delta": body, "logprobs": None, "finish_reason": None}
        return {"index": index, "text": delta or "", "logprobs": None, "finish_reason": None}

    if chat:
        for index in range(n):
            yield Piece(style.frame({**head, "choices": [choice(index, None, role=True)]}), False)
    yield from _reasoning_chunks(head, thinking, style, n)
    for delta in _deltas(generation, visible):
        for index in range(n):
            yield Piece(style.frame({**head, "choices": [choice(index, delta)]}))
    yield from _stream_end(head, chat, generation, _finish(generation), style, usage, n)


def _stream_tool_call(
    head: dict[str, Any],
    call: _ToolCall,
    generation: Generation,
    style: ChatStyle,
    usage: bool,
    n: int,
    thinking: _Reasoning | None = None,
) -> Iterator[Piece]:
    """vLLM's tool-call stream: per choice a header delta (id, name), then the arguments in
    pieces, each piece for every choice in turn. A reasoning model's reasoning deltas come
    first, after a role chunk.

    Each delta is a token (the header counts as the name's), as ``usage`` reports.
    """
    head = {**head, "object": "chat.completion.chunk"}
    if thinking is not None:
        for index in range(n):
            role = {"index": index, "delta": {"role": "assistant", "content": ""},
                    "logprobs": None, "finish_reason": None}
            yield Piece(style.frame({**head, "choices": [role]}), False)
        yield from _reasoning_chunks(head, thinking, style, n)

    def chunk(index: int, delta: dict[str, Any]) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
        return style.frame({**head, "choices": [choice]})

    for index in range(n):
        header = {
            "index": 0,
            "id": f"call_{next(_call_ids)}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield Piece(chunk(index, {"role": "assistant", "content": None, "tool_calls": [header]}))
    for piece in call.pieces():
        for index in range(n):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            yield Piece(chunk(index, delta))
    yield from _stream_end(head, True, generation, "tool_calls", style, usage, n)


def _reasoning_chunks(
    head: dict[str, Any], thinking: _Reasoning | None, style: ChatStyle, n: int
) -> Iterator[Piece]:
    """One chunk per reasoning token and choice: ``{"delta": {"<field>": piece}}``."""
    if thinking is None:
        return
    for piece in thinking.pieces:
        for index in range(n):
            choice = {"index": index, "delta": {thinking.field: piece}, "logprobs": None,
                      "finish_reason": None}
            yield Piece(style.frame({**head, "object": "chat.completion.chunk", "choices": [choice]}))


def _stream_end(
    head: dict[str, Any],
    chat: bool,
    generation: Generation,
    finish: str,
    style: ChatStyle,
    usage: bool,
    n: int,
) -> Iterator[Piece]:
    for index in range(n):
        last: dict[str, Any] = {"index": index}
        if chat:
            last["delta"] = {}
        else:
            last["text"] = ""
        last.update(logprobs=None, finish_reason=finish)
        yield Piece(style.frame({**head, "choices": [last]}), False)
    if usage:
        yield Piece(style.frame({**head, "choices": [], "usage": _usage(generation, n)}), False)
    done = style.done_frame()
    if done:
        yield Piece(done, False)


#: TGI's finish reasons in the Messages API (``FinishReason::format(true)``).
_TGI_FINISH = {"eos": "stop", "length": "length", "stop_sequence": "stop_sequence"}


def _tgi_stream(
    head: dict[str, Any],
    call: _ToolCall | None,
    generation: Generation,
    visible: str,
    style: ChatStyle,
    usage: bool,
) -> Iterator[Piece]:
    """TGI's Messages API stream (``router/src/chat.rs``): one chunk per token, each delta
    with ``role``; ``finish_reason`` on the last token's chunk.

    The end-of-sequence token is special, so its chunk has empty content. A tool call's
    deltas carry ``index``, ``id`` and ``type``, the name only in the first (with the
    arguments' opening character); TGI swallows the end-of-sequence token after the
    call's JSON, so a tool-call stream has no ``finish_reason``.
    """
    head = {**head, "object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return style.frame({**head, "choices": [choice], "usage": None})

    if call is None:
        texts = _deltas(generation, visible)
        if generation.finish_reason == "eos" or not texts:
            texts.append("")
        finish = _TGI_FINISH[generation.finish_reason]
        for position, text in enumerate(texts, start=1):
            delta = {"role": "assistant", "content": text}
            yield Piece(chunk(delta, finish if position == len(texts) else None))
    else:
        call_id = f"call_{next(_call_ids)}"
        arguments = call.arguments
        pieces = [arguments[:1], *_cut(arguments[1:])]
        for position, piece in enumerate(pieces):
            function = {"name": call.name if position == 0 else None, "arguments": piece}
            tool_call = {"index": 0, "id": call_id, "type": "function", "function": function}
            yield Piece(chunk({"role": "assistant", "tool_calls": [tool_call]}))
    if usage:
        yield Piece(style.frame({**head, "choices": [], "usage": _usage(generation, 1)}), False)
    yield Piece(style.done_frame(), False)


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
