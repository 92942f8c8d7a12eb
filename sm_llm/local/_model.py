"""The deterministic echo model behind every reference container.

The reply echoes the prompt word by word after a greeting, so tests can predict
every token: ``generate("a b", max_tokens=9, stop=[])`` yields the tokens
``["Echo:", " a", " b"]`` and finishes with ``"eos"``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_GREETING",
    "Generation",
    "chat_prompt",
    "content_text",
    "count_words",
    "generate",
    "token_id",
]

DEFAULT_GREETING = "Echo:"

FinishReason = Literal["length", "stop_sequence", "eos"]


@dataclass(frozen=True)
class Generation:
    """The outcome of one :func:`generate` call.

    ``text`` is ``"".join(tokens)`` and, when ``finish_reason == "stop_sequence"``,
    still contains the stop string (as TGI reports it); ``stop_sequence`` is the
    stop string that matched.
    """

    tokens: list[str]
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    stop_sequence: str | None = field(default=None)


def count_words(text: str) -> int:
    """Number of whitespace-separated words: the model's notion of a token count."""
    return len(text.split())


def token_id(text: str) -> int:
    """A stable fake vocabulary id for ``text``."""
    return zlib.crc32(text.encode("utf-8")) % 32000 + 3


def generate(
    prompt: str,
    *,
    max_tokens: int,
    stop: Sequence[str] = (),
    greeting: str = DEFAULT_GREETING,
    prompt_tokens: int | None = None,
) -> Generation:
    """Echo ``prompt`` after ``greeting``, honouring ``max_tokens`` and ``stop``.

    ``prompt_tokens`` overrides the prompt word count (chat prompts count the
    words of every message, not only the echoed one).
    """
    candidates = [greeting, *(" " + word for word in prompt.split())]
    stops = [s for s in stop if s]
    emitted: list[str] = []
    text = ""
    reason: FinishReason = "eos"
    matched: str | None = None
    for token in candidates:
        if len(emitted) >= max_tokens:
            reason = "length"
            break
        emitted.append(token)
        text += token
        matched = next((s for s in stops if s in text), None)
        if matched is not None:
            reason = "stop_sequence"
            break
    else:
        if len(emitted) >= max_tokens:
            reason = "length"
    return Generation(
        tokens=emitted,
        text=text,
        finish_reason=reason,
        prompt_tokens=count_words(prompt) if prompt_tokens is None else prompt_tokens,
        completion_tokens=len(emitted),
        stop_sequence=matched,
    )


def content_text(content: Any) -> str:
    """Text of an OpenAI-style message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type", "text") == "text"
        )
    return ""


def chat_prompt(messages: Iterable[Mapping[str, Any]]) -> tuple[str, int]:
    """The prompt echoed for a chat (last user message) and the words in all messages."""
    prompt = ""
    words = 0
    for message in messages:
        text = content_text(message.get("content"))
        words += count_words(text)
        if message.get("role") == "user":
            prompt = text
    return prompt, words
