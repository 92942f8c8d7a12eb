"""Hugging Face's own client reads the TGI reference container's streams.

The container is served over HTTP on loopback the way TGI serves itself (``POST /`` for
generate, ``POST /v1/chat/completions`` for the Messages API), and
``huggingface_InferenceClient`` streams from it: its parser stops only on
``data: [DONE]`` and decodes every other ``data:`` line as JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from huggingface_hub import InferenceClient

from sm_llm.local._containers import ContainerRequest, ModelInfo, invoke
from sm_llm.local._routing import CONTAINERS


class _TGIOverHTTP(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ContainerRequest(body, {}, ModelInfo(model_id="tgi-local"))
        response = invoke(CONTAINERS["tgi"], request)  # type: ignore[index]
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.end_headers()
        for piece in response.pieces:
            self.wfile.write(piece.data)
            self.wfile.flush()


@pytest.fixture(scope="module")
def tgi_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TGIOverHTTP)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_chat_completion_stream(tgi_url: str) -> None:
    client = InferenceClient(base_url=tgi_url, timeout=10)
    chunks = list(
        client.chat_completion([{"role": "user", "content": "a b c"}], stream=True, max_tokens=16)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: a b c"
    assert {c.choices[0].delta.role for c in chunks} == {"assistant"}
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"


def test_chat_completion_tool_call_stream(tgi_url: str) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    client = InferenceClient(base_url=tgi_url, timeout=10)
    chunks = list(
        client.chat_completion(
            [{"role": "user", "content": "weather city=Paris"}], tools=[tool], stream=True
        )
    )
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks]
    assert calls[0].function.name == "get_weather" and calls[0].type == "function"
    assert "".join(c.function.arguments for c in calls) == '{"city": "Paris"}'


def test_text_generation_stream(tgi_url: str) -> None:
    client = InferenceClient(model=tgi_url, timeout=10)
    tokens = list(client.text_generation("a b", max_new_tokens=8, stream=True, details=True))
    assert [t.token.text for t in tokens] == ["Echo:", " a", " b", "</s>"]
    assert tokens[-1].generated_text == "Echo: a b"
    assert tokens[-1].details is not None and tokens[-1].details.finish_reason == "eos_token"
