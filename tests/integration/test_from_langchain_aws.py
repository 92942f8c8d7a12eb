"""langchain-aws handler objects used as content handlers, through real boto3 to the
local endpoint.

The handlers here follow langchain-aws's interface exactly (``content_type``,
``accepts``, ``transform_input(prompt or messages, model_kwargs) -> bytes``,
``transform_output(output)``: the response body — a stream with ``.read()`` — for a
whole reply, one line's bytes per call when streaming) without importing it; the
last tests use the real base classes when langchain-aws is installed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)

from sm_llm import ConfigurationError, SageMakerEmbeddings
from sm_llm.errors import ResponseParseError


class TgiHandler:
    """A langchain-aws LLMContentHandler for TGI, as users write them (whole replies)."""

    content_type = "application/json"
    accepts = "application/json"

    def __init__(self) -> None:
        self.inputs: list[tuple[Any, dict[str, Any]]] = []

    def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
        self.inputs.append((prompt, model_kwargs))
        return json.dumps({"inputs": prompt, "parameters": model_kwargs}).encode("utf-8")

    def transform_output(self, output: Any) -> str:
        return str(json.loads(output.read().decode("utf-8"))[0]["generated_text"])


class TgiStreamingHandler(TgiHandler):
    """The streaming variant: asks TGI to stream; each call gets one SSE line."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []

    def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
        return json.dumps({"inputs": prompt, "parameters": model_kwargs, "stream": True}).encode()

    def transform_output(self, output: Any) -> str:
        assert isinstance(output, bytes)
        self.lines.append(output)
        if not output.startswith(b"data:"):
            return ""
        token = json.loads(output[5:])["token"]
        return "" if token["special"] else str(token["text"])


