"""The per-call shortcuts (issue 15, item 3) change nothing but the cost.

* a reply body is read as ``json.loads`` reads it (UTF-16/32, BOMs, whitespace, errors);
* the reply expressions are compiled once per handler, not on every reply;
* langchain-core's per-call ``inspect.signature(self._generate)`` reads a signature
  computed once, equal to the real one.
"""

from __future__ import annotations

import enum
import inspect
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.language_models.fake import FakeListLLM

from sm_llm import ChatSageMaker, ContentHandler, SageMakerLLM
from sm_llm import handlers as handlers_module
from sm_llm._core.request import inference_id
from sm_llm.handlers import _loads_body

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


def outcome(read: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "value", read(body)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=300, deadline=None)
@given(
    value=json_values,
    encoding=st.sampled_from(ENCODINGS),
    before=st.sampled_from(["", " ", "\n\t", "\ufeff"]),
    after=st.sampled_from(["", " ", "\r\n", "x", "]"]),
)
def test_reply_bodies_are_read_as_json_loads_reads_them(value: Any, encoding: str, before: str, after: str) -> None:
    body = (before + json.dumps(value, ensure_ascii=False) + after).encode(encoding, "surrogatepass")
    assert outcome(_loads_body, body) == outcome(json.loads, body)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=40))
def test_any_bytes_are_read_as_json_loads_reads_them(body: bytes) -> None:
    assert outcome(_loads_body, body) == outcome(json.loads, body)


@pytest.mark.parametrize(
    "body",
    [b'"\xed\xa0\x80"', b'["a\x00"]', b"1\x00\x00\x00", b"[\x001\x00]\x00", b"\xef\xbb\xbf{}", b" {} ", b"", b"nul"],
    ids=["surrogate", "nul-in-string", "utf-32-le-like", "utf-16-le", "utf-8-bom", "spaces", "empty", "not-json"],
)
def test_edge_bodies_are_read_as_json_loads_reads_them(body: bytes) -> None:
    assert outcome(_loads_body, body) == outcome(json.loads, body)
    assert outcome(_loads_body, bytearray(body)) == outcome(json.loads, bytearray(body))


def test_reply_expressions_are_compiled_once_per_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = ContentHandler.from_preset("tgi").model_copy()
    body = b'[{"generated_text": "hi", "details": {"finish_reason": "length", "generated_tokens": 2}}]'
    first = handler.parse_response(body)

    def no_compiling(expression: str) -> Any:
        raise AssertionError(f"compiled {expression!r} again")

    monkeypatch.setattr(handlers_module, "compile_expression", no_compiling)
    again = handler.parse_response(body)
    assert again == first
    assert (again.text, again.finish_reason, again.usage) == ("hi", "length", {"completion_tokens": 2})


@pytest.mark.parametrize("cls", [SageMakerLLM, ChatSageMaker])
@pytest.mark.parametrize("name", ["_generate", "_agenerate"])
def test_signatures_langchain_reads_per_call_are_computed_once(cls: type, name: str) -> None:
    function = getattr(cls, name)
    cached = vars(function)["__signature__"]
    del function.__signature__
    try:
        assert inspect.signature(function) == cached  # the real one
    finally:
        function.__signature__ = cached
    assert inspect.signature(function) is cached
    assert "run_manager" in cached.parameters


def test_a_subclass_overriding_generate_gets_its_own_signature() -> None:
    class Custom(SageMakerLLM):
        def _generate(self, prompts: list[str], stop: list[str] | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
            return super()._generate(prompts, stop=stop, **kwargs)

    signature = vars(Custom._generate)["__signature__"]
    assert "run_manager" not in signature.parameters
    assert inspect.signature(Custom(endpoint_name="e", region_name="us-east-1")._generate).parameters.keys() == {
        "prompts", "stop", "kwargs"
    }
    assert "__signature__" not in vars(FakeListLLM._generate)  # only our classes are touched


def test_inference_ids_are_uuid4_hex(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import uuid
    from types import SimpleNamespace

    from sm_llm._core import request as request_module

    for _ in range(200):
        raw = os.urandom(16)
        monkeypatch.setattr(request_module, "os", SimpleNamespace(urandom=lambda n, raw=raw: raw))
        assert inference_id() == uuid.UUID(bytes=raw, version=4).hex
    monkeypatch.undo()
    ids = {inference_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)


def _reference_plain(value: Any) -> Any:
    """chat_templates._plain before its fast paths (the specification)."""
    import dataclasses
    from collections.abc import Mapping

    if value is None or type(value) in (str, int, float, bool):
        return value
    for base, plain in ((str, str.__str__), (int, int.__int__), (float, float.__float__)):
        if isinstance(value, base):
            return plain(value)
    if isinstance(value, Mapping):
        return {_reference_plain(k): _reference_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reference_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_reference_plain(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _reference_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _reference_plain(value.model_dump())
    return f"<{type(value).__name__}>"


class _Color(str, enum.Enum):  # noqa: UP042 - a str subclass, rebuilt as its value
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


class _Words(list):  # type: ignore[type-arg]
    pass


_odd_leaves = st.sampled_from([_Color.RED, _Level.HIGH, True, object(), b"bytes", 1.5, _Words(["w"]), (1, "t")])
_nested = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | _odd_leaves,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=5) | st.integers() | st.sampled_from([_Color.RED, _Level.HIGH]), inner, max_size=4)
    | st.tuples(inner, inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=_nested)
def test_chat_template_values_are_made_plain_as_before(value: Any) -> None:
    from sm_llm.chat_templates import _plain

    ours, reference = _plain(value), _reference_plain(value)
    assert ours == reference
    assert repr(ours) == repr(reference)  # the same types too (1 == 1.0 == True)
