"""Scale-to-zero bookkeeping, its configuration, and when the echo model reasons."""

from __future__ import annotations

from pathlib import Path

import pytest

from sm_llm.errors import ConfigurationError
from sm_llm.local import NoCapacity, ServerConfig
from sm_llm.local._capacity import CapacityState
from sm_llm.local._openai import wants_reasoning


def test_no_capacity_for_n_requests_then_served() -> None:
    state = CapacityState(clock=lambda: 0.0)
    spec = NoCapacity(requests=2)
    assert [state.admit("e", "c", spec) for _ in range(4)] == [False, False, True, True]
    assert state.admit("e", "other", spec) is False  # each component scales on its own
    state.reset()
    assert state.admit("e", "c", spec) is False


def test_no_capacity_for_t_seconds_after_the_first_request() -> None:
    now = [100.0]
    state = CapacityState(clock=lambda: now[0])
    spec = NoCapacity(seconds=2.0)
    assert state.admit("e", "c", spec) is False
    now[0] = 101.9
    assert state.admit("e", "c", spec) is False
    now[0] = 102.0
    assert state.admit("e", "c", spec) is True
    now[0] = 0.0  # once up, it stays up
    assert state.admit("e", "c", spec) is True


def test_yaml_no_capacity_reasoning_field_and_credentials(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(
        "credentials: {AKID1: s3cret}\n"
        "endpoints:\n"
        "  - name: e\n"
        "    reasoning_field: reasoning_content\n"
        "    components:\n"
        "      cold: {container: openai, no_capacity: {seconds: 2.5}}\n"
    )
    config = ServerConfig.from_yaml(path)
    assert config.credentials["AKID1"].get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    assert config.endpoints[0].components["cold"].no_capacity == NoCapacity(seconds=2.5)
    assert config.endpoints[0].reasoning_field == "reasoning_content"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("endpoints:\n  - {name: e, container: openai, variants: [{name: v, no_capacity: {requests: 1}}]}\n",
         "only components take no_capacity"),
        ("endpoints:\n  - name: e\n    components: {c: {no_capacity: {}}}\n", "needs 'requests' or 'seconds'"),
        ("endpoints:\n  - {name: e, reasoning_field: thoughts}\n", "reasoning_field"),
    ],
)
def test_yaml_mistakes_are_named(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=where):
        ServerConfig.from_yaml(path)


def test_default_credentials_are_the_readme_dummy_pair() -> None:
    credentials = ServerConfig().credentials
    assert {k: v.get_secret_value() for k, v in credentials.items()} == {"local": "local"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, False),
        ({"reasoning_effort": "low"}, True),
        ({"reasoning_effort": "none"}, False),
        ({"reasoning_effort": None}, False),
        ({"chat_template_kwargs": {"enable_thinking": True}}, True),
        ({"chat_template_kwargs": {"thinking": True}}, True),
        ({"chat_template_kwargs": {"enable_thinking": False}, "reasoning_effort": "high"}, False),
    ],
)
def test_when_the_echo_model_reasons(payload: dict[str, object], expected: bool) -> None:
    assert wants_reasoning(payload) is expected
