"""SECURITY.md claims that need a live call: secrets never reach logs, errors or callbacks."""

from __future__ import annotations

import asyncio
import http.server
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm import errors as e
from sm_llm.async_inference import AsyncInferenceConfig
from sm_llm.errors import ConfigurationError
from sm_llm.local import LocalEndpoint

CANARY = "canary-5b7c-secret"


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self.seen.append(repr((serialized, kwargs)))

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, **kwargs: Any) -> None:
        self.seen.append(repr((serialized, kwargs)))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append(repr((error, kwargs)))


@pytest.mark.parametrize("cls", [SageMakerLLM, ChatSageMaker])
def test_canary_secret_never_in_logs_errors_or_callbacks(
    cls: type, local_endpoint: Any, fault: Any, caplog: pytest.LogCaptureFixture, sm_transport: str
) -> None:
    for logger in ("sm_llm", "langchain_core", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=logger)
    recorder = Recorder()
    adapter = cls(
        endpoint_name="openai", content_handler="openai", endpoint_url=local_endpoint.url, region_name="us-east-1",
        aws_access_key_id="AKIATESTKEY", aws_secret_access_key=CANARY, aws_session_token=f"tok-{CANARY}",
        max_retries=2, transport=sm_transport,
    )
    adapter.invoke("hello", config={"callbacks": [recorder]})
    list(adapter.stream("stream me", config={"callbacks": [recorder]}))
    local_endpoint.faults = fault(fail_next=["ServiceUnavailable", "ModelError"])
    with pytest.raises(e.ModelError) as info:
        adapter.invoke("fails after a retry", config={"callbacks": [recorder]})
    texts = [caplog.text, str(info.value), repr(info.value), repr(info.value.__cause__), *recorder.seen]
    assert "retrying after ServiceUnavailableError" in caplog.text  # the logs were captured
    for text in texts:
        assert CANARY not in text


# -- SECURITY.md §3: no header injection, refused before anything is sent ----------------------

# Each routing field with a valid value and the operations that take it.
ROUTING = {
    "target_model": ("m.tar.gz", ("invoke", "ainvoke")),
    "enable_explanations": ("`true`", ("invoke", "ainvoke")),
    "target_variant": ("blue", ("invoke", "ainvoke", "stream")),
    "target_container_hostname": ("c-1", ("invoke", "ainvoke", "stream")),
    "inference_component_name": ("ic-1", ("invoke", "ainvoke", "stream")),
    "session_id": ("sess-1", ("invoke", "ainvoke", "stream")),
    "inference_id": ("req-1", ("invoke", "ainvoke", "stream", "submit")),
    "custom_attributes": ("a=1", ("invoke", "ainvoke", "stream", "submit")),
}
# "\n" passed "$"-anchored patterns; the others were trimmed away by str.strip().
TAILS = ["\n", "\r\n", "\v", "\x1c", "\x85", "\u2028", "\u3000"]


def _call(llm: SageMakerLLM, operation: str, **kwargs: Any) -> Any:
    if operation == "invoke":
        return llm.invoke("x", **kwargs)
    if operation == "ainvoke":
        return asyncio.run(llm.ainvoke("x", **kwargs))
    if operation == "stream":
        return list(llm.stream("x", **kwargs))
    return llm.submit("x", config=AsyncInferenceConfig(inline_body=True), **kwargs)


