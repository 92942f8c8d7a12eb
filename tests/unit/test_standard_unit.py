"""langchain-tests' standard unit suite for ChatSageMaker (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.load import dumpd, load
from langchain_tests.unit_tests import ChatModelUnitTests

from sm_llm import ChatSageMaker


class TestChatSageMakerUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatSageMaker]:
        return ChatSageMaker

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"endpoint_name": "my-endpoint", "content_handler": "openai", "region_name": "us-east-1"}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # No api_key: SageMaker authenticates with AWS credentials, and an unknown field is
        # refused rather than ignored (tests/unit/test_arguments.py).
        params = dict(super().standard_chat_model_params)
        params.pop("api_key", None)
        return params

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "eu-west-1"},
            {"endpoint_name": "my-endpoint"},
            {},
        )

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True  # multimodal content parts are passed through to messages containers

    @property
    def supports_model_override(self) -> bool:
        # SageMaker has no per-request model name: routing is target_model / inference components.
        return False

    @pytest.mark.xfail(
        reason="langchain-core's load() only revives classes on its built-in partner allowlist "
        "(allowed_objects='all' means that list), which a third-party package is not on; "
        "test_round_trip_with_explicit_allowlist below covers dumpd/load for ChatSageMaker",
        strict=True,
    )
    def test_serdes(self, *args: Any, **kwargs: Any) -> None:
        super().test_serdes(*args, **kwargs)


def test_round_trip_with_explicit_allowlist() -> None:
    model = ChatSageMaker(endpoint_name="my-endpoint", region_name="us-east-1", max_tokens=7,
                          aws_secret_access_key="canary-secret")
    data = dumpd(model)
    assert "canary-secret" not in str(data)
    revived = load(
        data, valid_namespaces=["sm_llm"], allowed_objects=[ChatSageMaker],
        secrets_map={"AWS_SECRET_ACCESS_KEY": "s"},
    )
    assert isinstance(revived, ChatSageMaker)
    assert (revived.endpoint_name, revived.max_tokens) == ("my-endpoint", 7)


class TestChatSageMakerOpenAIRouteUnit(TestChatSageMakerUnit):
    """The same suite for ``api="openai"`` (SageMaker's OpenAI-compatible route)."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {**super().chat_model_params, "api": "openai"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        env, fields, expected = super().init_from_env_params
        return env, {**fields, "api": "openai"}, expected