class ChatHandler:
    """A langchain-aws ChatModelContentHandler for an OpenAI-compatible container."""

    content_type = "application/json"
    accepts = "application/json"

    def __init__(self) -> None:
        self.messages: list[list[dict[str, Any]]] = []

    def transform_input(self, prompt: list[dict[str, Any]], model_kwargs: dict[str, Any]) -> bytes:
        self.messages.append(prompt)
        return json.dumps({"messages": prompt, **model_kwargs}).encode("utf-8")

    def transform_output(self, output: Any) -> BaseMessage:
        if isinstance(output, bytes):  # a stream line
            data = output.decode("utf-8").removeprefix("data:").strip()
            if not data or data == "[DONE]":
                return AIMessageChunk(content="")
            choices = json.loads(data).get("choices") or [{}]
            return AIMessageChunk(content=choices[0].get("delta", {}).get("content") or "")
        reply = json.loads(output.read().decode("utf-8"))
        usage = reply["usage"]
        return AIMessage(
            content=reply["choices"][0]["message"]["content"],
            usage_metadata={"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                            "total_tokens": usage["total_tokens"]},
            response_metadata={"finish_reason": reply["choices"][0]["finish_reason"]},
        )


def test_llm_handler_object_invokes(make_llm: Any, local_endpoint: Any) -> None:
    handler = TgiHandler()
    llm = make_llm("tgi", content_handler=handler, model_kwargs={"max_new_tokens": 4},
                   endpoint_kwargs={"CustomAttributes": "accept_eula=true"})
    assert llm.invoke("one two three four five six") == "Echo: one two three"
    request = local_endpoint.requests[-1]
    assert json.loads(request.body) == {"inputs": "one two three four five six", "parameters": {"max_new_tokens": 4}}
    assert request.headers["content-type"] == "application/json" and request.headers["accept"] == "application/json"
    assert request.headers["x-amzn-sagemaker-custom-attributes"] == "accept_eula=true"
    # per-call model_kwargs reach transform_input over the instance's; stop applies client-side
    assert llm.invoke("a b. c d", model_kwargs={"max_new_tokens": 9}, stop=["."]) == "Echo: a b"
    assert handler.inputs[-1] == ("a b. c d", {"max_new_tokens": 9})


def test_llm_handler_object_async_and_batch(make_llm: Any) -> None:
    llm = make_llm("tgi", content_handler=TgiHandler(), model_kwargs={"max_new_tokens": 2})
    assert asyncio.run(llm.ainvoke("alpha beta gamma")) == "Echo: alpha"
    assert llm.batch(["p1 x", "p2 y"]) == ["Echo: p1", "Echo: p2"]


def test_llm_handler_object_streams_line_by_line(make_llm: Any) -> None:
    handler = TgiStreamingHandler()
    llm = make_llm("tgi", content_handler=handler, model_kwargs={"max_new_tokens": 8})
    pieces = list(llm.stream("red green blue"))
    assert "".join(pieces) == "Echo: red green blue"
    assert len(pieces) >= 4  # token by token, not one joined reply
    assert all(line.startswith(b"data:") and not line.endswith(b"\n") for line in handler.lines)
    assert "".join(llm.stream("red green. blue", stop=["."])) == "Echo: red green"

    async def astream() -> list[str]:
        return [piece async for piece in llm.astream("red green blue")]

    assert "".join(asyncio.run(astream())) == "Echo: red green blue"


def test_chat_handler_object_gets_messages(make_chat: Any, local_endpoint: Any) -> None:
    handler = ChatHandler()
    chat = make_chat("openai", content_handler=handler, model_kwargs={"max_tokens": 5})
    reply = chat.invoke([SystemMessage("be brief"), HumanMessage("hello there")])
    assert reply.content == "Echo: hello there"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 3
    assert reply.response_metadata["finish_reason"] == "stop"
    assert handler.messages[-1] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    assert json.loads(local_endpoint.requests[-1].body)["max_tokens"] == 5


def test_chat_handler_object_streams(make_chat: Any) -> None:
    chat = make_chat("openai", content_handler=ChatHandler(), model_kwargs={"max_tokens": 5, "stream": True})
    chunks = list(chat.stream("hello stream"))
    assert "".join(str(c.content) for c in chunks) == "Echo: hello stream"
    assert all(isinstance(c, AIMessageChunk) for c in chunks)


def test_handler_object_errors_are_typed(make_llm: Any, make_chat: Any, local_endpoint: Any) -> None:
    class Broken(TgiHandler):
        def transform_output(self, output: Any) -> str:
            raise KeyError("generated_text")

    class BadInput(TgiHandler):
        def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
            raise TypeError("no")

    with pytest.raises(ResponseParseError, match=r"Broken\.transform_output failed on the reply: KeyError") as info:
        make_llm("tgi", content_handler=Broken()).invoke("hi")
    assert "Echo" in (info.value.body_snippet or "")
    with pytest.raises(ConfigurationError, match=r"BadInput\.transform_input failed: TypeError: no"):
        make_llm("tgi", content_handler=BadInput()).invoke("hi")
    count = len(local_endpoint.requests)
    with pytest.raises(ConfigurationError, match=r"max_tokens cannot be used with the langchain-aws handler .*model_kwargs"):
        make_llm("tgi", content_handler=TgiHandler(), max_tokens=5)
    with pytest.raises(ConfigurationError, match="max_tokens cannot be used"):
        make_llm("tgi", content_handler=TgiHandler()).invoke("hi", max_tokens=5)
    with pytest.raises(ConfigurationError, match="cannot carry tools"):
        make_chat("openai", content_handler=ChatHandler()).bind_tools([{"type": "function", "function": {"name": "f", "parameters": {}}}])
    with pytest.raises(ConfigurationError, match="chat_template would be ignored"):
        make_chat("openai", content_handler=ChatHandler(), chat_template="llama3")
    assert len(local_endpoint.requests) == count


def test_not_a_handler_is_named(make_llm: Any, make_chat: Any) -> None:
    class ContentHandler:  # the user's class may well be called this
        content_type = "application/json"

        def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
            return b"{}"

    for make, name in ((make_llm, "tgi"), (make_chat, "openai")):
        with pytest.raises(ConfigurationError, match=r"object is not a content handler: it lacks transform_output, accepts"):
            make(name, content_handler=ContentHandler())
    with pytest.raises(ConfigurationError, match="langchain-aws handler objects work with SageMakerLLM and ChatSageMaker"):
        SageMakerEmbeddings(endpoint_name="tei", content_handler=ChatHandler())


def test_handler_object_cannot_be_written_as_config(make_llm: Any) -> None:
    with pytest.raises(ConfigurationError, match="is a Python object and cannot be written as configuration"):
        make_llm("tgi", content_handler=TgiHandler()).to_config()


# -- the real langchain-aws base classes ------------------------------------------------------


def test_real_langchain_aws_handlers(make_llm: Any, make_chat: Any, local_endpoint: Any) -> None:
    sagemaker_llm = pytest.importorskip("langchain_aws.llms.sagemaker_endpoint")
    sagemaker_chat = pytest.importorskip("langchain_aws.chat_models.sagemaker_endpoint")

    class ContentHandler(sagemaker_llm.LLMContentHandler):  # type: ignore[misc, name-defined]
        content_type = "application/json"
        accepts = "application/json"

        def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
            return json.dumps({"inputs": prompt, "parameters": model_kwargs}).encode("utf-8")

        def transform_output(self, output: Any) -> str:
            return str(json.loads(output.read().decode("utf-8"))[0]["generated_text"])

    class ChatContentHandler(ChatHandler, sagemaker_chat.ChatModelContentHandler):  # type: ignore[misc, name-defined]
        content_type = "application/json"
        accepts = "application/json"

    llm = make_llm("tgi", content_handler=ContentHandler(), model_kwargs={"max_new_tokens": 2})
    assert llm.invoke("from langchain aws") == "Echo: from"
    chat = make_chat("openai", content_handler=ChatContentHandler(), model_kwargs={"max_tokens": 3})
    assert chat.invoke("from langchain aws").content == "Echo: from langchain"
