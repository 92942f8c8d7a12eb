"""Adapters (LLM, chat, embeddings, bound, with tools) pickle, deep-copy and ``model_copy``
before and after use; a spawned process gets a working model that creates its own
client; secrets travel as ``SecretStr``; a given boto3 client is refused clearly."""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from langchain_core.tools import tool

from sm_llm import ChatSageMaker, SageMakerEmbeddings, SageMakerLLM
from sm_llm._adapter import TRANSPORTS
from sm_llm.errors import ConfigurationError
from sm_llm.local import LocalEndpoint


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _models(url: str, transport: str) -> dict[str, Any]:
    common: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1", "max_retries": 0, "transport": transport}
    chat = ChatSageMaker(endpoint_name="openai", **common)
    return {
        "llm": SageMakerLLM(endpoint_name="tgi", max_tokens=8, **common),
        "chat": chat,
        "bound": chat.bind(max_tokens=5, temperature=0.1),
        "tools": chat.bind_tools([get_weather]),
        "embeddings": SageMakerEmbeddings(endpoint_name="tei", **common),
    }


def _use(model: Any) -> Any:
    """A sync call, then an async one: what a worker process does with a shipped model."""
    if isinstance(model, SageMakerEmbeddings):
        return [len(model.embed_documents(["a b"])[0]), len(asyncio.run(model.aembed_query("c")))]
    sync, async_ = model.invoke("hello there"), asyncio.run(model.ainvoke("hello there"))
    return [getattr(reply, "content", reply) for reply in (sync, async_)]


def _use_in_child(blob: bytes) -> Any:
    return _use(pickle.loads(blob))


def _all_models(url: str) -> dict[str, Any]:
    return {f"{transport}-{name}": model for transport in TRANSPORTS for name, model in _models(url, transport).items()}


def test_models_fresh_and_used_work_in_a_spawned_process(local_endpoint: LocalEndpoint) -> None:
    """One spawned pool (spawn startup is slow; so both transports' models in it, rather than
    a pool per transport): every kind of model, pickled before and after use, and a used
    model passed straight to ``pool.map`` as an argument."""
    used = _all_models(local_endpoint.url)
    expected = {name: _use(model) for name, model in used.items()}  # the parent's own answers
    blobs = [pickle.dumps(model) for model in [*_all_models(local_endpoint.url).values(), *used.values()]]
    local_endpoint.reset()
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        answers = list(pool.map(_use_in_child, blobs))
        direct = list(pool.map(_use, [used["botocore-llm"], used["httpx-chat"]]))
    assert answers == [*expected.values(), *expected.values()]
    assert direct == [expected["botocore-llm"], expected["httpx-chat"]]
    assert len(local_endpoint.requests) == 2 * (len(blobs) + 2)  # every child call reached the local endpoint
    for model in used.values():  # the originals still work after being pickled
        _use(model)


@pytest.mark.parametrize("how", ["deepcopy", "model_copy", "pickle"])
def test_copies_have_their_own_engine_and_work(local_endpoint: LocalEndpoint, how: str, sm_transport: str) -> None:
    copiers = {
        "deepcopy": copy.deepcopy,
        "model_copy": lambda m: m.model_copy(deep=True),
        "pickle": lambda m: pickle.loads(pickle.dumps(m)),
    }
    for name, model in _models(local_endpoint.url, sm_transport).items():
        before = _use(model)
        copied = copiers[how](model)
        adapter, original = getattr(copied, "bound", copied), getattr(model, "bound", model)
        assert adapter is not original and adapter._engine is None, name
        assert _use(copied) == before, name
        assert adapter.engine is not original.engine
        assert adapter.handler == original.handler


def test_secrets_survive_only_as_secret_str(local_endpoint: LocalEndpoint, sm_transport: str) -> None:
    llm = SageMakerLLM(
        endpoint_name="tgi", endpoint_url=local_endpoint.url, region_name="us-east-1", transport=sm_transport,
        aws_access_key_id="AKIDPICKLE", aws_secret_access_key="s3cr3t-pickled",
    )
    llm.invoke("warm")
    for copied in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm)):
        secret = copied.aws_secret_access_key
        assert secret is not None and secret.get_secret_value() == "s3cr3t-pickled"
        assert "s3cr3t-pickled" not in repr(copied) and "s3cr3t-pickled" not in str(copied.to_config())
        assert copied.invoke("hi") == llm.invoke("hi")


# client= is a boto3 client: transport="botocore" only, so this one runs once.
def test_a_given_boto3_client_is_refused_by_pickle_and_shared_by_deepcopy(
    local_endpoint: LocalEndpoint, runtime_client: Any
) -> None:
    llm = SageMakerLLM(endpoint_name="tgi", client=runtime_client)
    with pytest.raises(ConfigurationError, match=r"client= cannot be pickled.*region_name"):
        pickle.dumps(llm)
    copied = copy.deepcopy(llm)
    assert copied.client is runtime_client and copied.invoke("hi") == llm.invoke("hi")
