"""A real container subprocess behind LocalEndpoint(upstream=...), called through boto3."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sm_llm.local import LocalEndpoint

TINY = Path(__file__).with_name("tiny_container.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ping(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as reply:
                if reply.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def tiny_container() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, str(TINY), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        if not _wait_ping(url, 10.0):
            pytest.fail("tiny container did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def proxy(tiny_container: str) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(upstream=tiny_container) as endpoint:
        yield endpoint


@pytest.fixture
def client(proxy: LocalEndpoint, runtime_client_factory: Any) -> Any:
    proxy.reset()
    return runtime_client_factory(proxy.url)


def test_invoke_through_upstream(client: Any) -> None:
    response = client.invoke_endpoint(
        EndpointName="any-name",
        Body=json.dumps({"inputs": "hi"}),
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes="k=v",
    )
    assert response["ContentType"] == "application/json"
    assert response["CustomAttributes"] == "k=v"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    body = json.loads(response["Body"].read())
    assert body["echo"] == "hi"
    headers = body["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert headers["x-amzn-sagemaker-custom-attributes"] == "k=v"
    assert headers["x-amzn-sagemaker-forwarded-api"] == "InvokeEndpoint"
    assert "authorization" not in headers


def test_routing_headers_are_forwarded(client: Any) -> None:
    response = client.invoke_endpoint(
        EndpointName="mme", Body=json.dumps({"inputs": "x"}), TargetModel="model-a.tar.gz"
    )
    headers = json.loads(response["Body"].read())["headers"]
    assert headers["x-amzn-sagemaker-target-model"] == "model-a.tar.gz"


def test_stream_through_upstream(client: Any, proxy: LocalEndpoint) -> None:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="tgi",
        Body=json.dumps({"inputs": "one two three", "stream": True}),
        Accept="text/event-stream",
    )
    assert response["ContentType"] == "text/event-stream"
    data = b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"])
    tokens = [json.loads(block[6:])["token"] for block in data.split(b"\n\n") if block]
    assert tokens == ["one", "two", "three"]
    assert proxy.requests[0].stream_completed is True


def test_upstream_error_becomes_model_error(client: Any) -> None:
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="tgi", Body=json.dumps({"fail": 418}))
    response = info.value.response
    assert response["OriginalStatusCode"] == 418
    assert response["OriginalMessage"] == "tiny failure"
    with pytest.raises(client.exceptions.ModelError):
        client.invoke_endpoint_with_response_stream(EndpointName="tgi", Body=json.dumps({"fail": 500}))


def test_unreachable_upstream(runtime_client_factory: Any) -> None:
    with LocalEndpoint(upstream=f"http://127.0.0.1:{_free_port()}") as endpoint:
        client = runtime_client_factory(endpoint.url)
        with pytest.raises(client.exceptions.ModelError) as info:
            client.invoke_endpoint(EndpointName="tgi", Body=b"{}")
    assert info.value.response["OriginalStatusCode"] == 0
    assert "Could not connect" in info.value.response["OriginalMessage"]
