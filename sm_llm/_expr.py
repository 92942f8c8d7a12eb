"""Compiled JMESPath expressions with a fast path for plain paths.

Handlers locate text, finish reasons and usage with JMESPath. Most of those
expressions are plain paths (``token.text``, ``choices[0].delta.content``) or
``||`` chains of them (``choices[0].delta.content || choices[0].text``), which
are evaluated here by direct indexing — same semantics as JMESPath (``None`` on a
missing key or a type mismatch; ``||`` skips null, false, ``""``, ``[]`` and
``{}`` but not ``0``), several times faster, which matters once per stream
record. Everything else goes to ``jmespath``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sm_llm.errors import ConfigurationError

__all__ = ["Getter", "compile_expression"]

Getter = Callable[[Any], Any]

_PLAIN = re.compile(
    r"(?:[A-Za-z_][A-Za-z0-9_]*|\[-?[0-9]+\])(?:\.[A-Za-z_][A-Za-z0-9_]*|\[-?[0-9]+\])*"
)
_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]")


def _plain_getter(steps: tuple[str | int, ...]) -> Getter:
    """A plain path, evaluated like JMESPath: ``None`` on a missing key, an index out
    of range, or a step into the wrong type (a key on a list, an index on a string)."""
    if all(isinstance(step, str) for step in steps) and len(steps) <= 3:
        return _key_getter(*steps)  # type: ignore[arg-type]

    def get(value: Any) -> Any:
        for step in steps:
            if isinstance(step, str):
                if not isinstance(value, dict):
                    return None
                value = value.get(step)
            else:
                if not isinstance(value, list):
                    return None
                try:
                    value = value[step]
                except IndexError:
                    return None
            if value is None:
                return None
        return value

    return get


def _key_getter(first: str, second: str | None = None, third: str | None = None) -> Getter:
    """``a``, ``a.b`` or ``a.b.c``: the usual stream fields, unrolled (once per record)."""
    if second is None:

        def get1(value: Any) -> Any:
            return value.get(first) if isinstance(value, dict) else None

        return get1
    if third is None:

        def get2(value: Any) -> Any:
            if isinstance(value, dict):
                value = value.get(first)
                if isinstance(value, dict):
                    return value.get(second)
            return None

        return get2

    def get3(value: Any) -> Any:
        if isinstance(value, dict):
            value = value.get(first)
            if isinstance(value, dict):
                value = value.get(second)
                if isinstance(value, dict):
                    return value.get(third)
        return None

    return get3


def _is_false(value: Any) -> bool:
    """JMESPath falsiness: null, false, and empty strings, arrays and objects (not 0)."""
    if value is None or value is False:
        return True
    return isinstance(value, (str, list, dict)) and not value


def _or_getter(getters: tuple[Getter, ...]) -> Getter:
    """``a || b || ...``: the first operand that is not false, else the last value."""

    def get(value: Any) -> Any:
        result = None
        for getter in getters:
            result = getter(value)
            if not _is_false(result):
                return result
        return result

    return get


def _compile_plain(expression: str) -> Getter | None:
    if not _PLAIN.fullmatch(expression):
        return None
    steps: list[str | int] = []
    for name, index in _STEP.findall(expression):
        steps.append(name if name else int(index))
    return _plain_getter(tuple(steps))


@lru_cache(maxsize=512)
def compile_expression(expression: str) -> Getter:
    """Return a function that evaluates ``expression`` on parsed JSON."""
    expression = expression.strip()
    plain = _compile_plain(expression)
    if plain is not None:
        return plain
    if "||" in expression:  # ``||`` binds loosest, so its operands are whole paths
        operands = [_compile_plain(part.strip()) for part in expression.split("||")]
        if all(operands):
            return _or_getter(tuple(operands))  # type: ignore[arg-type]
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise ConfigurationError(f"invalid JMESPath expression {expression!r}: {exc}") from exc
    search: Getter = compiled.search
    return search
