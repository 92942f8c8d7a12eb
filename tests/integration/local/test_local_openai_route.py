"""SageMaker's OpenAI-compatible route on the local endpoint, through real HTTP.

Clients are the ``openai`` SDK, ``langchain_openai.ChatOpenAI`` and boto3 (for the
invocations wire); bearer tokens are made with botocore's SigV4 query signer
(``make_bearer_token`` in tests/conftest.py), independently of the endpoint's verifier.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from sm_llm.local import (
    EndpointSpec,
    FaultConfig,
    LocalEndpoint,
    ModelSpec,
    NoCapacity,
    ServerConfig,
)

NO_CAPACITY = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling may be "
    "in-progress (if configured) or try to increase the capacity by invoking "
    "UpdateInferenceComponentRuntimeConfig API."
)
HELLO = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def route_ep() -> Iterator[LocalEndpoint]:
    config = ServerConfig(
        endpoints=[
            EndpointSpec(name="vllm", container="openai"),
            EndpointSpec(name="vllm-old", container="openai", reasoning_field="reasoning_content"),
            EndpointSpec(name="lmi", container="lmi"),
            EndpointSpec(name="tgi", container="tgi"),
            EndpointSpec(
                name="ics",
                components={
                    "ic-openai": ModelSpec(container="openai", greeting="IC:"),
                    "cold-n": ModelSpec(container="openai", no_capacity=NoCapacity(requests=2)),
                    "cold-t": ModelSpec(container="openai", no_capacity=NoCapacity(seconds=0.4)),
                },
            ),
        ]
    )
    with LocalEndpoint(config, credentials={"local": "local", "AKIDOTHER": "other-secret"}) as endpoint:
        yield endpoint


@pytest.fixture
def endpoint_under_test(route_ep: LocalEndpoint) -> Iterator[LocalEndpoint]:
    route_ep.wait_idle(5.0)
    route_ep.reset()
    yield route_ep


@pytest.fixture
def client(endpoint_under_test: LocalEndpoint, make_bearer_token: Callable[..., str]) -> Callable[..., openai.OpenAI]:
    def make(endpoint: str = "vllm", component: str | None = None, token: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=endpoint_under_test.openai_base_url(endpoint, component),
            api_key=token or make_bearer_token(),
            max_retries=0,
            timeout=10,
        )

    return make


def _post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _events(body: bytes) -> list[Any]:
    lines = [line for line in body.decode().split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


# -- chat, stream, tools -----------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["vllm", "lmi", "tgi"])
def test_chat_with_empty_model(client: Callable[..., openai.OpenAI], endpoint_under_test: LocalEndpoint, endpoint: str) -> None:
    reply = client(endpoint).chat.completions.create(model="", messages=HELLO, max_tokens=20)
    assert reply.choices[0].message.content == "Echo: hello there"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    record = endpoint_under_test.requests[-1]
    assert (record.operation, record.endpoint_name, record.status) == ("OpenAIChatCompletions", endpoint, 200)
    assert json.loads(record.body)["model"] == ""  # passed to the container as is
    assert record.headers["authorization"] == "Bearer <redacted>"


@pytest.mark.parametrize("endpoint", ["vllm", "lmi", "tgi"])
def test_stream_is_the_containers_sse(
    endpoint_under_test: LocalEndpoint, make_bearer_token: Callable[..., str], client: Callable[..., openai.OpenAI], endpoint: str
) -> None:
    url = endpoint_under_test.openai_base_url(endpoint) + "/chat/completions"
    body = {"model": "", "messages": HELLO, "stream": True}
    status, headers, raw = _post(url, body, {"Authorization": f"Bearer {make_bearer_token()}"})
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["Transfer-Encoding"] == "chunked"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in _events(raw) if e["choices"])
    assert text == "Echo: hello there"
    chunks = client(endpoint).chat.completions.create(model="", messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello there"


def test_tool_call_whole_and_streamed(client: Callable[..., openai.OpenAI]) -> None:
    messages = [{"role": "user", "content": "what is the weather in Paris"}]
    whole = client().chat.completions.create(model="", messages=messages, tools=[WEATHER_TOOL])
    call = whole.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    arguments = ""
    for chunk in client().chat.completions.create(model="", messages=messages, tools=[WEATHER_TOOL], stream=True):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            arguments += delta.function.arguments or "" if delta.function else ""
    assert json.loads(arguments) == json.loads(call.function.arguments)  # type: ignore[union-attr]


def test_component_in_the_path(client: Callable[..., openai.OpenAI], endpoint_under_test: LocalEndpoint) -> None:
    reply = client("ics", "ic-openai").chat.completions.create(model="", messages=HELLO)
    assert reply.choices[0].message.content == "IC: hello there"
    assert endpoint_under_test.requests[-1].component == "ic-openai"


def test_unknown_component_is_400(client: Callable[..., openai.OpenAI]) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client("ics", "nope").chat.completions.create(model="", messages=HELLO)
    assert info.value.status_code == 400
    assert info.value.body == {
        "message": "Inference Component nope not found on endpoint ics.",
        "type": "invalid_request_error",
        "param": None,
        "code": "validation_error",
    }


def test_component_header_is_refused_on_the_route(client: Callable[..., openai.OpenAI]) -> None:
    with pytest.raises(openai.BadRequestError, match="name the component in the path"):
        client("ics").chat.completions.create(
            model="", messages=HELLO, extra_headers={"X-Amzn-SageMaker-Inference-Component": "ic-openai"}
        )


def test_container_error_is_a_model_error_with_the_containers_status(client: Callable[..., openai.OpenAI]) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client().chat.completions.create(model="", messages=HELLO, temperature=5)
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "model_error" and body["type"] == "server_error"
    assert "Received client error (400) from primary" in body["message"]
    assert "'temperature' must be a number in [0, 2]" in body["message"]


def test_injected_throttling_in_the_openai_envelope(client: Callable[..., openai.OpenAI], endpoint_under_test: LocalEndpoint) -> None:
    endpoint_under_test.faults = FaultConfig(fail_next=["ThrottlingException"])
    with pytest.raises(openai.RateLimitError) as info:
        client().chat.completions.create(model="", messages=HELLO)
    assert info.value.body == {
        "message": "Rate exceeded (injected fault).",
        "type": "rate_limit_error",
        "param": None,
        "code": "throttling_exception",
    }


def test_other_openai_paths_are_404(endpoint_under_test: LocalEndpoint, make_bearer_token: Callable[..., str]) -> None:
    status, _, raw = _post(endpoint_under_test.openai_base_url("vllm") + "/completions", {"prompt": "x"}, {})
    assert status == 404
    assert json.loads(raw)["error"]["code"] == "unknown_operation"


# -- authentication --------------------------------------------------------------------------


def _sigv4_header(url: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=b"{}", headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("local", "local"), "sagemaker", "us-east-1").add_auth(request)
    return dict(request.headers)


def _auth_cases(make: Callable[..., str]) -> dict[str, tuple[dict[str, str] | None, int, str]]:
    """case -> (headers, status, code); None headers: a SigV4-signed request."""
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    return {
        "missing": ({}, 401, "missing_api_key"),
        "malformed": ({"Authorization": "Bearer sagemaker-api-key-!!!"}, 401, "invalid_api_key"),
        "not bearer": ({"Authorization": "Token abc"}, 401, "invalid_api_key"),
        "bad prefix": ({"Authorization": "Bearer sk-proj-abc"}, 401, "invalid_api_key"),
        "expired": ({"Authorization": f"Bearer {make(expires=60, signed_at=old)}"}, 401, "expired_api_key"),
        "wrong signature": ({"Authorization": f"Bearer {make('local', 'not-local')}"}, 403, "signature_mismatch"),
        "unknown key": ({"Authorization": f"Bearer {make('AKIDNOBODY', 'x')}"}, 403, "unknown_access_key"),
        "other region": ({"Authorization": f"Bearer {make(region='eu-west-1')}"}, 403, "invalid_region"),
        "sigv4": (None, 403, "access_denied"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "malformed", "not bearer", "bad prefix", "expired", "wrong signature", "unknown key",
     "other region", "sigv4"],
)
def test_auth_failures(endpoint_under_test: LocalEndpoint, make_bearer_token: Callable[..., str], case: str) -> None:
    headers, status, code = _auth_cases(make_bearer_token)[case]
    url = endpoint_under_test.openai_base_url("vllm") + "/chat/completions"
    if headers is None:
        headers = _sigv4_header(url)
    got, _, raw = _post(url, {"model": "", "messages": HELLO}, headers)
    assert got == status
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["type"] == ("authentication_error" if status == 401 else "permission_error")
    assert endpoint_under_test.requests[-1].status == status


def test_auth_failures_through_the_sdk(client: Callable[..., openai.OpenAI], make_bearer_token: Callable[..., str]) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(token="sagemaker-api-key-bm90IGEgdXJs").chat.completions.create(model="", messages=HELLO)
    with pytest.raises(openai.PermissionDeniedError):
        client(token=make_bearer_token("local", "nope")).chat.completions.create(model="", messages=HELLO)


def test_any_configured_key_and_session_tokens_are_accepted(
    client: Callable[..., openai.OpenAI], make_bearer_token: Callable[..., str]
) -> None:
    token = make_bearer_token("AKIDOTHER", "other-secret", session_token="session/+=", expires=43_200)
    assert client(token=token).chat.completions.create(model="", messages=HELLO).choices[0].message.content


def test_tokens_work_on_the_shared_endpoint_with_the_test_credentials(
    local_endpoint: LocalEndpoint, make_bearer_token: Callable[..., str]
) -> None:
    base = local_endpoint.openai_base_url("openai")
    for key in ("local", "testing"):
        sdk = openai.OpenAI(base_url=base, api_key=make_bearer_token(key, key), max_retries=0)
        assert sdk.chat.completions.create(model="", messages=HELLO).choices[0].message.content == "Echo: hello there"


# -- scale to zero ------------------------------------------------------------------------


def test_no_capacity_on_the_invocations_wire_then_scale_up(endpoint_under_test: LocalEndpoint, runtime_client_factory: Any) -> None:
    runtime = runtime_client_factory(endpoint_under_test.url)
    body = json.dumps({"messages": HELLO}).encode()
    for _ in range(2):
        with pytest.raises(ClientError) as info:
            runtime.invoke_endpoint_with_response_stream(
                EndpointName="ics", InferenceComponentName="cold-n", Body=body, ContentType="application/json"
            )
        error = info.value.response
        assert error["Error"] == {"Code": "ValidationError", "Message": NO_CAPACITY}
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    reply = runtime.invoke_endpoint(
        EndpointName="ics", InferenceComponentName="cold-n", Body=body, ContentType="application/json"
    )
    assert json.loads(reply["Body"].read())["choices"][0]["message"]["content"] == "Echo: hello there"


def test_no_capacity_on_the_openai_route_then_scale_up(client: Callable[..., openai.OpenAI]) -> None:
    sdk = client("ics", "cold-n")
    for _ in range(2):
        with pytest.raises(openai.BadRequestError) as info:
            sdk.chat.completions.create(model="", messages=HELLO)
        assert info.value.body == {
            "message": NO_CAPACITY, "type": "invalid_request_error", "param": None, "code": "validation_error",
        }
    assert sdk.chat.completions.create(model="", messages=HELLO).choices[0].message.content == "Echo: hello there"


def test_no_capacity_for_some_seconds_on_both_wires(
    client: Callable[..., openai.OpenAI], endpoint_under_test: LocalEndpoint, runtime_client_factory: Any
) -> None:
    runtime = runtime_client_factory(endpoint_under_test.url)
    body = json.dumps({"messages": HELLO}).encode()
    with pytest.raises(ClientError, match="has no capacity"):
        runtime.invoke_endpoint(EndpointName="ics", InferenceComponentName="cold-t", Body=body)
    with pytest.raises(openai.BadRequestError, match="has no capacity"):
        client("ics", "cold-t").chat.completions.create(model="", messages=HELLO)
    time.sleep(0.45)
    assert runtime.invoke_endpoint(EndpointName="ics", InferenceComponentName="cold-t", Body=body)["Body"].read()
    assert client("ics", "cold-t").chat.completions.create(model="", messages=HELLO).choices[0].message.content


# -- reasoning ------------------------------------------------------------------------------

REASONING = 'Let me think about "hello there".'


@pytest.mark.parametrize(("endpoint", "field"), [("vllm", "reasoning"), ("vllm-old", "reasoning_content")])
@pytest.mark.parametrize(
    "ask", [{"reasoning_effort": "low"}, {"chat_template_kwargs": {"enable_thinking": True}}]
)
def test_reasoning_whole_on_both_wires(
    endpoint_under_test: LocalEndpoint, client: Callable[..., openai.OpenAI], runtime_client_factory: Any,
    endpoint: str, field: str, ask: dict[str, Any],
) -> None:
    reply = client(endpoint).chat.completions.create(model="", messages=HELLO, extra_body=ask)
    message = reply.choices[0].message.model_dump()
    assert (message[field], message["content"]) == (REASONING, "Echo: hello there")
    other = "reasoning_content" if field == "reasoning" else "reasoning"
    assert other not in message
    runtime = runtime_client_factory(endpoint_under_test.url)
    raw = runtime.invoke_endpoint(EndpointName=endpoint, Body=json.dumps({"messages": HELLO, **ask}))
    assert json.loads(raw["Body"].read())["choices"][0]["message"][field] == REASONING


def test_no_reasoning_unless_asked(client: Callable[..., openai.OpenAI]) -> None:
    message = client().chat.completions.create(model="", messages=HELLO).choices[0].message.model_dump()
    assert "reasoning" not in message and "reasoning_content" not in message


def _stream_deltas(events: list[Any]) -> list[dict[str, Any]]:
    return [e["choices"][0]["delta"] for e in events if e["choices"]]


@pytest.mark.parametrize(("endpoint", "field"), [("vllm", "reasoning"), ("vllm-old", "reasoning_content")])
def test_reasoning_streamed_first_on_both_wires(
    endpoint_under_test: LocalEndpoint, make_bearer_token: Callable[..., str], runtime_client_factory: Any, endpoint: str, field: str
) -> None:
    body = {"model": "", "messages": HELLO, "stream": True, "reasoning_effort": "medium"}
    _, _, raw = _post(endpoint_under_test.openai_base_url(endpoint) + "/chat/completions", body,
                      {"Authorization": f"Bearer {make_bearer_token()}"})
    runtime = runtime_client_factory(endpoint_under_test.url)
    stream = runtime.invoke_endpoint_with_response_stream(EndpointName=endpoint, Body=json.dumps(body))
    payload = b"".join(event["PayloadPart"]["Bytes"] for event in stream["Body"])
    for wire in (raw, payload):
        deltas = _stream_deltas(_events(wire))
        kinds = [next((k for k in (field, "content") if d.get(k)), None) for d in deltas]
        kinds = [k for k in kinds if k]
        assert kinds == sorted(kinds, key=lambda k: k == "content")  # every reasoning delta first
        assert "".join(d.get(field, "") for d in deltas) == REASONING
        assert "".join(d.get("content") or "" for d in deltas) == "Echo: hello there"


def test_reasoning_deltas_come_before_tool_call_deltas(client: Callable[..., openai.OpenAI]) -> None:
    messages = [{"role": "user", "content": "what is the weather in Paris"}]
    order, arguments = [], ""
    chunks = client().chat.completions.create(
        model="", messages=messages, tools=[WEATHER_TOOL], stream=True, reasoning_effort="low"
    )
    for chunk in chunks:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta.model_dump()
        if delta.get("reasoning"):
            order.append("reasoning")
        for call in delta.get("tool_calls") or []:
            order.append("tool")
            arguments += call["function"]["arguments"] or ""
    assert order.index("tool") > max(i for i, kind in enumerate(order) if kind == "reasoning")
    assert json.loads(arguments) == {"city": "what is the weather in Paris"}


# -- langchain-openai -----------------------------------------------------------------------


def test_langchain_chat_openai(endpoint_under_test: LocalEndpoint, make_bearer_token: Callable[..., str]) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    model = langchain_openai.ChatOpenAI(
        base_url=endpoint_under_test.openai_base_url("ics", "ic-openai"), api_key=make_bearer_token(), model="", max_retries=0
    )
    assert model.invoke("hello there").content == "IC: hello there"
    assert "".join(str(chunk.content) for chunk in model.stream("hello there")) == "IC: hello there"
    bound = model.bind_tools([WEATHER_TOOL], tool_choice="get_weather")
    assert bound.invoke("weather in Paris?").tool_calls[0]["name"] == "get_weather"
