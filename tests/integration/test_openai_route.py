"""ChatSageMaker(api="openai") through real HTTP (httpx) to the local endpoint's OpenAI route.

The local endpoint verifies every bearer token against the credentials it is given (here the
test environment's ``testing`` keys and the README's ``local`` ones), as the real route does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field, SecretStr

from sm_llm import ChatSageMaker, ConfigurationError, SageMakerLLM
from sm_llm import errors as e
from sm_llm.auth import TokenSource, credentials_for, generate_bearer_token
from sm_llm.local import (
    EndpointSpec,
    FaultConfig,
    LocalEndpoint,
    ModelSpec,
    NoCapacity,
    ServerConfig,
)
from sm_llm.transports import ClientSettings, OpenAIRouteTransport

ROUTE = "OpenAIChatCompletions"


@pytest.fixture(scope="module")
def route_ep() -> Iterator[LocalEndpoint]:
    config = ServerConfig(
        endpoints=[
            EndpointSpec(name="vllm", container="openai"),
            EndpointSpec(
                name="ics",
                components={
                    "ic-openai": ModelSpec(container="openai", greeting="IC:"),
                    "cold": ModelSpec(container="openai", no_capacity=NoCapacity(requests=2)),
                },
            ),
        ]
    )
    with LocalEndpoint(config, credentials={"testing": "testing", "local": "local"}) as endpoint:
        yield endpoint


@pytest.fixture
def ep(route_ep: LocalEndpoint) -> Iterator[LocalEndpoint]:
    route_ep.wait_idle(5.0)
    route_ep.reset()
    yield route_ep


@pytest.fixture
def make_chat(ep: LocalEndpoint) -> Callable[..., ChatSageMaker]:
    def make(endpoint_name: str = "vllm", **fields: Any) -> ChatSageMaker:
        fields.setdefault("max_retries", 0)
        return ChatSageMaker(
            endpoint_name=endpoint_name, api="openai", endpoint_url=ep.url, region_name="us-east-1", **fields
        )

    return make


def sent(ep: LocalEndpoint) -> Any:
    return json.loads(ep.requests[-1].body)


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"sunny in {city}"


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="the question")
    punchline: str


# -- the wire ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("component", "greeting"), [(None, "Echo:"), ("ic-openai", "IC:")])
def test_invoke_goes_to_the_route_with_a_bearer_token(
    make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, component: str | None, greeting: str
) -> None:
    chat = make_chat("ics" if component else "vllm", inference_component_name=component)
    reply = chat.invoke("hello there")
    assert reply.content == f"{greeting} hello there"
    assert reply.usage_metadata == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["request_id"]
    record = ep.requests[-1]
    assert (record.operation, record.component, record.status) == (ROUTE, component, 200)
    assert record.headers["authorization"] == "Bearer <redacted>"
    assert "x-amzn-sagemaker-inference-component" not in record.headers  # the component is in the path
    assert sent(ep) == {"model": "", "messages": [{"role": "user", "content": "hello there"}]}


def test_model_and_parameters_in_the_body(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    make_chat(max_tokens=9, temperature=0.5, model_kwargs={"model": "lora-a", "top_k": 3}).invoke("x")
    assert sent(ep) == {
        "model": "lora-a", "top_k": 3, "max_tokens": 9, "temperature": 0.5,
        "messages": [{"role": "user", "content": "x"}],
    }


@pytest.mark.parametrize("component", [None, "ic-openai"])
def test_stream_is_parsed_from_the_routes_sse(
    make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, component: str | None
) -> None:
    chat = make_chat("ics" if component else "vllm", inference_component_name=component)
    chunks = list(chat.stream("a b c"))
    assert "".join(str(c.content) for c in chunks).endswith(" a b c")
    assert sum(1 for c in chunks if c.content) >= 3
    assert chunks[-1].chunk_position == "last"
    assert chunks[-1].usage_metadata == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}
    assert sent(ep)["stream"] is True and ep.requests[-1].operation == ROUTE


async def test_async_invoke_stream_and_batch(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    chat = make_chat(inference_component_name=None)
    assert (await chat.ainvoke("async hello")).content == "Echo: async hello"
    assert "".join([str(c.content) async for c in chat.astream("streamed")]) == "Echo: streamed"
    results = await chat.abatch([f"m{i}" for i in range(5)])
    assert [r.content for r in results] == [f"Echo: m{i}" for i in range(5)]
    await chat.aclose()
    assert (await chat.ainvoke("again")).content == "Echo: again"  # a new client after aclose
    await chat.aclose()


async def test_async_client_per_event_loop(make_chat: Callable[..., ChatSageMaker]) -> None:
    chat = make_chat()
    assert (await chat.ainvoke("one")).content == "Echo: one"
    other = await asyncio.to_thread(lambda: asyncio.run(chat.ainvoke("two")))  # another loop
    assert other.content == "Echo: two"
    await chat.aclose()


def test_early_stop_of_a_stream_closes_it(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    chat = make_chat()
    assert chat.invoke("alpha beta. gamma", stop=["."]).content == "Echo: alpha beta"
    text = "".join(str(c.content) for c in chat.stream("why? because", stop=["?"]))
    assert text == "Echo: why"
    assert chat.invoke("still works").content == "Echo: still works"


def test_callbacks_and_langsmith_params(make_chat: Callable[..., ChatSageMaker]) -> None:
    tokens: list[str] = []

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    chat = make_chat(streaming=True, temperature=0.2)
    assert chat.invoke("a b", config={"callbacks": [Collect()]}).content == "Echo: a b"
    assert "".join(tokens) == "Echo: a b" and len(tokens) >= 2
    params = chat._get_ls_params()
    assert (params["ls_provider"], params["ls_model_name"], params["ls_temperature"]) == ("amazon_sagemaker", "vllm", 0.2)
    assert chat._identifying_params["api"] == "openai"


# -- tools and structured output --------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_tool_round_trip(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, streaming: bool) -> None:
    chat = make_chat(streaming=streaming).bind_tools([get_weather])
    question = HumanMessage("What is the weather in Paris?")
    call = chat.invoke([question])
    assert call.tool_calls and call.tool_calls[0]["name"] == "get_weather"
    assert call.tool_calls[0]["args"] == {"city": "What is the weather in Paris?"}
    assert call.response_metadata["finish_reason"] == "tool_calls"
    final = chat.invoke([question, call, get_weather.invoke(call.tool_calls[0])])
    assert final.content == "Tool result: sunny in What is the weather in Paris?"
    assert sent(ep)["messages"][-1]["role"] == "tool"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("any", "required"), ("required", "required"), ("auto", "auto"), ("none", "none"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
        (True, {"type": "function", "function": {"name": "get_weather"}}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_every_tool_choice(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, choice: Any, expected: Any) -> None:
    reply = make_chat().bind_tools([get_weather], tool_choice=choice).invoke("Paris")
    assert sent(ep)["tool_choice"] == expected
    if isinstance(expected, dict) or expected == "required":
        assert reply.tool_calls[0]["name"] == "get_weather"


def test_streamed_tool_call_chunks_assemble(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    ep.faults = FaultConfig(stream_split_seed=8)
    chunks = list(make_chat().bind_tools([get_weather], tool_choice="get_weather").stream("Paris"))
    merged = chunks[0]
    for piece in chunks[1:]:
        merged = merged + piece
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_structured_output(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, method: str) -> None:
    prompt = "Tell me a joke about cats, respond in JSON with `setup` and `punchline` keys"
    joke = make_chat().with_structured_output(Joke, method=method).invoke(prompt)
    assert isinstance(joke, Joke) and joke.setup == prompt
    body = sent(ep)
    if method == "function_calling":
        assert body["tool_choice"]["function"]["name"] == "Joke"
    else:
        assert body["response_format"]["type"] == ("json_schema" if method == "json_schema" else "json_object")
    raw = make_chat().with_structured_output(Joke, method=method, include_raw=True).invoke(prompt)
    assert isinstance(raw["raw"], AIMessage) and isinstance(raw["parsed"], Joke)


# -- errors and retries -----------------------------------------------------------------------


def test_container_error_is_a_model_error(make_chat: Callable[..., ChatSageMaker]) -> None:
    with pytest.raises(e.ModelError) as info:
        make_chat(temperature=5).invoke("x")
    assert info.value.original_status_code == 400 and info.value.status_code == 400
    assert "'temperature' must be a number in [0, 2]" in str(info.value)


def test_unknown_component_is_a_validation_error(make_chat: Callable[..., ChatSageMaker]) -> None:
    with pytest.raises(e.RequestValidationError, match="Inference Component nope not found") as info:
        make_chat("ics", inference_component_name="nope").invoke("x")
    assert (info.value.status_code, info.value.error_code) == (400, "validation_error")


def test_throttling_is_retried(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    ep.faults = FaultConfig(fail_next=["ThrottlingException"])
    reply = make_chat(max_retries=1).invoke("x")
    assert reply.content == "Echo: x"
    assert (reply.response_metadata["attempts"], reply.response_metadata["retry_reasons"]) == (2, ["ThrottlingError"])
    ep.faults = FaultConfig(fail_next=["ThrottlingException"])
    with pytest.raises(e.ThrottlingError):
        make_chat().invoke("x")


def test_service_unavailable_is_typed(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    ep.faults = FaultConfig(fail_next=["ServiceUnavailable"])
    with pytest.raises(e.ServiceUnavailableError) as info:
        make_chat().invoke("x")
    assert info.value.status_code == 503


def test_no_capacity_is_typed_then_waited_through(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    """Scaled to zero: raised at once (whatever max_retries says) unless cold_start_timeout
    asks to wait — the same rule as on the invocations wire."""
    chat = make_chat("ics", inference_component_name="cold", max_retries=2)
    with pytest.raises(e.NoCapacityError, match="has no capacity"):
        chat.invoke("x")
    assert len(ep.requests) == 1
    ep.reset()
    reply = make_chat("ics", inference_component_name="cold", cold_start_timeout=30).invoke("x")
    assert reply.content == "Echo: x" and reply.response_metadata["attempts"] == 3
    assert reply.response_metadata["retry_reasons"] == ["NoCapacityError", "NoCapacityError"]


def test_unreachable_endpoint_is_typed(make_chat: Callable[..., ChatSageMaker]) -> None:
    chat = ChatSageMaker(endpoint_name="vllm", api="openai", endpoint_url="http://127.0.0.1:9", max_retries=0,
                         region_name="us-east-1")
    with pytest.raises(e.EndpointUnreachableError):
        chat.invoke("x")
    with pytest.raises(e.EndpointUnreachableError):
        list(chat.stream("x"))


# -- authentication ---------------------------------------------------------------------------


def _expired_token() -> str:
    return generate_bearer_token(
        "us-east-1", credentials_for(ClientSettings(aws_access_key_id="testing", aws_secret_access_key="testing")),
        timedelta(seconds=60), now=datetime.now(UTC) - timedelta(hours=1),
    )


@pytest.mark.parametrize("token", ["not-a-token", "sagemaker-api-key-bm90IGEgdXJs", "expired"])
def test_a_bad_fixed_token_fails_once_and_is_not_quoted(
    make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = _expired_token() if token == "expired" else token
    chat = make_chat(bearer_token=SecretStr(token), max_retries=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(e.AuthenticationError) as info:
        chat.invoke("x")
    assert info.value.status_code == 401
    assert len(ep.requests) == 1  # not retried: a fixed token cannot be renewed
    for text in (str(info.value), repr(chat), str(chat.to_config()), str(dumpd(chat)), caplog.text,
                 repr(chat.engine.transport), chat.to_yaml()):
        assert token not in text


def test_unknown_access_key_is_403(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    chat = make_chat(aws_access_key_id="AKIDNOBODY", aws_secret_access_key="x", max_retries=2)
    with pytest.raises(e.AuthenticationError, match="AKIDNOBODY") as info:
        chat.invoke("x")
    assert (info.value.status_code, info.value.error_code) == (403, "unknown_access_key")
    assert len(ep.requests) == 1
    assert not info.value.is_retryable


def test_wrong_secret_is_403(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    with pytest.raises(e.AuthenticationError) as info:
        list(make_chat(aws_access_key_id="testing", aws_secret_access_key="wrong").stream("x"))
    assert (info.value.status_code, info.value.error_code) == (403, "signature_mismatch")


def test_tokens_come_from_the_fields_profile_or_environment(
    make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_chat(aws_access_key_id="local", aws_secret_access_key="local").invoke("x").content == "Echo: x"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    assert make_chat().invoke("y").content == "Echo: y"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDNOBODY")
    with pytest.raises(e.AuthenticationError):
        make_chat().invoke("z")


@pytest.mark.parametrize("stream", [False, True])
def test_an_expired_token_from_a_callable_is_renewed_once(
    make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, stream: bool
) -> None:
    given: list[str] = []

    def provider() -> SecretStr:
        token = _expired_token() if not given else generate_bearer_token("us-east-1")
        given.append(token)
        return SecretStr(token)

    chat = make_chat(bearer_token=provider)
    text = "".join(str(c.content) for c in chat.stream("x")) if stream else chat.invoke("x").content
    assert text == "Echo: x"
    assert [r.status for r in ep.requests] == [401, 200] and len(given) == 2


def _lagging_tokens(lags: list[timedelta], expiry: timedelta = timedelta(seconds=60)) -> TokenSource:
    """A token source whose clock lags by each of ``lags`` in turn (then none): its tokens are
    already expired at the endpoint while it believes them fresh."""
    credentials = credentials_for(ClientSettings(aws_access_key_id="testing", aws_secret_access_key="testing"))
    lags = list(lags)
    return TokenSource(
        region="us-east-1", credentials=lambda: credentials, expiry=expiry,
        clock=lambda: datetime.now(UTC) - (lags.pop(0) if lags else timedelta(0)),
    )


def _route_transport(ep: LocalEndpoint, **options: Any) -> OpenAIRouteTransport:
    return OpenAIRouteTransport(ClientSettings(endpoint_url=ep.url, region_name="us-east-1"), **options)


async def test_an_expired_token_is_renewed_once_then_it_is_an_error(ep: LocalEndpoint) -> None:
    hour = timedelta(hours=1)
    chat = ChatSageMaker(endpoint_name="vllm", api="openai", max_retries=3,
                         transport=_route_transport(ep, tokens=_lagging_tokens([hour])))
    assert chat.invoke("x").content == "Echo: x"
    assert [r.status for r in ep.requests] == [401, 200]
    ep.reset()
    stale = ChatSageMaker(endpoint_name="vllm", api="openai", max_retries=3,
                          transport=_route_transport(ep, tokens=_lagging_tokens([hour, hour])))
    with pytest.raises(e.AuthenticationError, match="expired"):
        await stale.ainvoke("x")
    assert [r.status for r in ep.requests] == [401, 401]  # once, and never by the retry policy


def test_tokens_are_renewed_across_a_short_expiry(ep: LocalEndpoint) -> None:
    transport = _route_transport(ep, token_expiry=timedelta(seconds=2))
    chat = ChatSageMaker(endpoint_name="vllm", api="openai", transport=transport, max_retries=0)
    assert chat.invoke("one").content == "Echo: one"
    first = transport.token_source().expires_at
    assert first is not None
    time.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds()) + 0.1)  # the first token has expired
    assert chat.invoke("two").content == "Echo: two"
    second = transport.token_source().expires_at
    assert second is not None and second > first
    assert [r.status for r in ep.requests] == [200, 200]  # renewed before sending, not after a 401


# -- what the route cannot carry --------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"target_model": "m.tar.gz"}, {"target_variant": "v1"}, {"target_container_hostname": "c1"},
        {"custom_attributes": "a=b"}, {"session_id": "s"}, {"enable_explanations": True},
        {"inference_id": "i"}, {"async_inference": {"inline_body": True}},
        {"content_handler": "tgi", "chat_template": "llama3"}, {"content_handler": "lmi"},
    ],
)
def test_refused_options_at_construction(ep: LocalEndpoint, fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="api='openai'"):
        ChatSageMaker(endpoint_name="vllm", api="openai", endpoint_url=ep.url, **fields)
    assert ep.requests == []


@pytest.mark.parametrize(
    "kwargs", [{"target_variant": "v1"}, {"custom_attributes": "a=b"}, {"target_model": "m"}, {"session_id": "s"}]
)
async def test_refused_options_per_call(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint, kwargs: dict[str, Any]) -> None:
    chat = make_chat()
    with pytest.raises(ConfigurationError, match="OpenAI route cannot carry"):
        chat.invoke("x", **kwargs)
    with pytest.raises(ConfigurationError, match="OpenAI route cannot carry"):
        await chat.ainvoke("x", **kwargs)
    with pytest.raises(ConfigurationError):  # target_model: refused for any stream first
        list(chat.stream("x", **kwargs))
    assert ep.requests == []


def test_sessions_and_jobs_are_refused(make_chat: Callable[..., ChatSageMaker], ep: LocalEndpoint) -> None:
    chat = make_chat()
    with pytest.raises(ConfigurationError):
        chat.open_session()
    with pytest.raises(ConfigurationError, match="asynchronous inference"):
        chat.submit("x", config={"inline_body": True})
    assert ep.requests == []


def test_only_the_chat_model_has_the_route() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown field.*api"):
        SageMakerLLM(endpoint_name="x", api="openai")
    with pytest.raises(ConfigurationError, match="bearer_token is only sent"):
        ChatSageMaker(endpoint_name="x", bearer_token="t")
    with pytest.raises(ConfigurationError, match="api"):
        ChatSageMaker(endpoint_name="x", api="bedrock")


def test_regional_host_when_no_endpoint_url(monkeypatch: pytest.MonkeyPatch, ep: LocalEndpoint) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert _route_transport(ep).base_url() == ep.url
    for region, host in (("eu-west-1", "https://runtime.sagemaker.eu-west-1.amazonaws.com"),
                         ("cn-north-1", "https://runtime.sagemaker.cn-north-1.amazonaws.com.cn")):
        assert OpenAIRouteTransport(ClientSettings(region_name=region)).base_url() == host
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", ep.url)
    chat = ChatSageMaker(endpoint_name="vllm", api="openai", region_name="us-east-1", max_retries=0)
    assert chat.invoke("via env").content == "Echo: via env"


def test_yaml_and_schema_know_the_api(tmp_path: Any) -> None:
    from sm_llm import load_config
    from sm_llm.config import config_schema

    path = tmp_path / "route.yaml"
    path.write_text("kind: chat\nendpoint_name: vllm\napi: openai\ninference_component_name: ic\n")
    chat = load_config(path)
    assert (chat.api, chat.to_config()["api"]) == ("openai", "openai")
    chat_schema = next(v for v in config_schema()["oneOf"][1]["oneOf"] if v["properties"]["kind"].get("const") == "chat")
    assert chat_schema["properties"]["api"]["enum"] == ["invocations", "openai"]
    assert "bearer_token" not in chat_schema["properties"]


# -- other OpenAI clients ---------------------------------------------------------------------


def test_langchain_openai_with_a_token_from_sm_llm_auth(ep: LocalEndpoint) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    token = generate_bearer_token("us-east-1")  # the environment's credentials
    model = langchain_openai.ChatOpenAI(
        base_url=ep.openai_base_url("ics", "ic-openai"), api_key=token, model="", max_retries=0
    )
    assert model.invoke("hello there").content == "IC: hello there"
    assert "".join(str(c.content) for c in model.stream("hello there")) == "IC: hello there"
    ours = ChatSageMaker(endpoint_name="ics", inference_component_name="ic-openai", api="openai",
                         endpoint_url=ep.url, bearer_token=SecretStr(token))
    assert ours.invoke("hello there").content == "IC: hello there"
