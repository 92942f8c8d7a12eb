"""Reasoning models through the openai preset: both field names, whole and streamed, and
tool-call deltas interleaved with reasoning deltas (a stream the local echo model does not
produce: there reasoning always comes first), over the in-memory FakeTransport."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from sm_llm import ChatSageMaker
from sm_llm.handlers import ContentHandler
from sm_llm.transports import FakeTransport

OPENAI = ContentHandler.from_preset("openai")


def _sse(*deltas: dict[str, Any], finish: str = "stop") -> list[bytes]:
    def frame(choice: dict[str, Any]) -> bytes:
        return f"data: {json.dumps({'model': 'm', 'choices': [choice]})}\n\n".encode()

    parts = [frame({"index": 0, "delta": d, "finish_reason": None}) for d in deltas]
    parts.append(frame({"index": 0, "delta": {}, "finish_reason": finish}))
    parts.append(b"data: [DONE]\n\n")
    return parts


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_whole_reply_reasoning_is_parsed_apart_from_the_text(field: str) -> None:
    body = {"choices": [{"message": {"content": "42", field: "think"}, "finish_reason": "stop"}]}
    parsed = OPENAI.parse_response(json.dumps(body).encode())
    assert (parsed.text, parsed.reasoning) == ("42", "think")


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_stream_record_reasoning_is_parsed_apart_from_the_text(field: str) -> None:
    delta = OPENAI.parse_stream_record(json.dumps({"choices": [{"delta": {field: "hm"}}]}))
    assert (delta.text, delta.reasoning) == ("", "hm")


def test_a_reply_cut_short_while_thinking_is_not_a_parse_error() -> None:
    body = {"choices": [{"message": {"content": None, "reasoning": "still thinki"}, "finish_reason": "length"}]}
    parsed = OPENAI.parse_response(json.dumps(body).encode())
    assert (parsed.text, parsed.reasoning, parsed.finish_reason) == ("", "still thinki", "length")


@pytest.mark.parametrize("value", [None, "", 7])
def test_absent_empty_or_odd_reasoning_is_none(value: Any) -> None:
    body = {"choices": [{"message": {"content": "a", "reasoning": value}}]}
    assert OPENAI.parse_response(json.dumps(body).encode()).reasoning is None


def test_no_reasoning_no_additional_kwargs() -> None:
    fake = FakeTransport().reply({"choices": [{"message": {"content": "plain"}, "finish_reason": "stop"}]})
    message = ChatSageMaker(endpoint_name="ep", transport=fake).invoke("hi")
    assert message.additional_kwargs == {} and message.content_blocks == [{"type": "text", "text": "plain"}]


def test_tool_call_deltas_interleaved_with_reasoning_assemble() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    fake = FakeTransport().stream(*_sse(
        {"role": "assistant", "content": ""},
        {"reasoning": "The user "},
        {"tool_calls": [call]},
        {"reasoning": "wants "},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"reasoning_content": "Paris.", "tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        finish="tool_calls",
    ))
    chat = ChatSageMaker(endpoint_name="ep", transport=fake)
    chunks = list(chat.stream("weather in Paris?"))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert total.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    assert total.additional_kwargs == {"reasoning_content": "The user wants Paris."}
    assert total.content == ""
    assert [b["type"] for b in total.content_blocks] == ["reasoning", "tool_call"]
    assert total.response_metadata["finish_reason"] == "tool_calls"
