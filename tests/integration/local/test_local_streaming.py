"""Stream shaping, mid-stream errors, client disconnects, pacing and concurrency."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import EventStreamError

from sm_llm.local import FaultConfig, LocalEndpoint

WORDS = " ".join(f"wörd{i}✓" for i in range(40))


def _stream(client: Any, endpoint: str, body: Any, **kwargs: Any) -> Any:
    return client.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json", **kwargs
    )


def _parts(response: Any) -> list[bytes]:
    return [event["PayloadPart"]["Bytes"] for event in response["Body"]]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("tgi", {"inputs": WORDS, "stream": True, "parameters": {"max_new_tokens": 50}}),
        ("lmi", {"inputs": WORDS, "stream": True, "parameters": {"max_new_tokens": 50}}),
        ("openai", {"messages": [{"role": "user", "content": WORDS}], "stream": True}),
        ("jumpstart", {"inputs": WORDS}),
    ],
)
def test_random_split_reassembles_same_bytes(
    runtime_client: Any, local_endpoint: LocalEndpoint, seed: int, endpoint: str, body: Any
) -> None:
    reference = b"".join(_parts(_stream(runtime_client, endpoint, body)))
    local_endpoint.faults = FaultConfig(stream_split_seed=seed, stream_max_part=7)
    parts = _parts(_stream(runtime_client, endpoint, body))
    assert len(parts) > 10 and max(len(p) for p in parts) <= 7
    assert _normalize(b"".join(parts)) == _normalize(reference)
    split_inside_char = any(
        _is_cut_inside_utf8(b"".join(parts[: i + 1])) for i in range(len(parts) - 1)
    )
    assert split_inside_char


def _normalize(data: bytes) -> bytes:
    """Blank out what differs between two OpenAI replies (completion id, timestamp)."""
    return re.sub(rb'"(id|created)":("[^"]*"|\d+)', b"", data)


def _is_cut_inside_utf8(prefix: bytes) -> bool:
    try:
        prefix.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_omit_trailing_newline(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    local_endpoint.faults = FaultConfig(stream_omit_trailing_newline=True)
    data = b"".join(_parts(_stream(runtime_client, "lmi", {"inputs": "a b", "stream": True})))
    assert not data.endswith(b"\n") and data.count(b"\n") == 2
    assert json.loads(data.splitlines()[-1])["generated_text"] == "Echo: a b"


@pytest.mark.parametrize("code", ["ModelInvocationTimeExceeded", "StreamBroken"])
def test_model_stream_error_after_n_tokens(
    runtime_client: Any, local_endpoint: LocalEndpoint, code: str
) -> None:
    local_endpoint.faults = FaultConfig(stream_error_after_tokens=3, stream_error_code=code)  # type: ignore[arg-type]
    response = _stream(runtime_client, "tgi", {"inputs": "a b c d e f", "stream": True})
    received = []
    with pytest.raises(EventStreamError) as info:
        for event in response["Body"]:
            received.append(event["PayloadPart"]["Bytes"])
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert info.value.response["Error"]["Message"]
    tokens = [json.loads(r[5:])["token"]["text"] for r in b"".join(received).split(b"\n\n") if r]
    assert tokens == ["Echo:", " a", " b"]
    recorded = local_endpoint.requests[0]
    assert recorded.stream_error == "ModelStreamError" and recorded.stream_completed is True


def test_internal_stream_failure(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    local_endpoint.faults = FaultConfig(
        stream_error_after_tokens=0, stream_error_type="InternalStreamFailure"
    )
    response = _stream(
        runtime_client, "openai", {"messages": [{"role": "user", "content": "x"}], "stream": True}
    )
    events = []
    with pytest.raises(EventStreamError) as info:
        events.extend(response["Body"])
    assert info.value.response["Error"]["Code"] == "InternalStreamFailure"
    assert len(events) == 1  # the role-only chunk carries no token


def test_token_delay_is_observable(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    local_endpoint.faults = FaultConfig(token_delay_ms=40)
    response = _stream(runtime_client, "tgi", {"inputs": "a b c d", "stream": True})
    arrivals = []
    start = time.monotonic()
    for _ in response["Body"]:
        arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 6
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.02


def test_early_close_marks_client_disconnected(
    runtime_client: Any, local_endpoint: LocalEndpoint
) -> None:
    local_endpoint.faults = FaultConfig(token_delay_ms=10)
    words = " ".join(f"w{i}" for i in range(400))
    body = {"inputs": words, "stream": True, "parameters": {"max_new_tokens": 400}}
    response = _stream(runtime_client, "tgi", body)
    stream = response["Body"]
    for count, _ in enumerate(stream):
        if count == 2:
            break
    stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not local_endpoint.requests[0].client_disconnected:
        time.sleep(0.02)
    recorded = local_endpoint.requests[0]
    assert recorded.client_disconnected is True
    assert recorded.stream_completed is False
    assert local_endpoint.wait_idle(5)


@pytest.mark.serial  # timing-sensitive: run alone, after the parallel run
def test_concurrency_peak_in_flight(local_endpoint: LocalEndpoint, runtime_client_factory: Any) -> None:
    client = runtime_client_factory(local_endpoint.url, max_pool_connections=64)
    local_endpoint.faults = FaultConfig(latency_ms=200)
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def call() -> None:
        try:
            barrier.wait(5)
            client.invoke_endpoint(EndpointName="tgi", Body=json.dumps({"inputs": "x"}))["Body"].read()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(50)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - started
    assert not errors
    assert local_endpoint.peak_in_flight >= 40
    assert elapsed < 3
    assert len(local_endpoint.requests) == 50
