"""SECURITY.md claims that need a live call: secrets never reach logs, errors or callbacks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm import errors as e

CANARY = "canary-5b7c-secret"


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self.seen.append(repr((serialized, kwargs)))

    def on_chat_model_start(self, serialized: dict[str, Any], messages: Any, **kwargs: Any) -> None:
        self.seen.append(repr((serialized, kwargs)))

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append(repr((error, kwargs)))


@pytest.mark.parametrize("cls", [SageMakerLLM, ChatSageMaker])
def test_canary_secret_never_in_logs_errors_or_callbacks(
    cls: type, ep: Any, fault: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sm_llm")
    caplog.set_level(logging.DEBUG, logger="langchain_core")
    recorder = Recorder()
    adapter = cls(
        endpoint_name="openai", content_handler="openai", endpoint_url=ep.url, region_name="us-east-1",
        aws_access_key_id="AKIATESTKEY", aws_secret_access_key=CANARY, aws_session_token=f"tok-{CANARY}",
        max_retries=2,
    )
    adapter.invoke("hello", config={"callbacks": [recorder]})
    list(adapter.stream("stream me", config={"callbacks": [recorder]}))
    ep.faults = fault(fail_next=["ServiceUnavailable", "ModelError"])
    with pytest.raises(e.ModelError) as info:
        adapter.invoke("fails after a retry", config={"callbacks": [recorder]})
    texts = [caplog.text, str(info.value), repr(info.value), repr(info.value.__cause__), *recorder.seen]
    assert "retrying after ServiceUnavailableError" in caplog.text  # the logs were captured
    for text in texts:
        assert CANARY not in text
