"""Inference components scaled to zero, through boto3 and real HTTP to the local endpoint:
``NoCapacityError`` at once without ``cold_start_timeout``; with it, calls wait through the
no-capacity (and ``ModelNotReady``) answers until the component scales up, or raise at the
end of the wait — ChatSageMaker (whole, streamed, async), SageMakerLLM and embeddings."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sm_llm import ChatSageMaker, SageMakerEmbeddings, SageMakerLLM
from sm_llm.errors import ModelNotReadyError, NoCapacityError
from sm_llm.local import (
    EndpointSpec,
    FaultConfig,
    LocalEndpoint,
    ModelSpec,
    NoCapacity,
    ServerConfig,
)

COLD_N = 2  # refusals before the "-n" components scale up


@pytest.fixture(scope="module")
def cold_ep_session() -> Iterator[LocalEndpoint]:
    config = ServerConfig(endpoints=[
        EndpointSpec(
            name="ics",
            components={
                "chat-n": ModelSpec(container="openai", no_capacity=NoCapacity(requests=COLD_N)),
                "chat-t": ModelSpec(container="openai", no_capacity=NoCapacity(seconds=0.6)),
                "chat-never": ModelSpec(container="openai", no_capacity=NoCapacity(seconds=3600)),
                "chat-warm": ModelSpec(container="openai"),
                "tgi-n": ModelSpec(container="tgi", no_capacity=NoCapacity(requests=COLD_N)),
                "tei-n": ModelSpec(container="tei", no_capacity=NoCapacity(requests=COLD_N)),
            },
        ),
    ])
    with LocalEndpoint(config) as endpoint:
        yield endpoint


@pytest.fixture
def cold_ep(cold_ep_session: LocalEndpoint) -> LocalEndpoint:
    cold_ep_session.wait_idle(5.0)
    cold_ep_session.reset()  # every component back to zero
    return cold_ep_session


def _fields(ep: LocalEndpoint, transport: str, component: str, **fields: Any) -> dict[str, Any]:
    return {"endpoint_name": "ics", "inference_component_name": component, "endpoint_url": ep.url,
            "region_name": "us-east-1", "transport": transport, **fields}


def _chat(ep: LocalEndpoint, transport: str, component: str, **fields: Any) -> ChatSageMaker:
    return ChatSageMaker(**_fields(ep, transport, component, content_handler="openai", **fields))


def _reached(ep: LocalEndpoint) -> int:
    return len(ep.requests)


# -- cold_start_timeout unset: raise at once -------------------------------------------------


def test_unset_no_capacity_raises_at_once_despite_max_retries(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    chat = _chat(cold_ep, sm_transport, "chat-n", max_retries=5)
    with pytest.raises(NoCapacityError, match="has no capacity") as info:
        chat.invoke("hello")
    assert info.value.is_retryable  # LangChain retry policies may still choose to retry it
    assert _reached(cold_ep) == 1
    with pytest.raises(NoCapacityError):
        list(chat.stream("hello"))
    assert _reached(cold_ep) == 2
    assert chat.invoke("hello").content == "Echo: hello"  # scaled up after COLD_N requests


async def test_unset_async_raises_at_once(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    with pytest.raises(NoCapacityError):
        await _chat(cold_ep, sm_transport, "chat-never").ainvoke("hello")
    assert _reached(cold_ep) == 1


def test_unset_llm_and_embeddings_raise_at_once(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    with pytest.raises(NoCapacityError):
        SageMakerLLM(**_fields(cold_ep, sm_transport, "tgi-n")).invoke("hello")
    with pytest.raises(NoCapacityError):
        SageMakerEmbeddings(**_fields(cold_ep, sm_transport, "tei-n", content_handler="tei")).embed_query("hello")
    assert _reached(cold_ep) == 2


# -- cold_start_timeout set: wait until capacity ---------------------------------------------


def test_chat_waits_through_no_capacity_after_n_requests(
    cold_ep: LocalEndpoint, sm_transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = _chat(cold_ep, sm_transport, "chat-n", cold_start_timeout=30, max_retries=0)
    with caplog.at_level(logging.INFO, logger="sm_llm"):
        message = chat.invoke("hello")
    assert message.content == "Echo: hello"
    info = message.response_metadata
    assert info["attempts"] == COLD_N + 1 and info["retry_reasons"] == ["NoCapacityError"] * COLD_N
    assert info["cold_start_seconds"] > 0
    cold_logs = [r for r in caplog.records if r.levelno == logging.INFO and "cold_start_timeout" in r.getMessage()]
    assert len(cold_logs) == 1  # once per call, however many attempts
    assert "InferenceComponentName=chat-n" in cold_logs[0].getMessage()
    ids = {r.headers.get("X-Amzn-SageMaker-Inference-Id") for r in cold_ep.requests}
    assert len(ids) == 1  # one logical request


def test_chat_stream_waits_through_no_capacity_for_t_seconds(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    chat = _chat(cold_ep, sm_transport, "chat-t", cold_start_timeout=30)
    started = time.monotonic()
    chunks = list(chat.stream("hello"))
    assert time.monotonic() - started >= 0.6
    assert "".join(str(c.content) for c in chunks) == "Echo: hello"
    assert chunks[-1].response_metadata["retry_reasons"][0] == "NoCapacityError"
    assert _reached(cold_ep) >= 2


async def test_async_waits_through_no_capacity(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    chat = _chat(cold_ep, sm_transport, "chat-n", cold_start_timeout=30)
    message = await chat.ainvoke("hello")
    assert message.content == "Echo: hello" and message.response_metadata["attempts"] == COLD_N + 1
    cold_ep.reset()
    text = "".join([str(c.content) async for c in chat.astream("hello")])
    assert text == "Echo: hello" and _reached(cold_ep) == COLD_N + 1


def test_gives_up_at_the_end_of_the_wait(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    chat = _chat(cold_ep, sm_transport, "chat-never", cold_start_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(NoCapacityError) as info:
        chat.invoke("hello")
    assert 0.5 <= time.monotonic() - started < 3.0
    assert _reached(cold_ep) >= 2
    assert any("cold_start_timeout=0.5" in note for note in info.value.__notes__)


def test_cold_start_wait_is_not_cut_by_the_overall_timeout(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    chat = _chat(cold_ep, sm_transport, "chat-t", cold_start_timeout=30, timeout=0.3)
    assert chat.invoke("hello").content == "Echo: hello"  # waited ~0.6 s, longer than timeout


def test_waits_through_model_not_ready_beyond_max_retries(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    cold_ep.faults = FaultConfig(fail_next=["ModelNotReadyException"] * 3)
    chat = _chat(cold_ep, sm_transport, "chat-warm", cold_start_timeout=30, max_retries=1)
    message = chat.invoke("hello")
    assert message.response_metadata["retry_reasons"] == ["ModelNotReadyError"] * 3


def test_unset_model_not_ready_keeps_its_max_retries(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    cold_ep.faults = FaultConfig(fail_next=["ModelNotReadyException"] * 4)
    with pytest.raises(ModelNotReadyError):
        _chat(cold_ep, sm_transport, "chat-warm", max_retries=1).invoke("hello")
    assert _reached(cold_ep) == 2


def test_llm_waits_through_no_capacity(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    llm = SageMakerLLM(**_fields(cold_ep, sm_transport, "tgi-n", cold_start_timeout=30, max_retries=0))
    result = llm.generate(["hello"])
    assert result.generations[0][0].text.startswith("Echo: hello")
    assert result.generations[0][0].generation_info["attempts"] == COLD_N + 1  # type: ignore[index]
    cold_ep.reset()
    assert "".join(llm.stream("hello")).startswith("Echo: hello")


async def test_embeddings_wait_through_no_capacity(cold_ep: LocalEndpoint, sm_transport: str) -> None:
    embeddings = SageMakerEmbeddings(**_fields(cold_ep, sm_transport, "tei-n", content_handler="tei", cold_start_timeout=30))
    vector = embeddings.embed_query("hello")
    assert vector and _reached(cold_ep) == COLD_N + 1
    cold_ep.reset()
    assert await embeddings.aembed_documents(["a", "b"])


def test_cold_start_timeout_is_a_config_field(tmp_path: Any) -> None:
    path = tmp_path / "chat.yaml"
    path.write_text(
        "kind: chat\nendpoint_name: ics\ninference_component_name: chat-n\ncold_start_timeout: 300\n"
    )
    chat = ChatSageMaker.from_yaml(path)
    assert chat.cold_start_timeout == 300 and chat.to_config()["cold_start_timeout"] == 300
    with pytest.raises(Exception, match="cold_start_timeout"):
        ChatSageMaker(endpoint_name="ics", cold_start_timeout=0)
