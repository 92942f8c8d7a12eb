"""ServerConfig / FaultConfig, fault determinism, stream shaping, validation, sessions, routing."""

from __future__ import annotations

import random
import re
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from sm_llm.errors import ConfigurationError
from sm_llm.local import FaultConfig, ServerConfig
from sm_llm.local._containers import Piece
from sm_llm.local._errors import ServiceError
from sm_llm.local._faults import FaultState, StreamFault, shape_stream
from sm_llm.local._routing import Router
from sm_llm.local._sessions import SessionStore
from sm_llm.local._validation import validate_request


def test_default_config_has_every_topology() -> None:
    names = [e.name for e in ServerConfig().endpoints]
    assert names == [
        "tgi", "lmi", "openai", "jumpstart", "jumpstart-chat", "text2text",
        "tei", "openai-embeddings", "jumpstart-embeddings",
        "mme", "variants", "multi-container", "components",
    ]


def test_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(
        textwrap.dedent(
            """
            region: eu-west-1
            endpoints:
              - name: chat
                container: openai
                model_id: my-model
              - name: split
                variants:
                  - {name: a, weight: 3, greeting: "A!"}
                  - {name: b, weight: 0}
            faults:
              latency_ms: 5
              fail_next: [ServiceUnavailable, ModelError]
              error_rates: {ThrottlingException: 0.25}
              stream_split_seed: 3
            """
        )
    )
    config = ServerConfig.from_yaml(path)
    assert config.region == "eu-west-1"
    assert [e.name for e in config.endpoints] == ["chat", "split"]
    assert config.endpoints[0].model_id == "my-model"
    assert config.endpoints[1].variants[0].weight == 3
    assert config.faults.fail_next == ["ServiceUnavailable", "ModelError"]
    assert config.faults.error_rates == {"ThrottlingException": 0.25}


