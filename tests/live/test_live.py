"""The standard LangChain integration suite against a REAL SageMaker endpoint (opt-in).

    SM_LLM_LIVE_ENDPOINT=my-vllm-endpoint SM_LLM_LIVE_HANDLER=openai AWS_REGION=us-east-1 \\
        .venv/bin/pytest tests/live -q

``SM_LLM_LIVE_HANDLER`` is a content-handler preset (default ``openai``); for text
containers also set ``SM_LLM_LIVE_CHAT_TEMPLATE`` (e.g. ``llama3``). Credentials come
from the usual AWS places. Skipped unless ``SM_LLM_LIVE_ENDPOINT`` is set.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from sm_llm import ChatSageMaker, SageMakerLLM

ENDPOINT = os.environ.get("SM_LLM_LIVE_ENDPOINT")
HANDLER = os.environ.get("SM_LLM_LIVE_HANDLER", "openai")
TEMPLATE = os.environ.get("SM_LLM_LIVE_CHAT_TEMPLATE")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not ENDPOINT, reason="set SM_LLM_LIVE_ENDPOINT to run against a real endpoint"),
]


class TestLiveChatSageMaker(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatSageMaker]:
        return ChatSageMaker

    @property
    def chat_model_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"endpoint_name": ENDPOINT, "content_handler": HANDLER}
        if TEMPLATE:
            params["chat_template"] = TEMPLATE
        return params

    @property
    def has_tool_calling(self) -> bool:
        return HANDLER == "openai"

    @property
    def has_structured_output(self) -> bool:
        return HANDLER == "openai"

    @property
    def supports_model_override(self) -> bool:
        return False


def test_live_llm_invoke_and_stream() -> None:
    llm = SageMakerLLM(endpoint_name=ENDPOINT, content_handler=HANDLER, max_tokens=16)
    assert llm.invoke("Say hello.")
    assert "".join(llm.stream("Count to three."))
