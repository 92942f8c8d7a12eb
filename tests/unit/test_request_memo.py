"""Routing and parameters are validated once per adapter state, not on every call; a
field change, a per-call override or a per-call stop is never served from the memo."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sm_llm import ChatSageMaker, ConfigurationError, SageMakerLLM, _routing
from sm_llm._core.request import RequestSpec, parameters, prepare
from sm_llm.handlers import ContentHandler
from sm_llm.transports import FakeTransport

REPLY = [{"generated_text": "a"}]


def _fake(replies: int) -> FakeTransport:
    fake = FakeTransport()
    for _ in range(replies):
        fake.reply(REPLY)
    return fake


def _count_validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = _routing.Routing.to_params

    def counting(self: _routing.Routing, operation: Any, **kwargs: Any) -> dict[str, str]:
        seen.append(operation)
        return original(self, operation, **kwargs)

    monkeypatch.setattr(_routing.Routing, "to_params", counting)
    return seen


def test_unchanged_routing_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake(3)
    llm = SageMakerLLM(endpoint_name="ep", transport=fake, target_variant="v1", custom_attributes={"a": 1})
    seen = _count_validations(monkeypatch)
    for _ in range(3):
        llm.invoke("q")
    assert seen == ["InvokeEndpoint"]
    assert all(c.params["TargetVariant"] == "v1" and c.params["CustomAttributes"] == "a=1" for c in fake.calls)
    assert len({c.params["InferenceId"] for c in fake.calls}) == 3  # still one id per request


def test_field_changes_and_overrides_are_never_served_from_the_memo() -> None:
    fake = _fake(4)
    llm = SageMakerLLM(endpoint_name="ep", transport=fake, target_variant="v1", max_tokens=5)
    llm.invoke("q")
    llm.invoke("q", target_variant="v2", max_tokens=9)  # per call
    llm.invoke("q")  # the fields again
    llm.target_variant, llm.max_tokens = "v3", 7
    llm.invoke("q")
    assert [c.params["TargetVariant"] for c in fake.calls] == ["v1", "v2", "v1", "v3"]
    sent = [json.loads(c.params["Body"])["parameters"]["max_new_tokens"] for c in fake.calls]
    assert sent == [5, 9, 5, 7]


def test_stop_per_call_is_not_memoised() -> None:
    fake = _fake(3)
    llm = SageMakerLLM(endpoint_name="ep", transport=fake, stop=["a"])
    llm.invoke("q")
    llm.invoke("q", stop=["b"])
    llm.invoke("q")
    assert [json.loads(c.params["Body"])["parameters"]["stop"] for c in fake.calls] == [["a"], ["b"], ["a"]]


def test_an_invalid_routing_is_refused_on_every_call() -> None:
    llm = SageMakerLLM(endpoint_name="ep", transport=FakeTransport(), target_model="m.tar.gz")
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="multi-model endpoints cannot stream"):
            list(llm.stream("q"))


def test_memoised_parameters_are_handed_out_as_copies() -> None:
    spec = RequestSpec("ep", ContentHandler.from_preset("tgi"), standard={"max_tokens": 3})
    first = parameters(spec, {}, None)
    first["max_new_tokens"] = 99
    assert parameters(spec, {}, None) == {"details": True, "max_new_tokens": 3}
    body = json.loads(prepare(spec, prompt="p", stop=None, kwargs={}, operation="InvokeEndpoint").params["Body"])
    assert body["parameters"] == {"details": True, "max_new_tokens": 3}


def test_chat_routing_changes_reach_the_engine() -> None:
    fake = FakeTransport().reply({"choices": [{"message": {"content": "a"}}]}).reply(
        {"choices": [{"message": {"content": "b"}}]}
    )
    chat = ChatSageMaker(endpoint_name="ep", transport=fake, content_handler="openai", inference_component_name="ic-1")
    chat.invoke("q")
    chat.inference_component_name = "ic-2"
    chat.invoke("q")
    assert [c.params["InferenceComponentName"] for c in fake.calls] == ["ic-1", "ic-2"]
