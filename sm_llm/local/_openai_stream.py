"""OpenAI-format streams: how each server frames them (:class:`ChatStyle`) and the chunk
writers for vLLM's text and tool-call streams and TGI's Messages API stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sm_llm.local._containers import Piece, compact_json
from sm_llm.local._model import Generation
from sm_llm.local._openai_plan import Reasoning, ToolCall, argument_pieces, next_call_id

__all__ = [
    "OPENAI",
    "ChatStyle",
    "openai_finish",
    "text_stream",
    "tgi_stream",
    "token_deltas",
    "tool_call_stream",
    "usage_counts",
]


@dataclass(frozen=True)
class ChatStyle:
    """How a server frames OpenAI-format streams.

    ``sse``: ``data: `` lines (else bare JSON lines); ``done``: a final ``[DONE]``
    event; ``extra``: members added to every object; ``tgi_chunks``: chat streams in
    TGI's shape (see :func:`tgi_stream`) instead of vLLM's.
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


def token_deltas(generation: Generation, visible: str) -> list[str]:
    out, used = [], 0
    for token in generation.tokens:
        piece = token[: max(0, len(visible) - used)]
        used += len(piece)
        if piece:
            out.append(piece)
    return out


def openai_finish(generation: Generation) -> str:
    return "length" if generation.finish_reason == "length" else "stop"


def usage_counts(generation: Generation, n: int) -> dict[str, int]:
    """Token counts; the completion tokens of all ``n`` choices add up, as in vLLM."""
    completion = generation.completion_tokens * n
    return {
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": generation.prompt_tokens + completion,
    }


def text_stream(
    head: dict[str, Any],
    chat: bool,
    generation: Generation,
    visible: str,
    style: ChatStyle,
    usage: bool,
    n: int,
    thinking: Reasoning | None = None,
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
    for delta in token_deltas(generation, visible):
        for index in range(n):
            yield Piece(style.frame({**head, "choices": [choice(index, delta)]}))
    yield from _stream_end(head, chat, generation, openai_finish(generation), style, usage, n)


def tool_call_stream(
    head: dict[str, Any],
    call: ToolCall,
    generation: Generation,
    style: ChatStyle,
    usage: bool,
    n: int,
    thinking: Reasoning | None = None,
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
            "id": next_call_id(),
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
    head: dict[str, Any], thinking: Reasoning | None, style: ChatStyle, n: int
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
        yield Piece(style.frame({**head, "choices": [], "usage": usage_counts(generation, n)}), False)
    done = style.done_frame()
    if done:
        yield Piece(done, False)


#: TGI's finish reasons in the Messages API (``FinishReason::format(true)``).
_TGI_FINISH = {"eos": "stop", "length": "length", "stop_sequence": "stop_sequence"}


def tgi_stream(
    head: dict[str, Any],
    call: ToolCall | None,
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
        texts = token_deltas(generation, visible)
        if generation.finish_reason == "eos" or not texts:
            texts.append("")
        finish = _TGI_FINISH[generation.finish_reason]
        for position, text in enumerate(texts, start=1):
            delta = {"role": "assistant", "content": text}
            yield Piece(chunk(delta, finish if position == len(texts) else None))
    else:
        call_id = next_call_id()
        arguments = call.arguments
        pieces = [arguments[:1], *argument_pieces(arguments[1:])]
        for position, piece in enumerate(pieces):
            function = {"name": call.name if position == 0 else None, "arguments": piece}
            tool_call = {"index": 0, "id": call_id, "type": "function", "function": function}
            yield Piece(chunk({"role": "assistant", "tool_calls": [tool_call]}))
    if usage:
        yield Piece(style.frame({**head, "choices": [], "usage": usage_counts(generation, 1)}), False)
    yield Piece(style.done_frame(), False)

