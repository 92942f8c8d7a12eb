"""What a content handler declares about a reply, and what parsing it yields: the
response, stream and usage specs (JMESPath expressions, stream framing) and the parsed
whole reply / stream record. Pure data; :mod:`sm_llm.handlers` does the parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ParsedOutput",
    "ResponseSpec",
    "StreamDelta",
    "StreamFormat",
    "StreamSpec",
    "UsageSpec",
    "normalize_finish_reason",
]

StreamFormat = Literal["sse", "jsonl", "raw"]

# Container finish reasons folded onto OpenAI's vocabulary, which LangChain users expect.
_FINISH_REASONS = {
    "eos_token": "stop",
    "eos": "stop",
    "stop_sequence": "stop",
    "end_turn": "stop",
    "stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def normalize_finish_reason(reason: Any) -> str | None:
    """Map a container's finish reason onto ``stop`` / ``length`` / ``tool_calls``."""
    if reason is None:
        return None
    text = str(reason)
    return _FINISH_REASONS.get(text, text)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UsageSpec(_Spec):
    """Where token counts are in a reply (JMESPath; ``None`` = not reported)."""

    prompt_tokens: str | None = None
    completion_tokens: str | None = None
    total_tokens: str | None = None


class ResponseSpec(_Spec):
    """Where things are in a whole (non-streamed) reply."""

    text: str
    finish_reason: str | None = None
    usage: UsageSpec | None = None
    tool_calls: str | None = None
    model_name: str | None = None
    error: str | None = None
    reasoning: str | None = None  # a reasoning model's thinking, kept apart from the text


class StreamSpec(_Spec):
    """How a streamed reply is framed and where things are in each record."""

    format: StreamFormat
    whole_reply: bool = Field(
        default=False,
        description="the container does not stream: the streaming route relays its whole reply as one record",
    )
    text: str | None = None
    skip: str | None = Field(
        default=None, description="JMESPath; a truthy result drops the record's text (special tokens)"
    )
    finish_reason: str | None = None
    usage: UsageSpec | None = None
    tool_calls: str | None = None
    model_name: str | None = None
    error: str | None = None
    reasoning: str | None = None  # a reasoning model's thinking, kept apart from the text


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    """A whole reply, parsed."""

    text: str
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    raw: Any = None
    tool_calls: list[dict[str, Any]] | None = None
    model_name: str | None = None
    reasoning: str | None = None
    """A reasoning model's thinking (``reasoning_content`` / ``reasoning``); never in ``text``."""


@dataclass(slots=True)
class StreamDelta:
    """What one stream record contributes."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    tool_call_chunks: list[dict[str, Any]] = field(default_factory=list)
    model_name: str | None = None
    raw: Any = None
    reasoning: str = ""
    """The record's piece of a reasoning model's thinking."""