def test_yaml_without_endpoints_keeps_defaults(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("faults: {token_delay_ms: 1}\n")
    config = ServerConfig.from_yaml(path)
    assert len(config.endpoints) == 13 and config.faults.token_delay_ms == 1


@pytest.mark.parametrize(
    "data",
    [
        {"endpoints": [{"name": "bad_name"}]},
        {"endpoints": [{"name": "a"}, {"name": "a"}]},
        {"endpoints": [{"name": "a", "container": "nope"}]},
        {"endpoints": [{"name": "a", "models": {"m": {}}, "containers": {"c": {}}}]},
        {"faults": {"error_rates": {"ThrottlingException": 1.5}}},
        {"faults": {"fail_next": ["NotACode"]}},
        {"typo": 1},
    ],
)
def test_invalid_config(data: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ServerConfig.from_dict(data)


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        ServerConfig.from_yaml(tmp_path / "absent.yaml")


def test_fail_next_then_normal_service() -> None:
    state = FaultState(FaultConfig(fail_next=["ServiceUnavailable", "ThrottlingException"]))
    assert [state.next_fault() for _ in range(4)] == [
        "ServiceUnavailable", "ThrottlingException", None, None,
    ]


def test_fault_state_copies_its_config() -> None:
    config = FaultConfig(fail_next=["InternalFailure"])
    FaultState(config).next_fault()
    assert config.fail_next == ["InternalFailure"]


def test_error_rates_are_seeded() -> None:
    config = FaultConfig(seed=42, error_rates={"ThrottlingException": 0.3, "InternalFailure": 0.2})
    first = FaultState(config)
    second = FaultState(config)
    a = [first.next_fault() for _ in range(400)]
    b = [second.next_fault() for _ in range(400)]
    assert a == b
    assert 0.2 < a.count("ThrottlingException") / 400 < 0.4
    assert 0.1 < a.count("InternalFailure") / 400 < 0.3
    other = FaultState(config.model_copy(update={"seed": 43}))
    assert [other.next_fault() for _ in range(400)] != a


def test_variant_choice_is_seeded() -> None:
    picks = [FaultState(FaultConfig(seed=1)).choose_variant(["a", "b"], [1, 1]) for _ in range(3)]
    assert len(set(picks)) == 1
    state = FaultState(FaultConfig(seed=1))
    assert {state.choose_variant(["a", "b"], [1, 0]) for _ in range(50)} == {"a"}


def _shape(pieces: Iterable[Piece], config: FaultConfig, split: random.Random | None = None) -> list[bytes | StreamFault]:
    return list(shape_stream(pieces, config, split, lambda s: False))


def test_shape_stream_passthrough_and_fixed_parts() -> None:
    pieces = [Piece(b"abc\n"), Piece(b"defgh\n")]
    assert _shape(pieces, FaultConfig()) == [b"abc\n", b"defgh\n"]
    assert _shape(pieces, FaultConfig(stream_max_part=3)) == [b"abc", b"\n", b"def", b"gh\n"]


def test_shape_stream_random_split_keeps_bytes() -> None:
    data = "data: héllo ✓ wörld\n\n".encode() * 5
    pieces = [Piece(data[i : i + 11]) for i in range(0, len(data), 11)]
    parts = _shape(pieces, FaultConfig(stream_max_part=5), random.Random(9))
    assert all(isinstance(p, bytes) and 1 <= len(p) <= 5 for p in parts)
    assert b"".join(p for p in parts if isinstance(p, bytes)) == data
    again = _shape(pieces, FaultConfig(stream_max_part=5), random.Random(9))
    assert again == parts


def test_shape_stream_omits_trailing_newline() -> None:
    pieces = [Piece(b"a\n\n"), Piece(b"\n"), Piece(b"b\n\n")]
    out = _shape(pieces, FaultConfig(stream_omit_trailing_newline=True))
    assert b"".join(p for p in out if isinstance(p, bytes)) == b"a\n\n\nb"


def test_shape_stream_error_after_tokens() -> None:
    pieces = [Piece(b"role", False), Piece(b"t1"), Piece(b"t2"), Piece(b"end", False)]
    out = _shape(pieces, FaultConfig(stream_error_after_tokens=1))
    assert out[:2] == [b"role", b"t1"]
    fault = out[2]
    assert isinstance(fault, StreamFault) and len(out) == 3
    assert fault.body()["ErrorCode"] == "ModelInvocationTimeExceeded"
    out = _shape(
        pieces,
        FaultConfig(stream_error_after_tokens=5, stream_error_type="InternalStreamFailure"),
    )
    assert out[:4] == [b"role", b"t1", b"t2", b"end"]
    assert isinstance(out[4], StreamFault) and out[4].exception_type == "InternalStreamFailure"
    assert "ErrorCode" not in out[4].body()


def test_shape_stream_broken_source() -> None:
    def source() -> Iterator[Piece]:
        yield Piece(b"x")
        raise ConnectionError("gone")

    out = _shape(source(), FaultConfig())
    assert out[0] == b"x"
    assert isinstance(out[1], StreamFault) and out[1].error_code == "StreamBroken"


def test_validation_messages() -> None:
    ok = validate_request("InvokeEndpoint", "tgi", {"x-amzn-sagemaker-target-variant": "a-b"}, 10)
    assert ok is None
    msg = validate_request(
        "InvokeEndpoint", "tgi", {"x-amzn-sagemaker-target-variant": "bad_name"}, 10
    )
    assert msg == (
        "1 validation error detected: Value 'bad_name' at 'targetVariant' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*"
    )
    msg = validate_request(
        "InvokeEndpoint", "tgi", {"x-amzn-sagemaker-custom-attributes": "x" * 1025}, 6_291_457
    )
    assert msg is not None and msg.startswith("2 validation errors detected: ")
    assert "Value at 'body' failed" in msg and "Value at 'customAttributes'" in msg
    assert "less than or equal to 6291456" in msg


def test_session_id_rules_per_operation() -> None:
    header = {"x-amzn-sagemaker-session-id": "NEW_SESSION"}
    assert validate_request("InvokeEndpoint", "tgi", header, 0) is None
    assert validate_request("InvokeEndpointWithResponseStream", "tgi", header, 0) is not None


def test_sessions_expire_and_close() -> None:
    now = [1000.0]
    store = SessionStore(ttl_s=60, clock=lambda: now[0])
    header = store.open("ep")
    session_id, expires = header.split("; Expires=")
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", session_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", expires)
    assert store.is_open("ep", session_id) and not store.is_open("other", session_id)
    now[0] += 61
    assert not store.is_open("ep", session_id)
    second = store.open("ep").split(";")[0]
    assert store.close("ep", second) and not store.is_open("ep", second)


def test_router_errors() -> None:
    router = Router(ServerConfig())
    faults = FaultState()
    with pytest.raises(ServiceError, match=r"Endpoint nope of account 123456789012 not found\."):
        router.resolve("nope", {}, faults)
    with pytest.raises(ServiceError, match="TargetModel is required"):
        router.resolve("mme", {}, faults)
    target = router.resolve("mme", {"x-amzn-sagemaker-target-model": "model-b.tar.gz"}, faults)
    assert target.model.greeting == "B:" and target.model.model_id == "model-b.tar.gz"
    target = router.resolve(
        "multi-container", {"x-amzn-sagemaker-target-container-hostname": "lmi-c"}, faults
    )
    assert target.container_name == "lmi-c"
