"""Routing validation per operation, custom attributes, body limits."""

from __future__ import annotations

import pytest

from sm_llm import ConfigurationError
from sm_llm._routing import (
    ASYNC,
    INVOKE,
    STREAM,
    Routing,
    check_body_size,
    check_endpoint_name,
    format_custom_attributes,
)


def test_every_option_maps_to_its_boto3_parameter() -> None:
    routing = Routing(
        target_model="model-a.tar.gz",
        target_variant="blue",
        target_container_hostname="c-1",
        inference_component_name="ic-1",
        custom_attributes={"a": 1, "b": True},
        enable_explanations=True,
        session_id="NEW_SESSION",
        inference_id="req 1",
    )
    assert routing.to_params(INVOKE) == {
        "TargetModel": "model-a.tar.gz",
        "TargetVariant": "blue",
        "TargetContainerHostname": "c-1",
        "InferenceComponentName": "ic-1",
        "CustomAttributes": "a=1;b=true",
        "EnableExplanations": "`true`",
        "SessionId": "NEW_SESSION",
        "InferenceId": "req 1",
    }


@pytest.mark.parametrize(
    ("field", "value", "operation", "match"),
    [
        ("target_model", "m.tar.gz", STREAM, "multi-model endpoints cannot stream"),
        ("enable_explanations", "`true`", STREAM, "explanations"),
        ("session_id", "NEW_SESSION", STREAM, "streaming API cannot open sessions"),
        ("target_variant", "blue", ASYNC, "does not take TargetVariant"),
        ("target_model", "m", ASYNC, "asynchronous"),
        ("inference_component_name", "ic", ASYNC, "does not take"),
    ],
)
def test_option_not_on_operation(field: str, value: str, operation: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Routing(**{field: value}).to_params(operation)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target_variant", "bad_name"),
        ("target_variant", "x" * 64),
        ("target_container_hostname", "-lead"),
        ("inference_component_name", "trailing-"),
        ("target_model", " leading-space"),
        ("target_model", "x" * 1025),
        ("target_model", "a\r\nX-Injected: 1"),
        ("inference_id", "x" * 65),
        ("inference_id", "tab\there"),
        ("session_id", "sess_1"),
        ("session_id", "s" * 257),
        ("custom_attributes", "a=1\r\nX-Evil: 1"),
        ("custom_attributes", "x" * 1025),
        ("custom_attributes", "é=1"),
        ("enable_explanations", "x" * 65),
        ("target_variant", ""),
    ],
)
def test_bad_values_rejected(field: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Routing(**{field: value}).to_params(INVOKE)  # type: ignore[arg-type]


def test_per_call_overrides_win() -> None:
    routing = Routing(target_model="a", target_variant="blue").merged({"target_model": "b", "target_variant": None})
    assert routing.target_model == "b" and routing.target_variant == "blue"


@pytest.mark.parametrize(
    ("value", "defaults", "expected"),
    [
        (None, None, None),
        ("raw-token", None, "raw-token"),
        ("a=1;b=2", None, "a=1;b=2"),
        ({"a": 1}, {"accept_eula": "true"}, "accept_eula=true;a=1"),
        ("accept_eula=false", {"accept_eula": "true"}, "accept_eula=false"),
        ("a=1; a=2", None, "a=2"),
        ({"flag": False}, None, "flag=false"),
        (None, {"accept_eula": "true"}, "accept_eula=true"),
    ],
)
def test_custom_attributes(value: object, defaults: dict[str, str] | None, expected: str | None) -> None:
    assert format_custom_attributes(value, defaults) == expected  # type: ignore[arg-type]


def test_endpoint_name() -> None:
    check_endpoint_name("my-endpoint-1")
    for bad in ("", "bad_name", "x" * 64, "a/b"):
        with pytest.raises(ConfigurationError, match="endpoint_name"):
            check_endpoint_name(bad)


def test_body_limits() -> None:
    check_body_size(b"x" * 6_291_456, INVOKE)
    with pytest.raises(ConfigurationError, match="asynchronous inference"):
        check_body_size(b"x" * 6_291_457, INVOKE)
    with pytest.raises(ConfigurationError, match="6 MiB"):
        check_body_size(b"x" * 6_291_457, STREAM)
    check_body_size(b"x" * 128_000, ASYNC)
    with pytest.raises(ConfigurationError, match="input_s3_uri"):
        check_body_size(b"x" * 128_001, ASYNC)


# A valid value of each routing field and the operations that take it.
VALID = {
    "target_model": ("m.tar.gz", (INVOKE,)),
    "target_variant": ("blue", (INVOKE, STREAM)),
    "target_container_hostname": ("c-1", (INVOKE, STREAM)),
    "inference_component_name": ("ic-1", (INVOKE, STREAM)),
    "session_id": ("sess-1", (INVOKE, STREAM)),
    "inference_id": ("req-1", (INVOKE, STREAM, ASYNC)),
    "enable_explanations": ("`true`", (INVOKE,)),
    "custom_attributes": ("a=1", (INVOKE, STREAM, ASYNC)),
}
# Each is accepted by a "$"-anchored pattern or trimmed by str.strip().
TRAILING = ["\n", "\r", "\t", "\v", "\x1c", "\x85", "\u2028", "\u3000", "\x00"]


@pytest.mark.parametrize("tail", TRAILING, ids=repr)
@pytest.mark.parametrize(
    ("field", "operation"), [(f, op) for f, (_, ops) in VALID.items() for op in ops]
)
def test_trailing_control_characters_rejected(field: str, operation: str, tail: str) -> None:
    value = VALID[field][0]
    Routing(**{field: value}).to_params(operation)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=field):
        Routing(**{field: value + tail}).to_params(operation)  # type: ignore[arg-type]


@pytest.mark.parametrize("tail", TRAILING, ids=repr)
def test_custom_attribute_values_and_defaults_fully_checked(tail: str) -> None:
    with pytest.raises(ConfigurationError, match="custom_attributes"):
        Routing(custom_attributes={"a": "1" + tail}).to_params(INVOKE)
    with pytest.raises(ConfigurationError, match="custom_attributes"):
        Routing(custom_attributes={"a" + tail: "1"}).to_params(INVOKE)
    with pytest.raises(ConfigurationError, match="custom_attributes"):
        Routing().to_params(INVOKE, default_attributes={"a": "1" + tail})


@pytest.mark.parametrize("tail", TRAILING, ids=repr)
def test_endpoint_name_fully_matched(tail: str) -> None:
    with pytest.raises(ConfigurationError, match="endpoint_name"):
        check_endpoint_name("ep" + tail)
