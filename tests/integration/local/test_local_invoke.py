"""Every reference container, whole and streamed, and every routing option, through boto3."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sm_llm.local import LocalEndpoint

CHAT = [{"role": "user", "content": "hello local world"}]
EULA = "accept_eula=true"


def invoke(client: Any, endpoint: str, body: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    response = client.invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json", **kwargs
    )
    return response, json.loads(response["Body"].read())


def stream_bytes(client: Any, endpoint: str, body: Any, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json", **kwargs
    )
    parts = [event["PayloadPart"]["Bytes"] for event in response["Body"]]
    return response, b"".join(parts)


def sse_records(data: bytes) -> list[Any]:
    records = []
    for line in data.decode("utf-8").splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload != "[DONE]":
                records.append(json.loads(payload))
    return records


def chat_text(records: list[Any]) -> str:
    return "".join(
        r["choices"][0]["delta"].get("content") or "" for r in records if r.get("choices")
    )


@pytest.mark.parametrize(
    ("endpoint", "body", "extract", "kwargs"),
    [
        ("tgi", {"inputs": "hello local world"}, lambda b: b[0]["generated_text"], {}),
        ("lmi", {"inputs": "hello local world"}, lambda b: b["generated_text"], {}),
        ("openai", {"messages": CHAT}, lambda b: b["choices"][0]["message"]["content"], {}),
        ("jumpstart", {"inputs": "hello local world"}, lambda b: b[0]["generation"], {}),
        (
            "jumpstart-chat",
            {"inputs": [CHAT]},
            lambda b: b[0]["generation"]["content"],
            {"CustomAttributes": EULA},
        ),
        ("text2text", {"text_inputs": "hello local world"}, lambda b: b["generated_texts"][0], {}),
    ],
)
def test_every_container_whole(
    runtime_client: Any, local_endpoint: LocalEndpoint, endpoint: str, body: Any, extract: Any, kwargs: Any
) -> None:
    response, payload = invoke(runtime_client, endpoint, body, **kwargs)
    assert extract(payload) == "Echo: hello local world"
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ResponseMetadata"]["RequestId"]
    (recorded,) = local_endpoint.requests
    assert recorded.operation == "InvokeEndpoint" and recorded.endpoint_name == endpoint
    assert recorded.status == 200 and recorded.stream_completed is None
    assert json.loads(recorded.body) == body


def test_custom_attributes_echoed_only_when_sent(runtime_client: Any) -> None:
    response, _ = invoke(runtime_client, "tgi", {"inputs": "x"}, CustomAttributes="trace=1;a=b")
    assert response["CustomAttributes"] == "trace=1;a=b"
    response, _ = invoke(runtime_client, "tgi", {"inputs": "x"})
    assert "CustomAttributes" not in response


def test_tgi_stream(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    response, data = stream_bytes(
        runtime_client, "tgi", {"inputs": "hello local world", "stream": True}
    )
    assert response["ContentType"] == "text/event-stream"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert data.startswith(b"data: {")  # axum 0.7 (TGI >= 2.1) writes the space
    records = sse_records(data)
    assert "".join(r["token"]["text"] for r in records if not r["token"]["special"]) == (
        "Echo: hello local world"
    )
    assert records[-1]["generated_text"] == "Echo: hello local world"
    (recorded,) = local_endpoint.requests
    assert recorded.operation == "InvokeEndpointWithResponseStream"
    assert recorded.stream_completed is True and recorded.client_disconnected is False


def test_lmi_stream(runtime_client: Any) -> None:
    response, data = stream_bytes(runtime_client, "lmi", {"inputs": "hello local world", "stream": True})
    assert response["ContentType"] == "application/jsonlines"
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert "".join(line["token"]["text"] for line in lines) == "Echo: hello local world"
    assert lines[-1]["details"]["finish_reason"] == "eos_token"


@pytest.mark.parametrize("endpoint", ["openai", "tgi"])
def test_chat_stream(runtime_client: Any, endpoint: str) -> None:
    body = {"messages": CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response, data = stream_bytes(runtime_client, endpoint, body)
    assert response["ContentType"] == "text/event-stream"
    assert data.rstrip().endswith(b"[DONE]")
    records = sse_records(data)
    assert chat_text(records) == "Echo: hello local world"
    assert records[-1]["usage"]["completion_tokens"] == 4


def test_lmi_chat_stream(runtime_client: Any) -> None:
    _, data = stream_bytes(runtime_client, "lmi", {"messages": CHAT, "stream": True})
    assert chat_text([json.loads(line) for line in data.decode().splitlines()]) == (
        "Echo: hello local world"
    )


@pytest.mark.parametrize(
    ("endpoint", "body", "kwargs"),
    [
        ("jumpstart", {"inputs": "hello"}, {}),
        ("jumpstart-chat", {"inputs": [CHAT]}, {"CustomAttributes": EULA}),
        ("text2text", {"text_inputs": "hello"}, {}),
        ("tgi", {"inputs": "hello"}, {}),
    ],
)
def test_non_streaming_body_on_stream_route(
    runtime_client: Any, endpoint: str, body: Any, kwargs: Any
) -> None:
    response, data = stream_bytes(runtime_client, endpoint, body, **kwargs)
    assert response["ContentType"] == "application/json"
    assert "Echo: hello" in json.dumps(json.loads(data))


def test_stream_accept_header_is_forwarded(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    stream_bytes(runtime_client, "tgi", {"inputs": "x", "stream": True}, Accept="text/event-stream")
    headers = local_endpoint.requests[0].headers
    assert headers["x-amzn-sagemaker-accept"] == "text/event-stream"
    assert "accept" not in headers or headers["accept"] != "text/event-stream"


# -- routing -----------------------------------------------------------------------------------


def test_multi_model_endpoint(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    _, a = invoke(runtime_client, "mme", {"inputs": "x"}, TargetModel="model-a.tar.gz")
    _, b = invoke(runtime_client, "mme", {"inputs": "x"}, TargetModel="model-b.tar.gz")
    assert (a[0]["generated_text"], b[0]["generated_text"]) == ("A: x", "B: x")
    headers = [r.headers["x-amzn-sagemaker-target-model"] for r in local_endpoint.requests]
    assert headers == ["model-a.tar.gz", "model-b.tar.gz"]


def test_target_variant(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    response, body = invoke(runtime_client, "variants", {"inputs": "x"}, TargetVariant="green")
    assert response["InvokedProductionVariant"] == "green"
    assert body[0]["generated_text"] == "green: x"
    response, _ = stream_bytes(runtime_client, "variants", {"inputs": "x"}, TargetVariant="blue")
    assert response["InvokedProductionVariant"] == "blue"
    assert [r.invoked_variant for r in local_endpoint.requests] == ["green", "blue"]
    assert local_endpoint.requests[0].headers["x-amzn-sagemaker-target-variant"] == "green"


def test_weighted_variant_choice_uses_both(runtime_client: Any) -> None:
    seen = set()
    for _ in range(20):
        response, body = invoke(runtime_client, "variants", {"inputs": "x"})
        variant = response["InvokedProductionVariant"]
        assert body[0]["generated_text"] == f"{variant}: x"
        seen.add(variant)
    assert seen == {"blue", "green"}


@pytest.mark.parametrize(("hostname", "key"), [("tgi-c", "tgi"), ("lmi-c", "lmi")])
def test_multi_container(runtime_client: Any, local_endpoint: LocalEndpoint, hostname: str, key: str) -> None:
    _, body = invoke(
        runtime_client, "multi-container", {"inputs": "x"}, TargetContainerHostname=hostname
    )
    text = body[0]["generated_text"] if key == "tgi" else body["generated_text"]
    assert text == "Echo: x"
    recorded = local_endpoint.requests[0]
    assert recorded.headers["x-amzn-sagemaker-target-container-hostname"] == hostname


def test_inference_components(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    _, body = invoke(runtime_client, "components", {"inputs": "x"}, InferenceComponentName="ic-tgi")
    assert body[0]["generated_text"] == "Echo: x"
    _, body = invoke(
        runtime_client, "components", {"messages": CHAT}, InferenceComponentName="ic-openai"
    )
    assert body["choices"][0]["message"]["content"] == "Echo: hello local world"
    _, data = stream_bytes(
        runtime_client,
        "components",
        {"messages": CHAT, "stream": True},
        InferenceComponentName="ic-openai",
    )
    assert chat_text(sse_records(data)) == "Echo: hello local world"
    assert local_endpoint.requests[0].headers["x-amzn-sagemaker-inference-component"] == "ic-tgi"


def test_other_headers_are_recorded(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    invoke(
        runtime_client,
        "tgi",
        {"inputs": "x"},
        Accept="application/json",
        InferenceId="inf-1",
        EnableExplanations="`true`",
    )
    headers = local_endpoint.requests[0].headers
    assert headers["accept"] == "application/json"
    assert headers["x-amzn-sagemaker-inference-id"] == "inf-1"
    assert headers["x-amzn-sagemaker-enable-explanations"] == "`true`"
    assert headers["content-type"] == "application/json"


def test_ping(local_endpoint: LocalEndpoint) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{local_endpoint.url}/ping", timeout=5) as reply:
        assert reply.status == 200
