"""Per-call arguments and batches through real boto3 to the local endpoint: what is
sent is what was asked for, and one bad input fails only its own item."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sm_llm import ConfigurationError

BIG = "x" * 7_000_000  # over the 6 MiB real-time limit


def test_unknown_call_kwarg_is_refused_before_sending(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("tgi")
    with pytest.raises(ConfigurationError, match=r"max_token \(did you mean max_tokens"):
        llm.invoke("hi", max_token=2)
    with pytest.raises(ConfigurationError, match=r"target_modle \(did you mean target_model"):
        llm.invoke("hi", target_modle="b.tar.gz")
    assert local_endpoint.requests == []


def test_call_model_kwargs_are_sent(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("tgi", model_kwargs={"max_new_tokens": 50})
    llm.invoke("one two three four", model_kwargs={"max_new_tokens": 2, "seed": 7})
    assert json.loads(local_endpoint.requests[-1].body)["parameters"] == {"details": True, "max_new_tokens": 2, "seed": 7}


def test_endpoint_kwargs_reach_the_service(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("tgi", endpoint_kwargs={"CustomAttributes": "accept_eula=true"})
    llm.invoke("hi")
    assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-custom-attributes") == "accept_eula=true"


@pytest.mark.parametrize("max_concurrency", [None, 2])
def test_batch_return_exceptions_fails_only_the_bad_item(make_llm: Any, local_endpoint: Any, max_concurrency: int | None) -> None:
    llm = make_llm("tgi", max_tokens=4)
    config = {"max_concurrency": max_concurrency} if max_concurrency else None
    results = llm.batch(["first prompt", BIG, "third prompt"], config, return_exceptions=True)
    assert results[0] == "Echo: first prompt" and results[2] == "Echo: third prompt"
    assert isinstance(results[1], ConfigurationError) and "6 MiB" in str(results[1])
    assert len(local_endpoint.requests) == 2  # the oversized body was never sent


def test_abatch_return_exceptions_fails_only_the_bad_item(make_llm: Any) -> None:
    llm = make_llm("tgi", max_tokens=4)
    results = asyncio.run(llm.abatch(["first prompt", BIG, "third prompt"], return_exceptions=True))
    assert results[0] == "Echo: first prompt" and results[2] == "Echo: third prompt"
    assert isinstance(results[1], ConfigurationError)


def test_batch_without_return_exceptions_still_raises(make_llm: Any) -> None:
    with pytest.raises(ConfigurationError, match="6 MiB"):
        make_llm("tgi").batch(["ok", BIG])
