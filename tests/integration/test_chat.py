"""ChatSageMaker through real boto3 over HTTP to the local endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from sm_llm import ConfigurationError
from sm_llm import errors as e

EXPECTED = json.loads(
    (Path(__file__).resolve().parents[1] / "unit/data/chat_templates/expected.json").read_text()
)["cases"]


def sent(local_endpoint: Any) -> Any:
    return json.loads(local_endpoint.requests[-1].body)


def test_every_message_type_in_order(make_chat: Any, local_endpoint: Any) -> None:
    chat = make_chat("openai")
    history = [
        SystemMessage("first system"),
        HumanMessage("hi", name="ada"),
        SystemMessage("second system"),
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "call_9"}]),
        ToolMessage("found it", tool_call_id="call_9"),
        HumanMessage(content=[{"type": "text", "text": "and this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]),
    ]
    reply = chat.invoke(history)
    assert isinstance(reply, AIMessage)
    messages = sent(local_endpoint)["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "system", "assistant", "tool", "user"]
    assert messages[0]["content"] == "first system" and messages[2]["content"] == "second system"
    assert messages[1]["name"] == "ada"
    assert messages[3]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q": "x"}'}
    assert messages[4] == {"role": "tool", "tool_call_id": "call_9", "content": "found it"}
    assert messages[5]["content"][1]["image_url"]["url"].startswith("data:image/png")


def test_human_system_human_does_not_crash(make_chat: Any) -> None:
    reply = make_chat("openai").invoke([HumanMessage("a"), SystemMessage("b"), HumanMessage("c d")])
    assert reply.content == "Echo: c d"


def test_usage_metadata_exactly_when_reported(make_chat: Any) -> None:
    reply = make_chat("openai").invoke("one two")
    assert reply.usage_metadata == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    assert reply.response_metadata["model_provider"] == "amazon_sagemaker"
    assert reply.response_metadata["model_name"] == "local-echo"
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["invoked_production_variant"] == "AllTraffic"
    # TGI's generate API reports generated tokens only: nothing is invented for the prompt.
    tgi = make_chat("tgi", content_handler="tgi", chat_template="chatml").invoke("one two")
    assert tgi.usage_metadata is None
    assert tgi.response_metadata["usage"] == {"completion_tokens": tgi.response_metadata["usage"]["completion_tokens"]}
    js = make_chat("jumpstart-chat", content_handler="jumpstart-chat").invoke("x")
    assert js.usage_metadata is None and "usage" not in js.response_metadata


def test_stream_chunks(make_chat: Any, local_endpoint: Any, fault: Any) -> None:
    local_endpoint.faults = fault(stream_split_seed=3)
    chunks = list(make_chat("openai").stream("a b c"))
    assert "".join(str(c.content) for c in chunks) == "Echo: a b c"
    assert chunks[-1].chunk_position == "last"
    assert chunks[-1].usage_metadata == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    assert sum(1 for c in chunks if c.content) >= 4


@pytest.mark.parametrize("streaming", [False, True])
def test_stop_sequences_in_chat(make_chat: Any, streaming: bool) -> None:
    chat = make_chat("openai", streaming=streaming)
    assert chat.invoke("alpha beta. gamma", stop=["."]).content == "Echo: alpha beta"
    assert make_chat("openai", stop=["?"]).invoke("why? because").content == "Echo: why"


@pytest.mark.parametrize("preset", ["llama3", "llama2", "mistral", "chatml"])
def test_chat_templates_render_like_transformers(make_chat: Any, local_endpoint: Any, preset: str) -> None:
    case = next(c for c in EXPECTED if c["preset"] == preset and c["id"].endswith("multi_turn/gen") and "expected" in c)
    messages = [
        {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}[m["role"]](m["content"])
        for m in case["messages"]
    ]
    make_chat("tgi", content_handler="tgi", chat_template=preset, max_tokens=1).invoke(messages)
    assert sent(local_endpoint)["inputs"] == case["expected"]


def test_inline_and_file_chat_templates(make_chat: Any, local_endpoint: Any, tmp_path: Path) -> None:
    inline = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    make_chat("lmi", content_handler="lmi", chat_template=inline).invoke([SystemMessage("s"), HumanMessage("u")])
    assert sent(local_endpoint)["inputs"] == "[system] s\n[user] u\n[assistant]"
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": "{{ bos_token }}{{ messages[-1].content }}", "bos_token": "<B>"}))
    make_chat("lmi", content_handler="lmi", chat_template=str(config)).invoke("hello")
    assert sent(local_endpoint)["inputs"] == "<B>hello"


def test_template_stop_tokens_are_sent_and_applied(make_chat: Any, local_endpoint: Any) -> None:
    make_chat("tgi", content_handler="tgi", chat_template="llama3").invoke("hi")
    assert "<|eot_id|>" in sent(local_endpoint)["parameters"]["stop"]


def test_jumpstart_chat_dialogs(make_chat: Any, local_endpoint: Any) -> None:
    reply = make_chat("jumpstart-chat", content_handler="jumpstart-chat").invoke([SystemMessage("be brief"), HumanMessage("hello there")])
    assert reply.content == "Echo: hello there"
    assert sent(local_endpoint)["inputs"] == [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]]


def test_text_handler_needs_a_template_and_refuses_tools(make_chat: Any, local_endpoint: Any) -> None:
    with pytest.raises(ConfigurationError, match="chat_template"):
        make_chat("tgi", content_handler="tgi")
    chat = make_chat("tgi", content_handler="tgi", chat_template="llama3")
    with pytest.raises(ConfigurationError, match="cannot carry tools"):
        chat.bind_tools([{"type": "function", "function": {"name": "f", "parameters": {}}}])
    with pytest.raises(ConfigurationError, match="multimodal"):
        chat.invoke([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "data:x"}}])])
    assert local_endpoint.requests == []


def test_errors_are_typed(make_chat: Any, local_endpoint: Any, fault: Any) -> None:
    local_endpoint.faults = fault(fail_next=["ModelError"])
    with pytest.raises(e.ModelError):
        make_chat("openai").invoke("x")
    with pytest.raises(e.EndpointNotFoundError):
        make_chat("nope").invoke("x")


def test_sessions_open_reuse_close(make_chat: Any, local_endpoint: Any) -> None:
    chat = make_chat("lmi", content_handler="lmi", chat_template="chatml")
    with chat.open_session() as session:
        assert local_endpoint.requests[-1].headers["x-amzn-sagemaker-session-id"] == "NEW_SESSION"
        assert json.loads(local_endpoint.requests[-1].body) == {"requestType": "NEW_SESSION"}
        assert session.expires_at is not None
        session.invoke("first")
        assert local_endpoint.requests[-1].headers["x-amzn-sagemaker-session-id"] == session.session_id
        assert "".join(str(c.content) for c in session.stream("second turn"))
        assert local_endpoint.requests[-1].operation == "InvokeEndpointWithResponseStream"
        assert local_endpoint.requests[-1].headers["x-amzn-sagemaker-session-id"] == session.session_id
    assert session.closed_session_id == session.session_id
    assert json.loads(local_endpoint.requests[-1].body) == {"requestType": "CLOSE"}
    with pytest.raises(e.RequestValidationError):
        chat.invoke("after close", session_id=session.session_id)


async def test_async_sessions_and_calls(make_chat: Any, local_endpoint: Any) -> None:
    chat = make_chat("openai")
    async with await chat.aopen_session() as session:
        reply = await session.ainvoke("async hello")
        assert reply.content == "Echo: async hello"
        pieces = [c.content async for c in session.astream("streamed")]
        assert "".join(map(str, pieces)) == "Echo: streamed"
    assert session.closed_session_id
    results = await chat.abatch([f"m{i}" for i in range(5)])
    assert [r.content for r in results] == [f"Echo: m{i}" for i in range(5)]
    await chat.aclose()


# -- tools and structured output ---------------------------------------------------------



@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"sunny in {city}"


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="the question")
    punchline: str


@pytest.mark.parametrize("streaming", [False, True])
def test_tool_round_trip(make_chat: Any, local_endpoint: Any, streaming: bool) -> None:
    chat = make_chat("openai", streaming=streaming).bind_tools([get_weather])
    question = HumanMessage("What is the weather in Paris?")
    call = chat.invoke([question])
    assert call.tool_calls and call.tool_calls[0]["name"] == "get_weather"
    assert call.tool_calls[0]["args"] == {"city": "What is the weather in Paris?"}
    assert call.response_metadata["finish_reason"] == "tool_calls"
    body = sent(local_endpoint)
    assert body["tools"][0]["function"]["name"] == "get_weather"
    result = get_weather.invoke(call.tool_calls[0])
    final = chat.invoke([question, call, result])
    assert final.content == "Tool result: sunny in What is the weather in Paris?"
    assert sent(local_endpoint)["messages"][-1]["role"] == "tool"


def test_streamed_tool_call_chunks_assemble(make_chat: Any, local_endpoint: Any, fault: Any) -> None:
    local_endpoint.faults = fault(stream_split_seed=8)
    chunks = list(make_chat("openai").bind_tools([get_weather], tool_choice="get_weather").stream("Paris"))
    merged = chunks[0]
    for piece in chunks[1:]:
        merged = merged + piece
    assert merged.tool_calls == [{"name": "get_weather", "args": {"city": "Paris"}, "id": merged.tool_calls[0]["id"], "type": "tool_call"}]
    assert sum(1 for c in chunks if c.tool_call_chunks) > 2


@pytest.mark.parametrize(("choice", "expected"), [("any", "required"), ("required", "required"), ("auto", "auto"), ("none", "none")])
def test_tool_choice_values(make_chat: Any, local_endpoint: Any, choice: str, expected: str) -> None:
    make_chat("openai").bind_tools([get_weather], tool_choice=choice).invoke("hello")
    assert sent(local_endpoint)["tool_choice"] == expected


def test_tool_choice_by_name_and_unknown(make_chat: Any, local_endpoint: Any) -> None:
    make_chat("openai").bind_tools([get_weather], tool_choice="get_weather").invoke("x")
    assert sent(local_endpoint)["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    with pytest.raises(ConfigurationError, match="not one of the tools"):
        make_chat("openai").bind_tools([get_weather], tool_choice="other")


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output(make_chat: Any, local_endpoint: Any, method: str) -> None:
    joke = make_chat("openai").with_structured_output(Joke, method=method).invoke("a joke about cats")
    assert isinstance(joke, Joke) and joke.setup == "a joke about cats"
    body = sent(local_endpoint)
    if method == "json_schema":
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["setup", "punchline"]
    else:
        assert body["tool_choice"]["function"]["name"] == "Joke"


def test_structured_output_include_raw_and_dict_schema(make_chat: Any) -> None:
    out = make_chat("openai").with_structured_output(Joke, include_raw=True).invoke("cats")
    assert isinstance(out["raw"], AIMessage) and isinstance(out["parsed"], Joke) and out["parsing_error"] is None
    schema = {"title": "Person", "type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    assert make_chat("openai").with_structured_output(schema, method="json_schema").invoke("I am 41") == {"age": 41}
