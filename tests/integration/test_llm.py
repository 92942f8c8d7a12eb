"""SageMakerLLM through real boto3 over HTTP to the local endpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.prompts import PromptTemplate

from sm_llm import ConfigurationError, SageMakerLLM
from sm_llm import errors as e

PRESETS = ["tgi", "lmi", "openai", "jumpstart", "jumpstart-chat", "text2text"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_round_trips(make_llm: Any, local_endpoint: Any, preset: str) -> None:
    llm = make_llm(preset, content_handler=preset)
    assert llm.invoke("hello big world") == "Echo: hello big world"
    request = local_endpoint.requests[-1]
    assert request.operation == "InvokeEndpoint"
    assert request.headers.get("content-type") == "application/json"


@pytest.mark.parametrize("preset", ["tgi", "lmi", "openai", "jumpstart", "jumpstart-chat", "text2text"])
def test_max_tokens_reaches_the_container(make_llm: Any, preset: str) -> None:
    llm = make_llm(preset, content_handler=preset, max_tokens=2)
    result = llm.generate(["one two three four"])
    generation = result.generations[0][0]
    assert generation.text == "Echo: one"
    if preset in ("tgi", "lmi", "openai"):
        assert generation.generation_info["finish_reason"] == "length"


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(("stop", "prompt", "expected"), [(["."], "first. second", "Echo: first"), (["?"], "why? because", "Echo: why"), (["STOP"], "go STOP now", "Echo: go ")])
def test_literal_stop_sequences(make_llm: Any, preset: str, stop: list[str], prompt: str, expected: str) -> None:
    llm = make_llm(preset, content_handler=preset)
    result = llm.generate([prompt], stop=stop)
    generation = result.generations[0][0]
    assert generation.text == expected
    assert generation.generation_info["finish_reason"] == "stop"


def test_usage_and_metadata_when_reported(make_llm: Any) -> None:
    info = make_llm("openai", content_handler="openai").generate(["a b c"]).generations[0][0].generation_info
    assert info["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert info["invoked_production_variant"] == "AllTraffic"
    assert info["request_id"]
    # jumpstart reports no usage: none is invented.
    info = make_llm("jumpstart", content_handler="jumpstart").generate(["a b c"]).generations[0][0].generation_info
    assert "usage" not in info


HOSTILE = [
    'He said "hi" \\ and \\n',
    "line1\nline2\ttab",
    "nul\x00byte",
    "emoji 🦜🔥 CJK 你好世界",
    "{{ 7*7 }} {% raw %}x{% endraw %}",
    "{{ ''.__class__.__mro__ }}",
]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("prompt", HOSTILE)
def test_hostile_prompts_arrive_byte_exact(make_llm: Any, local_endpoint: Any, preset: str, prompt: str) -> None:
    llm = make_llm(preset, content_handler=preset, max_tokens=64)
    reply = llm.invoke(prompt)
    assert reply == "Echo:" + "".join(" " + w for w in prompt.split())
    body = json.loads(local_endpoint.requests[-1].body)
    sent = {
        "tgi": lambda b: b["inputs"],
        "lmi": lambda b: b["inputs"],
        "jumpstart": lambda b: b["inputs"],
        "text2text": lambda b: b["text_inputs"],
        "openai": lambda b: b["messages"][-1]["content"],
        "jumpstart-chat": lambda b: b["inputs"][0][-1]["content"],
    }[preset](body)
    assert sent == prompt


# -- routing -------------------------------------------------------------------------


def test_target_model_field_per_call_and_bind(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("mme", target_model="model-a.tar.gz")
    assert llm.invoke("x").startswith("A:")
    assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-target-model") == "model-a.tar.gz"
    assert llm.invoke("x", target_model="model-b.tar.gz").startswith("B:")
    assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-target-model") == "model-b.tar.gz"
    assert llm.bind(target_model="model-b.tar.gz").invoke("x").startswith("B:")
    chain = PromptTemplate.from_template("say {thing}") | llm.bind(target_model="model-b.tar.gz")
    assert chain.invoke({"thing": "hi"}) == "B: say hi"


def test_target_variant(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("variants")
    for variant in ("blue", "green"):
        result = llm.generate(["x"], target_variant=variant)
        assert result.generations[0][0].generation_info["invoked_production_variant"] == variant
        assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-target-variant") == variant


def test_target_container_hostname(make_llm: Any, local_endpoint: Any) -> None:
    assert make_llm("multi-container", target_container_hostname="tgi-c").invoke("hi") == "Echo: hi"
    assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-target-container-hostname") == "tgi-c"
    lmi = make_llm("multi-container", content_handler="lmi", target_container_hostname="lmi-c")
    assert lmi.invoke("hi") == "Echo: hi"


def test_inference_component(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("components", content_handler="openai", inference_component_name="ic-openai")
    assert llm.invoke("hi") == "Echo: hi"
    assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-inference-component") == "ic-openai"
    assert llm._get_ls_params()["ls_model_name"] == "ic-openai"


def test_custom_attributes_dict_and_echo(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("tgi", custom_attributes={"trace": "t1", "flag": True})
    info = llm.generate(["x"]).generations[0][0].generation_info
    assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-custom-attributes") == "trace=t1;flag=true"
    assert info["custom_attributes"] == "trace=t1;flag=true"
    llm.invoke("x", custom_attributes="trace=t2")
    assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-custom-attributes") == "trace=t2"  # per call replaces the field


def test_jumpstart_chat_sends_accept_eula(make_llm: Any, local_endpoint: Any) -> None:
    assert make_llm("jumpstart-chat", content_handler="jumpstart-chat").invoke("hi") == "Echo: hi"
    assert "accept_eula=true" in local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-custom-attributes")
    with pytest.raises(e.ModelError) as info:
        make_llm("jumpstart-chat", content_handler="jumpstart-chat").invoke("hi", custom_attributes="accept_eula=false")
    assert info.value.original_status_code == 400


def test_explanations_and_inference_id_headers(make_llm: Any, local_endpoint: Any) -> None:
    make_llm("tgi", enable_explanations=True, inference_id="req-42").invoke("x")
    request = local_endpoint.requests[-1]
    assert request.headers.get("x-amzn-sagemaker-enable-explanations") == "`true`"
    assert request.headers.get("x-amzn-sagemaker-inference-id") == "req-42"


def test_sessions_open_and_reuse(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("lmi", content_handler="lmi")
    info = llm.generate(["hello"], session_id="NEW_SESSION").generations[0][0].generation_info
    session = info["new_session_id"].split(";")[0]
    assert "Expires=" in info["new_session_id"]
    assert llm.invoke("again", session_id=session) == "Echo: again"
    assert local_endpoint.requests[-1].headers.get("x-amzn-sagemaker-session-id") == session
    with pytest.raises(e.RequestValidationError):
        llm.invoke("x", session_id="unknown-session")


# -- validation before sending -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_variant": "bad_name"}, "target_variant"),
        ({"custom_attributes": "x" * 1025}, "custom_attributes"),
        ({"custom_attributes": "a=1\r\nX-Evil: 1"}, "custom_attributes"),
        ({"target_model": "a\nb"}, "target_model"),
        ({"inference_id": "x" * 65}, "inference_id"),
        ({"session_id": "bad_session"}, "session_id"),
    ],
)
def test_bad_routing_never_reaches_the_server(make_llm: Any, local_endpoint: Any, kwargs: dict[str, str], match: str) -> None:
    llm = make_llm("tgi")
    with pytest.raises(ConfigurationError, match=match):
        llm.invoke("x", **kwargs)
    with pytest.raises(ConfigurationError, match=match):
        make_llm("tgi", **kwargs)
    assert local_endpoint.requests == []


def test_oversize_body_and_stream_only_rules_never_reach_the_server(make_llm: Any, local_endpoint: Any) -> None:
    llm = make_llm("tgi")
    with pytest.raises(ConfigurationError, match="asynchronous inference"):
        llm.invoke("x" * 6_291_456)
    with pytest.raises(ConfigurationError, match="multi-model endpoints cannot stream"):
        list(make_llm("mme", target_model="model-a.tar.gz").stream("x"))
    with pytest.raises(ConfigurationError, match="NEW_SESSION"):
        list(llm.stream("x", session_id="NEW_SESSION"))
    with pytest.raises(ConfigurationError, match="lone surrogate"):
        llm.invoke("bad \ud800")
    assert local_endpoint.requests == []


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls", "status", "attempts"),
    [
        ("ModelError", e.ModelError, 424, 1),
        ("InternalDependencyException", e.InternalDependencyError, 530, 1),
        ("ThrottlingException", e.ThrottlingError, 429, 3),
        ("ServiceUnavailable", e.ServiceUnavailableError, 503, 3),
        ("InternalFailure", e.InternalFailureError, 500, 3),
    ],
)
def test_error_classes_and_retries(make_llm: Any, local_endpoint: Any, fault: Any, code: str, cls: type, status: int, attempts: int) -> None:
    local_endpoint.faults = fault(fail_next=[code] * 5)
    llm = make_llm("tgi", max_retries=2)
    with pytest.raises(cls) as info:
        llm.invoke("x")
    assert info.value.status_code == status and info.value.error_code == code
    cause = info.value.__cause__  # the service's error, chained as it arrived
    assert isinstance(cause, ClientError) and cause.response["Error"]["Code"] == code, repr(cause)
    assert len(local_endpoint.requests) == attempts


def test_retry_then_success(make_llm: Any, local_endpoint: Any, fault: Any) -> None:
    local_endpoint.faults = fault(fail_next=["ServiceUnavailable"])
    assert make_llm("tgi", max_retries=2).invoke("ok") == "Echo: ok"
    assert len(local_endpoint.requests) == 2


def test_model_error_fields(make_llm: Any, local_endpoint: Any) -> None:
    with pytest.raises(e.ModelError) as info:
        # A body TGI rejects (inputs must be a string): the container answers 422.
        bad_body = {"request_template": '{"inputs": 5}', "response": {"text": "[0].generated_text"}}
        make_llm("tgi", content_handler=bad_body).invoke("x")
    err = info.value
    assert err.status_code == 424 and err.original_status_code == 422
    assert err.original_message and "inputs" in err.original_message
    assert err.log_stream_arn and err.log_stream_arn.startswith("arn:aws:logs:")
    assert err.log_url and "cloudwatch" in err.log_url
    assert len(local_endpoint.requests) == 1


def test_unknown_endpoint(make_llm: Any) -> None:
    with pytest.raises(e.EndpointNotFoundError, match="not found"):
        make_llm("no-such-endpoint").invoke("x")


def test_on_llm_error_fires_once(make_llm: Any, local_endpoint: Any, fault: Any) -> None:
    class Counter(BaseCallbackHandler):
        errors = 0

        def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
            Counter.errors += 1

    local_endpoint.faults = fault(fail_next=["ModelError"])
    with pytest.raises(e.ModelError):
        make_llm("tgi").invoke("x", config={"callbacks": [Counter()]})
    assert Counter.errors == 1


def test_unreachable_endpoint_is_typed(sm_transport: str) -> None:
    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url="http://127.0.0.1:9", region_name="us-east-1", max_retries=0,
                       connect_timeout=1, transport=sm_transport)
    with pytest.raises(e.EndpointUnreachableError):
        llm.invoke("x")


def test_secrets_never_in_repr(make_llm: Any) -> None:
    llm = make_llm("tgi", aws_access_key_id="AKIACANARY", aws_secret_access_key="canary-secret-value")
    assert llm.invoke("x") == "Echo: x"
    for text in (repr(llm), str(llm), str(llm.model_dump()), str(llm._settings())):
        assert "canary-secret-value" not in text


# -- concurrency ----------------------------------------------------------------------


def test_batch_runs_concurrently_and_keeps_order(make_llm: Any, local_endpoint: Any, fault: Any) -> None:
    local_endpoint.faults = fault(latency_ms=200)
    local_endpoint.reset_stats()
    prompts = [f"prompt {i}" for i in range(16)]
    results = make_llm("tgi").batch(prompts)
    assert results == [f"Echo: prompt {i}" for i in range(16)]
    assert local_endpoint.peak_in_flight >= 12


async def test_ainvoke_and_abatch(make_llm: Any, local_endpoint: Any, fault: Any) -> None:
    llm = make_llm("tgi")
    assert await llm.ainvoke("async hi") == "Echo: async hi"
    local_endpoint.faults = fault(latency_ms=200)
    local_endpoint.reset_stats()
    results = await llm.abatch([f"p{i}" for i in range(16)])
    assert results == [f"Echo: p{i}" for i in range(16)]
    assert local_endpoint.peak_in_flight >= 12


def test_client_is_cached_and_closeable(make_llm: Any) -> None:
    llm = make_llm("tgi")
    llm.invoke("x")
    transport = llm.engine.transport
    client = transport.client()
    llm.invoke("y")
    assert transport.client() is client
    with llm:
        pass
    assert transport.client() is not client  # closed, and created again on the next use
    assert llm.invoke("z") == "Echo: z"


def test_transport_switched_between_calls(make_llm: Any, local_endpoint: Any, sm_transport: str) -> None:
    """``llm.transport = ...`` on an adapter in use: the next call goes out on the other one."""
    order = (sm_transport, {"botocore": "httpx", "httpx": "botocore"}[sm_transport], sm_transport)
    llm = make_llm("tgi")
    agents = []
    for transport in order:
        llm.transport = transport
        assert llm.invoke("hi") == "Echo: hi"
        agents.append(local_endpoint.requests[-1].headers["user-agent"])
    library = {"botocore": "Botocore/", "httpx": "httpx/"}  # each HTTP library's own User-Agent
    assert all(library[t] in agent for t, agent in zip(order, agents, strict=True)), agents
