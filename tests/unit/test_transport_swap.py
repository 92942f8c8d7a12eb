"""Changing a connection field on an adapter already in use (``transport``, ``api``, the
URL, region, credentials...) gives its engine a new transport, as other field changes
reach the engine's spec; the old transport is closed. No network: nothing is sent."""

from __future__ import annotations

import boto3
import pytest

from sm_llm import ChatSageMaker, ConfigurationError, SageMakerLLM
from sm_llm.transports import (
    BotocoreTransport,
    FakeTransport,
    OpenAIRouteTransport,
    SigV4HttpTransport,
)


def _llm(**fields: object) -> SageMakerLLM:
    return SageMakerLLM(endpoint_name="ep", region_name="us-east-1", **fields)  # type: ignore[arg-type]


def test_transport_swaps_both_ways_after_first_use() -> None:
    llm = _llm()
    engine = llm.engine
    assert isinstance(engine.transport, BotocoreTransport)
    llm.transport = "httpx"
    assert llm.engine is engine and isinstance(engine.transport, SigV4HttpTransport)
    llm.transport = "botocore"
    assert isinstance(engine.transport, BotocoreTransport)


def test_the_old_transport_is_closed_and_calls_go_to_the_new_one() -> None:
    fake = FakeTransport().reply([{"generated_text": "hi"}])
    llm = _llm(transport=fake)
    assert llm.invoke("q") == "hi"
    llm.transport = "httpx"
    assert fake.closed == 1 and isinstance(llm.engine.transport, SigV4HttpTransport)
    other = FakeTransport().reply([{"generated_text": "again"}])
    llm.transport = other
    assert llm.invoke("q") == "again" and len(fake.calls) == 1 and len(other.calls) == 1


def test_connection_fields_give_a_new_transport_with_the_new_settings() -> None:
    llm = _llm(transport="httpx", endpoint_url="http://127.0.0.1:1")
    first = llm.engine.transport
    llm.endpoint_url = "http://127.0.0.1:2"
    assert llm.engine.transport is not first
    assert llm.engine.transport.settings.endpoint_url == "http://127.0.0.1:2"  # type: ignore[attr-defined]
    llm.region_name = "eu-west-1"
    assert llm.engine.transport.settings.region_name == "eu-west-1"  # type: ignore[attr-defined]


@pytest.mark.parametrize("field", ["max_tokens", "max_retries", "target_variant"])
def test_other_fields_keep_the_transport(field: str) -> None:
    llm = _llm()
    transport = llm.engine.transport
    setattr(llm, field, {"max_tokens": 7, "max_retries": 5, "target_variant": "blue"}[field])
    assert llm.engine.transport is transport


def test_a_refused_change_leaves_the_adapter_as_it_was() -> None:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    llm = _llm(client=client)
    transport = llm.engine.transport
    with pytest.raises(ConfigurationError, match="client= is a boto3 client"):
        llm.transport = "httpx"
    assert llm.transport == "botocore" and llm.engine.transport is transport


@pytest.mark.parametrize("used", [False, True], ids=["before-use", "after-use"])
def test_a_misspelt_transport_is_refused(used: bool) -> None:
    llm = _llm()
    if used:
        llm.engine  # noqa: B018 - the engine exists
    with pytest.raises(ConfigurationError, match="did you mean httpx"):
        llm.transport = "htpx"
    assert llm.transport == "botocore"


def test_fields_set_before_first_use_are_checked_when_the_engine_is_made() -> None:
    llm = _llm()
    llm.client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    llm.transport = "httpx"
    with pytest.raises(ConfigurationError, match="client= is a boto3 client"):
        llm.engine  # noqa: B018


def test_chat_api_swaps_the_wire() -> None:
    chat = ChatSageMaker(endpoint_name="ep", content_handler="openai", region_name="us-east-1")
    engine = chat.engine
    chat.api = "openai"
    assert isinstance(engine.transport, OpenAIRouteTransport)
    assert engine.spec.model_kwargs == {"model": ""}  # the route's spec came with it
    chat.api = "invocations"
    assert isinstance(engine.transport, BotocoreTransport) and engine.spec.model_kwargs == {}


def test_chat_api_change_the_route_cannot_carry_is_refused() -> None:
    chat = ChatSageMaker(endpoint_name="ep", content_handler="tgi", chat_template="llama3", region_name="us-east-1")
    transport = chat.engine.transport
    with pytest.raises(ConfigurationError, match="api='openai' sends OpenAI chat completions"):
        chat.api = "openai"
    assert chat.api == "invocations" and chat.engine.transport is transport
