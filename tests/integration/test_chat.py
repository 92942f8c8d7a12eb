"""ChatSageMaker through real boto3 over HTTP to the local endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from sm_llm import ChatSageMaker, ConfigurationError
from sm_llm import errors as e

EXPECTED = json.loads(
    (Path(__file__).resolve().parents[1] / "unit/data/chat_templates/expected.json").read_text()
)["cases"]


@pytest.fixture
def make_chat(ep: Any) -> Any:
    def make(endpoint_name: str, **fields: Any) -> ChatSageMaker:
        fields.setdefault("max_retries", 0)
        return ChatSageMaker(endpoint_name=endpoint_name, endpoint_url=ep.url, region_name="us-east-1", **fields)

    return make


def sent(ep: Any) -> Any:
    return json.loads(ep.requests[-1].body)


def test_every_message_type_in_order(make_chat: Any, ep: Any) -> None:
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
    messages = sent(ep)["messages"]
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


def test_stream_chunks(make_chat: Any, ep: Any, fault: Any) -> None:
    ep.faults = fault(stream_split_seed=3)
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
def test_chat_templates_render_like_transformers(make_chat: Any, ep: Any, preset: str) -> None:
    case = next(c for c in EXPECTED if c["preset"] == preset and c["id"].endswith("multi_turn/gen") and "expected" in c)
    messages = [
        {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}[m["role"]](m["content"])
        for m in case["messages"]
    ]
    make_chat("tgi", content_handler="tgi", chat_template=preset, max_tokens=1).invoke(messages)
    assert sent(ep)["inputs"] == case["expected"]


def test_inline_and_file_chat_templates(make_chat: Any, ep: Any, tmp_path: Path) -> None:
    inline = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    make_chat("lmi", content_handler="lmi", chat_template=inline).invoke([SystemMessage("s"), HumanMessage("u")])
    assert sent(ep)["inputs"] == "[system] s\n[user] u\n[assistant]"
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": "{{ bos_token }}{{ messages[-1].content }}", "bos_token": "<B>"}))
    make_chat("lmi", content_handler="lmi", chat_template=str(config)).invoke("hello")
    assert sent(ep)["inputs"] == "<B>hello"


def test_template_stop_tokens_are_sent_and_applied(make_chat: Any, ep: Any) -> None:
    make_chat("tgi", content_handler="tgi", chat_template="llama3").invoke("hi")
    assert "<|eot_id|>" in sent(ep)["parameters"]["stop"]


def test_jumpstart_chat_dialogs(make_chat: Any, ep: Any) -> None:
    reply = make_chat("jumpstart-chat", content_handler="jumpstart-chat").invoke([SystemMessage("be brief"), HumanMessage("hello there")])
    assert reply.content == "Echo: hello there"
    assert sent(ep)["inputs"] == [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]]


def test_text_handler_needs_a_template_and_refuses_tools(make_chat: Any, ep: Any) -> None:
    with pytest.raises(ConfigurationError, match="chat_template"):
        make_chat("tgi", content_handler="tgi")
    chat = make_chat("tgi", content_handler="tgi", chat_template="llama3")
    with pytest.raises(ConfigurationError, match="cannot carry tools"):
        chat.bind_tools([{"type": "function", "function": {"name": "f", "parameters": {}}}])
    with pytest.raises(ConfigurationError, match="multimodal"):
        chat.invoke([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "data:x"}}])])
    assert ep.requests == []


def test_errors_are_typed(make_chat: Any, ep: Any, fault: Any) -> None:
    ep.faults = fault(fail_next=["ModelError"])
    with pytest.raises(e.ModelError):
        make_chat("openai").invoke("x")
    with pytest.raises(e.EndpointNotFoundError):
        make_chat("nope").invoke("x")


def test_sessions_open_reuse_close(make_chat: Any, ep: Any) -> None:
    chat = make_chat("lmi", content_handler="lmi", chat_template="chatml")
    with chat.open_session() as session:
        assert ep.requests[-1].headers["x-amzn-sagemaker-session-id"] == "NEW_SESSION"
        assert json.loads(ep.requests[-1].body) == {"requestType": "NEW_SESSION"}
        assert session.expires_at is not None
        session.invoke("first")
        assert ep.requests[-1].headers["x-amzn-sagemaker-session-id"] == session.session_id
        assert "".join(str(c.content) for c in session.stream("second turn"))
        assert ep.requests[-1].operation == "InvokeEndpointWithResponseStream"
        assert ep.requests[-1].headers["x-amzn-sagemaker-session-id"] == session.session_id
    assert session.closed_session_id == session.session_id
    assert json.loads(ep.requests[-1].body) == {"requestType": "CLOSE"}
    with pytest.raises(e.RequestValidationError):
        chat.invoke("after close", session_id=session.session_id)


async def test_async_sessions_and_calls(make_chat: Any, ep: Any) -> None:
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
