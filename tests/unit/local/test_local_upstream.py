"""The upstream proxy's HTTP client, against ``responses``."""

from __future__ import annotations

import pytest
import requests
import responses

from sm_llm.local._containers import ContainerRequest, ContainerUnavailable
from sm_llm.local._upstream import UpstreamContainer

BASE = "http://127.0.0.1:9000"


def _request(streaming: bool = False) -> ContainerRequest:
    return ContainerRequest(
        b'{"inputs": "hi"}',
        {
            "content-type": "application/json",
            "accept": "application/json",
            "x-amzn-sagemaker-custom-attributes": "k=v",
            "x-amzn-sagemaker-target-model": "m.tar.gz",
            "x-amzn-sagemaker-forwarded-api": "InvokeEndpoint",
        },
        streaming_api=streaming,
    )


@responses.activate
def test_forwards_body_and_headers() -> None:
    responses.add(
        responses.POST,
        f"{BASE}/invocations",
        body=b'{"ok": true}',
        content_type="application/json",
        headers={"X-Amzn-SageMaker-Custom-Attributes": "echo=1"},
    )
    response = UpstreamContainer(BASE + "/")(_request())
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.body() == b'{"ok": true}'
    assert response.headers == {"x-amzn-sagemaker-custom-attributes": "echo=1"}
    sent = responses.calls[0].request
    assert sent.body == b'{"inputs": "hi"}'
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["X-Amzn-SageMaker-Custom-Attributes"] == "k=v"
    assert sent.headers["X-Amzn-SageMaker-Target-Model"] == "m.tar.gz"


@responses.activate
def test_error_status_is_relayed() -> None:
    responses.add(responses.POST, f"{BASE}/invocations", status=418, body="teapot")
    response = UpstreamContainer(BASE)(_request(streaming=True))
    assert (response.status, response.body()) == (418, b"teapot")


@responses.activate
def test_stream_relays_chunks() -> None:
    responses.add(
        responses.POST,
        f"{BASE}/invocations",
        body=b"data: 1\n\ndata: 2\n\n",
        content_type="text/event-stream",
    )
    response = UpstreamContainer(BASE)(_request(streaming=True))
    assert response.content_type == "text/event-stream"
    assert response.body() == b"data: 1\n\ndata: 2\n\n"


@responses.activate
def test_connection_error_and_timeout() -> None:
    upstream = UpstreamContainer(BASE)
    with pytest.raises(ContainerUnavailable, match="Could not connect"):
        upstream(_request())
    responses.add(responses.POST, f"{BASE}/invocations", body=requests.ReadTimeout("slow"))
    with pytest.raises(ContainerUnavailable, match="timed out"):
        upstream(_request())


@responses.activate
def test_ping() -> None:
    upstream = UpstreamContainer(BASE)
    assert upstream.ping() is False
    responses.add(responses.GET, f"{BASE}/ping", status=200)
    assert upstream.ping() is True
