"""LangChain messages ↔ the OpenAI chat format, and replies back into messages.

Requests go through ``langchain_core``'s own ``convert_to_openai_messages``
(system messages in order, names, tool calls, tool results, multimodal parts);
this module adds the reverse direction and the text-only view that chat
templates need.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    InvalidToolCall,
    ToolCall,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk

from sm_llm.errors import ConfigurationError

__all__ = [
    "ai_message",
    "chunk",
    "reasoning_kwargs",
    "text_messages",
    "to_openai",
    "tool_call_chunks",
    "usage_metadata",
]


def to_openai(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as OpenAI chat-completions dicts."""
    converted = convert_to_openai_messages(list(messages))
    return converted if isinstance(converted, list) else [converted]


def text_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same messages with string content, for chat templates of text containers."""
    flattened: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            texts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
                elif isinstance(part, str):
                    texts.append(part)
                else:
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise ConfigurationError(
                        f"a {kind!r} content part cannot be rendered into a text prompt; "
                        "use a messages container (content_handler='openai') for multimodal input"
                    )
            message = {**message, "content": "".join(texts)}
        elif content is None:
            message = {**message, "content": ""}
        flattened.append(message)
    return flattened


def usage_metadata(usage: dict[str, int] | None) -> UsageMetadata | None:
    """LangChain usage, only when the server reported both sides (never invented)."""
    if not usage or "prompt_tokens" not in usage or "completion_tokens" not in usage:
        return None
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    return UsageMetadata(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=usage.get("total_tokens", prompt + completion),
    )


def _tool_calls(raw: list[dict[str, Any]] | None) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for item in raw or []:
        function = item.get("function") or {}
        name = function.get("name")
        arguments = function.get("arguments")
        call_id = item.get("id")
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else arguments
            if args is None:
                args = {}
            if not isinstance(args, dict):
                raise ValueError("arguments are not a JSON object")
        except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" arguments
            invalid.append(
                InvalidToolCall(
                    name=name, args=arguments if isinstance(arguments, str) else None,
                    id=call_id, error=f"malformed arguments: {exc}", type="invalid_tool_call",
                )
            )
            continue
        valid.append(ToolCall(name=str(name), args=args, id=call_id, type="tool_call"))
    return valid, invalid


def ai_message(
    text: str,
    *,
    tool_calls: list[dict[str, Any]] | None,
    usage: dict[str, int] | None,
    response_metadata: dict[str, Any],
    reasoning: str | None = None,
) -> AIMessage:
    """A whole reply as an ``AIMessage``; a reasoning model's thinking goes in
    ``additional_kwargs["reasoning_content"]`` (see :func:`reasoning_kwargs`)."""
    valid, invalid = _tool_calls(tool_calls)
    return AIMessage(
        content=text,
        additional_kwargs=reasoning_kwargs(reasoning),
        tool_calls=valid,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(usage),
        response_metadata=response_metadata,
    )


def reasoning_kwargs(reasoning: str | None) -> dict[str, Any]:
    """``{"reasoning_content": ...}`` when there is reasoning, as langchain-deepseek and
    others put it: langchain-core then shows it as a ``{"type": "reasoning"}`` block first
    in ``content_blocks``, and chunks' pieces concatenate when streamed chunks are added."""
    return {"reasoning_content": reasoning} if reasoning else {}


def tool_call_chunks(raw: list[dict[str, Any]]) -> list[Any]:
    """OpenAI ``delta.tool_calls`` as LangChain tool-call chunks."""
    chunks = []
    for item in raw:
        function = item.get("function") or {}
        chunks.append(
            tool_call_chunk(
                name=function.get("name"),
                args=function.get("arguments"),
                id=item.get("id"),
                index=item.get("index"),
            )
        )
    return chunks


def chunk(text: str, raw_tool_calls: list[dict[str, Any]], reasoning: str = "") -> AIMessageChunk:
    """One stream step as an ``AIMessageChunk`` (its piece of reasoning, if any, in
    ``additional_kwargs["reasoning_content"]``)."""
    if not raw_tool_calls and not reasoning:  # nearly every chunk: the defaults are {} and [] (~20% cheaper)
        return AIMessageChunk(content=text)
    return AIMessageChunk(
        content=text, additional_kwargs=reasoning_kwargs(reasoning), tool_call_chunks=tool_call_chunks(raw_tool_calls)
    )
