"""langchain-tests' standard integration suite for ChatSageMaker against the local endpoint.

The local endpoint runs a deterministic echo model. It passes everything a real
model would, except where a test needs actual understanding — those are marked
``xfail`` with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from sm_llm import ChatSageMaker
from sm_llm.local import LocalEndpoint


class TestChatSageMakerIntegration(ChatModelIntegrationTests):
    sm_transport = "botocore"

    @pytest.fixture(autouse=True)
    def _route_to_local_endpoint(
        self, local_endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch, sm_transport: str
    ) -> Iterator[None]:
        # boto3's service-specific endpoint variable: the adapters need no endpoint_url here.
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", local_endpoint.url)
        self.sm_transport = sm_transport  # the test's own instance: chat_model_params reads it
        yield

    @property
    def chat_model_class(self) -> type[ChatSageMaker]:
        return ChatSageMaker

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"endpoint_name": "openai", "content_handler": "openai", "region_name": "us-east-1",
                "transport": self.sm_transport}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[Any]]:
        return {"invoke": [], "stream": []}


@pytest.mark.single_transport("api='openai' has its own wire (bearer tokens on httpx): transport does not apply")
class TestChatSageMakerOpenAIRouteIntegration(TestChatSageMakerIntegration):
    """The same suite on SageMaker's OpenAI-compatible route (``api="openai"``): bearer
    tokens made from the test environment's credentials, which the local endpoint accepts."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {**super().chat_model_params, "api": "openai"}
