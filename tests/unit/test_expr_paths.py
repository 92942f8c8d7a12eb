"""The fast paths of sm_llm._expr give what JMESPath itself gives, on any JSON value."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sm_llm._expr import compile_expression

_KEYS = ("a", "b", "choices", "delta")

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "x", "[0]"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4),
    max_leaves=12,
)

_step = st.sampled_from(_KEYS).map(lambda k: f".{k}") | st.integers(-3, 2).map(lambda i: f"[{i}]")


@st.composite
def _paths(draw: Any) -> str:
    """A plain path: ``a.b``, ``a[0].b.c``, ``[0].a``, ``a[1][0]``... up to five steps."""
    first = draw(_step)
    rest = draw(st.lists(_step, max_size=4))
    return (first[1:] if first.startswith(".") else first) + "".join(rest)


@pytest.mark.parametrize(
    "expression",
    ["choices[0].delta.content", "choices[0].text", "[0].generated_text", "[0].details.finish_reason",
     "choices[-1].delta", "choices[0]", "[1]", "a[0][1].b", "a.b[0].c"],
)
def test_shipped_path_shapes_match_jmespath(expression: str) -> None:
    get = compile_expression(expression)
    values: list[Any] = [
        None, [], {}, "text", [{"generated_text": "t", "details": {"finish_reason": "stop"}}],
        {"choices": [{"delta": {"content": "x"}, "text": 0}]}, {"choices": [None]}, {"choices": "ab"},
        {"choices": [{"delta": None}]}, {"choices": [{"delta": ["content"]}]}, {"a": [[0, {"b": False}]]},
        {"a": {"b": [{"c": []}]}},
    ]
    for value in values:
        assert get(value) == jmespath.search(expression, value), (expression, value)


@settings(max_examples=400, deadline=None)
@given(expression=_paths(), value=_json)
def test_plain_paths_match_jmespath(expression: str, value: Any) -> None:
    got = compile_expression(expression)(value)
    want = jmespath.search(expression, value)
    assert got == want and type(got) is type(want)
