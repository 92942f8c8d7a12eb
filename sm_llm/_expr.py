"""Compiled JMESPath expressions with a fast path for plain paths.

Handlers locate text, finish reasons and usage with JMESPath. Most of those
expressions are plain paths (``token.text``, ``choices[0].delta.content``),
which are evaluated here by direct indexing — same semantics as JMESPath
(``None`` on a missing key or a type mismatch), several times faster, which
matters once per stream record. Everything else goes to ``jmespath``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sm_llm.errors import ConfigurationError

__all__ = ["Getter", "compile_expression"]

Getter = Callable[[Any], Any]

_PLAIN = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|\[-?\d+\])(?:\.[A-Za-z_][A-Za-z0-9_]*|\[-?\d+\])*$")
_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]")


def _plain_getter(steps: tuple[str | int, ...]) -> Getter:
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


@lru_cache(maxsize=512)
def compile_expression(expression: str) -> Getter:
    """Return a function that evaluates ``expression`` on parsed JSON."""
    expression = expression.strip()
    if _PLAIN.match(expression):
        steps: list[str | int] = []
        for name, index in _STEP.findall(expression):
            steps.append(name if name else int(index))
        return _plain_getter(tuple(steps))
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise ConfigurationError(f"invalid JMESPath expression {expression!r}: {exc}") from exc
    return compiled.search
