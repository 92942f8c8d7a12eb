"""What a user sees of a call besides its output: DEBUG log lines and callback parameters."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm import errors as e

PROMPT = "a private prompt zqxj"  # canaries: no hex digits, unlike ids in the log lines


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sm_llm"]


@pytest.mark.parametrize("operation", ["invoke", "ainvoke", "stream", "astream"])
def test_one_debug_line_per_successful_call(
    make_llm: Any, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sm_llm")
    llm = make_llm("variants", target_variant="blue", custom_attributes="k=v-wvy")
    if operation == "invoke":
        llm.invoke(PROMPT)
    elif operation == "ainvoke":
        asyncio.run(llm.ainvoke(PROMPT))
    elif operation == "stream":
        list(llm.stream(PROMPT))
    else:
        async def drain() -> None:
            async for _ in llm.astream(PROMPT):
                pass

        asyncio.run(drain())
    lines = _lines(caplog)
    assert len(lines) == 1, lines
    name = "InvokeEndpointWithResponseStream" if "stream" in operation else "InvokeEndpoint"
    assert lines[0].startswith(f"{name} endpoint=variants TargetVariant=blue status=200 outcome=ok attempts=1 ms=")
    assert "inference_id=" in lines[0]
    assert "zqxj" not in caplog.text and "wvy" not in caplog.text  # no bodies, no custom attributes


@pytest.mark.parametrize("operation", ["invoke", "ainvoke", "stream"])
def test_one_debug_line_for_a_non_retryable_error(
    make_llm: Any, local_endpoint: Any, fault: Any, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sm_llm")
    local_endpoint.faults = fault(fail_next=["ModelError"])
    llm = make_llm("tgi", max_retries=2)
    with pytest.raises(e.ModelError):
        if operation == "invoke":
            llm.invoke(PROMPT)
        elif operation == "ainvoke":
            asyncio.run(llm.ainvoke(PROMPT))
        else:
            list(llm.stream(PROMPT))
    lines = _lines(caplog)
    assert len(lines) == 1, lines
    assert " endpoint=tgi status=424 outcome=ModelError attempts=1 ms=" in lines[0]


def test_retries_then_success_log_the_retry_and_one_call_line(
    make_llm: Any, local_endpoint: Any, fault: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sm_llm")
    local_endpoint.faults = fault(fail_next=["ThrottlingException"])
    make_llm("tgi", max_retries=2).invoke(PROMPT)
    lines = _lines(caplog)
    assert len(lines) == 2 and lines[0].startswith("retrying after ThrottlingError")
    assert "status=200 outcome=ok attempts=2" in lines[1]


class _Starts(BaseCallbackHandler):
    def __init__(self) -> None:
        self.params: list[dict[str, Any]] = []

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self.params.append(kwargs["invocation_params"])

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, **kwargs: Any) -> None:
        self.params.append(kwargs["invocation_params"])


@pytest.mark.parametrize("operation", ["invoke", "stream"])
def test_invocation_params_name_endpoint_handler_routing_and_generation(
    local_endpoint: Any, operation: str, sm_transport: str
) -> None:
    starts = _Starts()
    common: dict[str, Any] = {
        "endpoint_url": local_endpoint.url, "region_name": "us-east-1", "temperature": 0.5, "max_tokens": 7,
        "top_p": 0.9, "stop": ["END"], "model_kwargs": {"seed": 3}, "target_variant": "blue",
        "aws_access_key_id": "AKIATEST", "aws_secret_access_key": "canary-invocation-params",
        "custom_attributes": "k=v-wvy", "transport": sm_transport,
    }
    llm = SageMakerLLM(endpoint_name="variants", content_handler="tgi", **common)
    chat = ChatSageMaker(endpoint_name="variants", content_handler="tgi", chat_template="llama3", **common)
    for adapter in (llm, chat):
        config: Any = {"callbacks": [starts]}
        if operation == "invoke":
            adapter.invoke("hi", config=config)
        else:
            list(adapter.stream("hi", config=config))
    for params, type_ in zip(starts.params, ["amazon_sagemaker", "amazon_sagemaker_chat"], strict=True):
        assert params["_type"] == type_
        assert params["endpoint_name"] == "variants" and params["content_handler"] == "tgi"
        assert params["model_name"] == "variants" and params["target_variant"] == "blue"
        assert (params["temperature"], params["max_tokens"], params["top_p"]) == (0.5, 7, 0.9)
        assert params["model_kwargs"] == {"seed": 3} and params["streaming"] is False
        assert "canary" not in repr(params) and "wvy" not in repr(params)
    assert starts.params[1]["chat_template"] == "llama3"