@pytest.mark.parametrize("tail", TAILS, ids=repr)
@pytest.mark.parametrize(
    ("field", "operation"), [(f, op) for f, (_, ops) in ROUTING.items() for op in ops]
)
def test_header_values_with_control_characters_never_reach_the_server(
    make_llm: Any, local_endpoint: Any, field: str, operation: str, tail: str
) -> None:
    llm = make_llm("tgi")
    value = ROUTING[field][0] + tail
    with pytest.raises(ConfigurationError, match=field):
        _call(llm, operation, **{field: value})
    if field == "custom_attributes":  # and in a mapping's value
        with pytest.raises(ConfigurationError, match=field):
            _call(llm, operation, custom_attributes={"a": "1" + tail})
    assert local_endpoint.requests == []


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"endpoint_name": "tgi\n"}, "endpoint_name"),
        ({"timeout": float("inf")}, "timeout"),
        ({"endpoint_url": "ftp://127.0.0.1:9"}, "endpoint_url"),
        ({"content_handler": {"request_template": "{}", "response": {"text": "x"}, "content_type": "a/\x00b"}}, "content_type"),
        ({"content_handler": {"request_template": "{}", "response": {"text": "x"}, "accept": "a/b\r\nX: 1"}}, "accept"),
        ({"content_handler": {"request_template": "{}", "response": {"text": "x"}, "accept": "é/json"}}, "accept"),
    ],
    ids=repr,
)
def test_bad_fields_are_refused_at_construction(local_endpoint: Any, fields: dict[str, Any], match: str) -> None:
    fields = {"endpoint_name": "tgi", "endpoint_url": local_endpoint.url, "region_name": "us-east-1", **fields}
    with pytest.raises(ConfigurationError, match=match):
        SageMakerLLM(**fields)
    assert local_endpoint.requests == []


# -- SECURITY.md §4: error messages stay small whatever the container answers -----------------


@pytest.mark.parametrize("operation", ["invoke", "ainvoke", "stream"])
def test_a_container_error_with_a_megabyte_body_gives_a_short_message(
    local_endpoint: Any, operation: str, sm_transport: str
) -> None:
    # The openai container quotes the bad value back: a 1 MB body inside a 424 ModelError.
    chat = ChatSageMaker(
        endpoint_name="openai", content_handler="openai", endpoint_url=local_endpoint.url, region_name="us-east-1",
        max_retries=0, model_kwargs={"temperature": "x" * 1_000_000}, transport=sm_transport,
    )
    with pytest.raises(e.ModelError) as info:
        if operation == "invoke":
            chat.invoke("hi")
        elif operation == "ainvoke":
            asyncio.run(chat.ainvoke("hi"))
        else:
            list(chat.stream("hi"))
    err = info.value
    assert len(str(err)) < 1_000 and len(repr(err)) < 1_100
    assert err.original_status_code == 400 and err.log_url is not None
    assert err.original_message is not None and len(err.original_message) < e.MAX_BODY + 100
    assert err.original_message.endswith("more characters]")


# -- SECURITY.md §4: a hostile reply is a typed error, never a bare RecursionError ---------------

DEEP_REPLY = b"[" * 100_000 + b"\n"
"""Deeper than the interpreter can follow: json.loads raises RecursionError on it."""


class _DeepReplyContainer(http.server.BaseHTTPRequestHandler):
    """A container that answers every invocation, whole or streamed, with ``[[[[…``."""

    def do_GET(self) -> None:
        self._reply(b"")  # /ping

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply(DEEP_REPLY)

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def deep_reply_endpoint() -> Iterator[LocalEndpoint]:
    """The local endpoint in front of a container whose replies are ``[[[[…``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DeepReplyContainer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with LocalEndpoint(upstream=f"http://127.0.0.1:{server.server_address[1]}") as endpoint:
            yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("cls", [SageMakerLLM, ChatSageMaker])
@pytest.mark.parametrize("handler", ["tgi", "openai", "lmi"])
def test_a_deeply_nested_reply_is_a_parse_error(cls: type, handler: str, deep_reply_endpoint: LocalEndpoint) -> None:
    extra = {"chat_template": "chatml"} if cls is ChatSageMaker and handler != "openai" else {}
    adapter = cls(
        endpoint_name="tgi", content_handler=handler, endpoint_url=deep_reply_endpoint.url,
        region_name="us-east-1", max_retries=0, **extra,
    )
    with pytest.raises(e.ResponseParseError, match="nested too deeply"):
        adapter.invoke("hi")
    with pytest.raises(e.ResponseParseError, match="nested too deeply") as info:
        list(adapter.stream("hi"))
    assert isinstance(info.value, e.StreamError)  # a stream failure all the same (partial_text)
    with pytest.raises(e.ResponseParseError, match="nested too deeply"):
        asyncio.run(adapter.ainvoke("hi"))
