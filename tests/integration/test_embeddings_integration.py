"""SageMakerEmbeddings through real (aio)botocore and httpx → LocalEndpoint, for every embeddings preset."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from sm_llm import errors as e
from sm_llm.embeddings import SageMakerEmbeddings
from sm_llm.local import LocalEndpoint
from sm_llm.local._embeddings import embed_text

PRESETS = ["tei", "openai-embeddings", "jumpstart-embeddings"]
TEXTS_PATH = {
    "tei": lambda b: b["inputs"],
    "openai-embeddings": lambda b: b["input"],
    "jumpstart-embeddings": lambda b: b["text_inputs"],
}
Make = Callable[..., SageMakerEmbeddings]


@pytest.fixture
def make_embeddings(local_endpoint: LocalEndpoint, sm_transport: str) -> Make:
    """``make_embeddings(endpoint_name, **fields)`` → SageMakerEmbeddings on the local endpoint
    (the preset of the same name unless ``content_handler`` is given), on ``sm_transport``."""

    def make(endpoint_name: str, **fields: Any) -> SageMakerEmbeddings:
        fields.setdefault("max_retries", 0)
        fields.setdefault("transport", sm_transport)
        fields.setdefault("content_handler", endpoint_name)
        fields.setdefault("endpoint_url", local_endpoint.url)
        return SageMakerEmbeddings(endpoint_name=endpoint_name, region_name="us-east-1", **fields)

    return make


def sent_texts(local_endpoint: LocalEndpoint, preset: str) -> list[list[str]]:
    return [TEXTS_PATH[preset](json.loads(r.body)) for r in local_endpoint.requests]


# -- results -------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_documents_equal_queries_and_the_reference_model(
    make_embeddings: Make, local_endpoint: LocalEndpoint, preset: str
) -> None:
    texts = ["alpha", "beta", "alpha", 'quote " and \\ and 🦜', ""]
    embeddings = make_embeddings(preset)
    vectors = embeddings.embed_documents(texts)
    assert vectors == [embed_text(t) for t in texts]
    assert vectors[0] == vectors[2] != vectors[1]
    assert [embeddings.embed_query(t) for t in texts] == vectors
    assert len(local_endpoint.requests) == 1 + len(texts)
    assert all(r.status == 200 and r.operation == "InvokeEndpoint" for r in local_endpoint.requests)


@pytest.mark.parametrize("preset", PRESETS)
async def test_async_equals_sync(make_embeddings: Make, preset: str, async_path: str) -> None:
    texts = [f"text {i}" for i in range(40)]
    embeddings = make_embeddings(preset, batch_size=16)
    assert await embeddings.aembed_documents(texts) == embeddings.embed_documents(texts)
    assert await embeddings.aembed_query("text 3") == embed_text("text 3")
    await embeddings.aclose()


async def test_empty_input_sends_nothing(make_embeddings: Make, local_endpoint: LocalEndpoint) -> None:
    embeddings = make_embeddings("tei")
    assert embeddings.embed_documents([]) == []
    assert await embeddings.aembed_documents([]) == []
    assert local_endpoint.requests == []


def test_model_kwargs_reach_the_container(make_embeddings: Make, local_endpoint: LocalEndpoint) -> None:
    tei = make_embeddings("tei", model_kwargs={"normalize": False, "dimensions": 4})
    assert tei.embed_query("x") == embed_text("x", dimensions=4, normalize=False)
    vllm = make_embeddings("openai-embeddings", model_kwargs={"dimensions": 8})
    assert vllm.embed_query("x") == embed_text("x", dimensions=8)
    assert json.loads(local_endpoint.requests[-1].body)["encoding_format"] == "float"


# -- batching and concurrency ------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_batches_in_order(make_embeddings: Make, local_endpoint: LocalEndpoint, preset: str) -> None:
    texts = [f"t{i}" for i in range(70)]
    vectors = make_embeddings(preset, batch_size=32, max_concurrency=1).embed_documents(texts)
    assert vectors == [embed_text(t) for t in texts]
    assert sent_texts(local_endpoint, preset) == [texts[:32], texts[32:64], texts[64:]]


async def test_concurrent_batches_keep_input_order(
    make_embeddings: Make, local_endpoint: LocalEndpoint, async_path: str
) -> None:
    texts = [f"t{i}" for i in range(70)]
    embeddings = make_embeddings("tei", batch_size=7)
    expected = [embed_text(t) for t in texts]
    assert embeddings.embed_documents(texts) == expected
    assert await embeddings.aembed_documents(texts) == expected
    # The server sees the batches in any order; each one exactly once per call.
    assert sorted(sent_texts(local_endpoint, "tei")) == sorted([texts[i : i + 7] for i in range(0, 70, 7)] * 2)
    await embeddings.aclose()


@pytest.mark.serial  # timing-sensitive: run alone, after the parallel run
def test_sync_batches_run_concurrently(
    make_embeddings: Make, local_endpoint: LocalEndpoint, fault: Any
) -> None:
    embeddings = make_embeddings("tei", batch_size=4, max_concurrency=8)
    embeddings.embed_documents([f"warm {i}" for i in range(32)])  # client and connections
    local_endpoint.faults = fault(latency_ms=200)
    local_endpoint.reset_stats()
    started = time.monotonic()
    vectors = embeddings.embed_documents([f"q{i}" for i in range(32)])
    elapsed = time.monotonic() - started
    assert len(vectors) == 32 and len(local_endpoint.requests) == 16
    assert local_endpoint.peak_in_flight >= 6, local_endpoint.peak_in_flight
    assert elapsed < 1.0, elapsed  # 8 batches × 200 ms, concurrently


@pytest.mark.serial  # timing-sensitive: run alone, after the parallel run
async def test_async_batches_run_concurrently(
    make_embeddings: Make, local_endpoint: LocalEndpoint, fault: Any, async_path: str
) -> None:
    embeddings = make_embeddings("openai-embeddings", batch_size=4, max_concurrency=8)
    await embeddings.aembed_documents([f"warm {i}" for i in range(32)])
    local_endpoint.faults = fault(latency_ms=200)
    local_endpoint.reset_stats()
    started = time.monotonic()
    vectors = await embeddings.aembed_documents([f"q{i}" for i in range(32)])
    elapsed = time.monotonic() - started
    assert vectors == [embed_text(f"q{i}") for i in range(32)]
    assert local_endpoint.peak_in_flight >= 6, local_endpoint.peak_in_flight
    assert elapsed < 1.0, elapsed
    await embeddings.aclose()


async def test_max_concurrency_bounds_batches_in_flight(
    make_embeddings: Make, local_endpoint: LocalEndpoint, fault: Any, async_path: str
) -> None:
    embeddings = make_embeddings("jumpstart-embeddings", batch_size=1, max_concurrency=2)
    local_endpoint.faults = fault(latency_ms=50)
    local_endpoint.reset_stats()
    embeddings.embed_documents([f"s{i}" for i in range(8)])
    assert local_endpoint.peak_in_flight <= 2
    local_endpoint.reset_stats()
    await embeddings.aembed_documents([f"a{i}" for i in range(8)])
    assert local_endpoint.peak_in_flight <= 2
    assert len(local_endpoint.requests) == 16
    await embeddings.aclose()


# -- routing -----------------------------------------------------------------------------------


async def test_inference_component_and_custom_attributes(
    make_embeddings: Make, local_endpoint: LocalEndpoint, async_path: str
) -> None:
    embeddings = make_embeddings(
        "components",
        content_handler="tei",
        inference_component_name="ic-tei",
        custom_attributes={"trace": "t1"},
        inference_id="emb-1",
    )
    assert embeddings.embed_query("hi") == embed_text("hi")
    assert await embeddings.aembed_query("hi") == embed_text("hi")
    for request in local_endpoint.requests:
        assert request.headers.get("x-amzn-sagemaker-inference-component") == "ic-tei"
        assert request.headers.get("x-amzn-sagemaker-custom-attributes") == "trace=t1"
        assert request.headers.get("x-amzn-sagemaker-inference-id") == "emb-1"
    with pytest.raises(
        e.RequestValidationError, match="Inference Component Name header is required"
    ):
        make_embeddings("components", content_handler="tei").embed_query("hi")
    await embeddings.aclose()


# -- errors ------------------------------------------------------------------------------------


def test_container_rejection_is_a_model_error(make_embeddings: Make, local_endpoint: LocalEndpoint) -> None:
    with pytest.raises(e.ModelError) as info:
        make_embeddings("tei", batch_size=33).embed_documents([f"t{i}" for i in range(33)])
    assert info.value.status_code == 424 and info.value.original_status_code == 422
    assert "maximum allowed batch size 32" in (info.value.original_message or "")
    with pytest.raises(e.ModelError) as info:
        make_embeddings("tei", content_handler="jumpstart-embeddings").embed_query("x")
    assert info.value.original_status_code == 422


async def test_failed_batch_raises_its_typed_error_and_stops_the_call(
    make_embeddings: Make, local_endpoint: LocalEndpoint, fault: Any, async_path: str
) -> None:
    texts = [f"t{i}" for i in range(8)]
    one_at_a_time = make_embeddings("tei", batch_size=2, max_concurrency=1)
    local_endpoint.faults = fault(error_rates={"ModelError": 1.0})
    with pytest.raises(e.ModelError):
        one_at_a_time.embed_documents(texts)
    assert len(local_endpoint.requests) == 1  # the batches after the failed one are never sent
    local_endpoint.faults = fault(error_rates={"InternalDependencyException": 1.0})
    with pytest.raises(e.InternalDependencyError):
        await one_at_a_time.aembed_documents(texts)
    assert len(local_endpoint.requests) == 2
    # Concurrent batches: the first failure is raised as is (not an exception group).
    concurrent = make_embeddings("tei", batch_size=2, max_concurrency=4)
    with pytest.raises(e.InternalDependencyError):
        await concurrent.aembed_documents(texts)
    with pytest.raises(e.InternalDependencyError):
        concurrent.embed_documents(texts)
    await one_at_a_time.aclose()
    await concurrent.aclose()


async def test_retries_are_shared_with_the_llm(
    make_embeddings: Make, local_endpoint: LocalEndpoint, fault: Any, async_path: str
) -> None:
    local_endpoint.faults = fault(fail_next=["ThrottlingException", "ServiceUnavailable"])
    embeddings = make_embeddings("tei", max_retries=2)
    assert embeddings.embed_query("x") == embed_text("x")
    assert len(local_endpoint.requests) == 3
    local_endpoint.faults = fault(fail_next=["ThrottlingException"] * 3)
    with pytest.raises(e.ThrottlingError):
        await embeddings.aembed_query("x")
    await embeddings.aclose()


def test_unknown_endpoint(make_embeddings: Make) -> None:
    with pytest.raises(e.EndpointNotFoundError, match="not found"):
        make_embeddings("no-such-endpoint", content_handler="tei").embed_query("x")


def test_count_mismatch_is_a_response_parse_error(make_embeddings: Make, local_endpoint: LocalEndpoint) -> None:
    handler = {
        "name": "first-only",
        "input": "messages",
        "request_template": '{{ {"inputs": messages | map(attribute="content") | list} | tojson }}',
        "response": {"text": "[:1]"},
    }
    with pytest.raises(e.ResponseParseError, match="1 vectors for 3 input texts"):
        make_embeddings("tei", content_handler=handler).embed_documents(["a", "b", "c"])
    assert len(local_endpoint.requests) == 1


async def test_oversized_batch_is_refused_before_sending(
    make_embeddings: Make, local_endpoint: LocalEndpoint
) -> None:
    # Every batch is rendered and checked before the first is sent: the last one is too big.
    texts = ["ok"] * 8 + ["x" * 1_000_000] * 8
    embeddings = make_embeddings("tei", batch_size=8)
    with pytest.raises(e.ConfigurationError, match="6 MiB"):
        embeddings.embed_documents(texts)
    with pytest.raises(e.ConfigurationError, match="6 MiB"):
        await embeddings.aembed_documents(texts)
    assert local_endpoint.requests == []


async def test_timeout_is_typed(
    make_embeddings: Make, local_endpoint: LocalEndpoint, fault: Any, async_path: str
) -> None:
    local_endpoint.faults = fault(latency_ms=1500)
    embeddings = make_embeddings("tei", timeout=0.3)
    with pytest.raises(e.RequestTimeoutError):
        await embeddings.aembed_query("x")
    await embeddings.aclose()


# -- langchain-tests' standard integration suite ----------------------------------------------


class TestSageMakerEmbeddingsStandardIntegration(EmbeddingsIntegrationTests):
    sm_transport = "botocore"

    @pytest.fixture(autouse=True)
    def _route_to_local_endpoint(
        self, local_endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch, sm_transport: str
    ) -> None:
        # boto3's service-specific endpoint variable: no endpoint_url in the params.
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", local_endpoint.url)
        self.sm_transport = sm_transport  # the test's own instance: embedding_model_params reads it

    @property
    def embeddings_class(self) -> type[SageMakerEmbeddings]:
        return SageMakerEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"endpoint_name": "tei", "region_name": "us-east-1", "transport": self.sm_transport}
