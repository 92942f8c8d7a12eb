"""Reasoning models through ChatSageMaker, boto3 and real HTTP to the local endpoint:
both field names (vLLM >= 0.16 ``reasoning``, older vLLM ``reasoning_content``), both ways
of asking, whole and streamed, sync and async, with and without tools."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessageChunk

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm.local import EndpointSpec, LocalEndpoint, ServerConfig

PROMPT = "hello there"
REASONING = 'Let me think about "hello there".'
ANSWER = "Echo: hello there"
ASKS = [{"reasoning_effort": "low"}, {"chat_template_kwargs": {"enable_thinking": True}}]
ENDPOINTS = ["vllm", "vllm-old"]  # answer in `reasoning` / in `reasoning_content`


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


@pytest.fixture(scope="module")
def reasoning_ep() -> Iterator[LocalEndpoint]:
    config = ServerConfig(endpoints=[
        EndpointSpec(name="vllm", container="openai"),
        EndpointSpec(name="vllm-old", container="openai", reasoning_field="reasoning_content"),
    ])
    with LocalEndpoint(config) as endpoint:
        yield endpoint


def _chat(
    ep: LocalEndpoint, transport: str, endpoint: str, ask: dict[str, Any] | None = None, **fields: Any
) -> ChatSageMaker:
    return ChatSageMaker(
        endpoint_name=endpoint, endpoint_url=ep.url, region_name="us-east-1", max_retries=0,
        model_kwargs=dict(ASKS[0] if ask is None else ask), transport=transport, **fields,
    )


def _sum(chunks: list[BaseMessageChunk]) -> BaseMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    return total


def _same_message(streamed: BaseMessageChunk, whole: AIMessage) -> None:
    """What a reader sees is the same, streamed or whole (tool-call ids aside)."""
    assert streamed.content == whole.content
    assert streamed.additional_kwargs == whole.additional_kwargs
    strip = [{k: v for k, v in b.items() if k != "id"} for b in whole.content_blocks]
    assert [{k: v for k, v in b.items() if k != "id"} for b in streamed.content_blocks] == strip


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("ask", ASKS, ids=["reasoning_effort", "enable_thinking"])
def test_whole_reply_reasoning_block_first_and_text_is_the_answer_only(
    reasoning_ep: LocalEndpoint, sm_transport: str, endpoint: str, ask: dict[str, Any]
) -> None:
    message = _chat(reasoning_ep, sm_transport, endpoint, ask).invoke(PROMPT)
    assert message.content == ANSWER and message.text == ANSWER
    assert message.additional_kwargs["reasoning_content"] == REASONING
    assert message.content_blocks == [
        {"type": "reasoning", "reasoning": REASONING},
        {"type": "text", "text": ANSWER},
    ]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_streamed_chunks_add_up_to_the_whole_message(reasoning_ep: LocalEndpoint, sm_transport: str, endpoint: str) -> None:
    chat = _chat(reasoning_ep, sm_transport, endpoint)
    chunks = list(chat.stream(PROMPT))
    reasoning_at = [i for i, c in enumerate(chunks) if c.additional_kwargs.get("reasoning_content")]
    text_at = [i for i, c in enumerate(chunks) if c.content]
    assert len(reasoning_at) > 1 and max(reasoning_at) < min(text_at)  # streamed piece by piece, first
    assert all(not chunks[i].content for i in reasoning_at)  # reasoning never leaks into the text
    streamed = _sum(chunks)
    _same_message(streamed, chat.invoke(PROMPT))
    assert streamed.content_blocks[0] == {"type": "reasoning", "reasoning": REASONING}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_async_whole_and_streamed(reasoning_ep: LocalEndpoint, sm_transport: str, endpoint: str) -> None:
    chat = _chat(reasoning_ep, sm_transport, endpoint)
    whole = await chat.ainvoke(PROMPT)
    assert whole.additional_kwargs["reasoning_content"] == REASONING and whole.content == ANSWER
    _same_message(_sum([chunk async for chunk in chat.astream(PROMPT)]), whole)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_streaming_true_invoke_keeps_the_reasoning(reasoning_ep: LocalEndpoint, sm_transport: str, endpoint: str) -> None:
    message = _chat(reasoning_ep, sm_transport, endpoint, streaming=True).invoke(PROMPT)
    assert [b["type"] for b in message.content_blocks] == ["reasoning", "text"]
    assert (message.content, message.additional_kwargs["reasoning_content"]) == (ANSWER, REASONING)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_tool_calls_after_reasoning_whole_and_streamed(reasoning_ep: LocalEndpoint, sm_transport: str, endpoint: str) -> None:
    tools = _chat(reasoning_ep, sm_transport, endpoint).bind_tools([get_weather], tool_choice="get_weather")
    whole = tools.invoke("weather in Paris")
    expected = [{"name": "get_weather", "args": {"city": "weather in Paris"}, "type": "tool_call"}]
    assert [{k: v for k, v in c.items() if k != "id"} for c in whole.tool_calls] == expected
    assert [b["type"] for b in whole.content_blocks] == ["reasoning", "tool_call"]
    chunks = list(tools.stream("weather in Paris"))
    assert any(c.additional_kwargs.get("reasoning_content") for c in chunks)
    streamed = _sum(chunks)
    assert [{k: v for k, v in c.items() if k != "id"} for c in streamed.tool_calls] == expected  # type: ignore[attr-defined]
    _same_message(streamed, whole)


async def test_async_tool_calls_after_reasoning(reasoning_ep: LocalEndpoint, sm_transport: str) -> None:
    tools = _chat(reasoning_ep, sm_transport, "vllm-old").bind_tools([get_weather], tool_choice="get_weather")
    streamed = _sum([chunk async for chunk in tools.astream("weather in Paris")])
    assert streamed.tool_calls[0]["args"] == {"city": "weather in Paris"}  # type: ignore[attr-defined]
    assert streamed.additional_kwargs["reasoning_content"] == 'Let me think about "weather in Paris".'


def test_no_reasoning_unless_asked(reasoning_ep: LocalEndpoint, sm_transport: str) -> None:
    chat = _chat(reasoning_ep, sm_transport, "vllm", ask={})
    message = chat.invoke(PROMPT)
    assert message.additional_kwargs == {} and message.content_blocks == [{"type": "text", "text": ANSWER}]
    assert all("reasoning_content" not in c.additional_kwargs for c in chat.stream(PROMPT))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_llm_text_is_the_answer_only(reasoning_ep: LocalEndpoint, sm_transport: str, endpoint: str) -> None:
    llm = SageMakerLLM(
        endpoint_name=endpoint, endpoint_url=reasoning_ep.url, region_name="us-east-1",
        content_handler="openai", model_kwargs=ASKS[0], max_retries=0, transport=sm_transport,
    )
    assert llm.invoke(PROMPT) == ANSWER
    assert "".join(llm.stream(PROMPT)) == ANSWER
