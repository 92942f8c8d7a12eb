"""Compiled JMESPath expressions with a fast path for plain paths.

Handlers locate text, finish reasons and usage with JMESPath. Most of those
expressions are plain paths (``token.text``, ``choices[0].delta.content``) or
``||`` chains of them (``choices[0].delta.content || choices[0].text``), which
are evaluated here by direct indexing — same semantics as JMESPath (``None`` on a
missing key or a type mismatch; ``||`` skips null, false, ``""``, ``[]`` and
``{}`` but not ``0``), several times faster, which matters once per stream
record. Everything else goes to ``jmespath``, bounded: an expression has at most
:data:`MAX_CHARS` characters, :data:`MAX_NODES` nodes and :data:`MAX_DEPTH` levels
(checked when the handler loads), and at run time ``to_string``, ``join`` and the
result may not exceed :data:`MAX_UNITS` plus twice the size of the reply, counting
shared references every time (``to_string([@, @])`` doubles) — else
``ResponseParseError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from sm_llm.errors import ConfigurationError, ResponseParseError

__all__ = ["MAX_CHARS", "MAX_DEPTH", "MAX_NODES", "MAX_UNITS", "Getter", "compile_expression", "plain_head"]

MAX_CHARS = 1024
"""Longest JMESPath expression."""
MAX_NODES = 64
"""Most nodes in a parsed expression (the shipped presets use at most 12)."""
MAX_DEPTH = 16
"""Deepest parsed expression."""
MAX_UNITS = 1 << 20
"""Characters (a container element counts 8) an evaluation may build beyond twice the reply."""

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
    indexed = _indexed_getter(steps)
    if indexed is not None:
        return indexed

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


def _indexed_getter(steps: tuple[str | int, ...]) -> Getter | None:
    """``a[i]``, ``[i]`` or either followed by up to three keys (``choices[0].delta.content``,
    ``[0].generated_text``): the usual OpenAI and TGI fields, unrolled; else ``None``."""
    head: str | None = None
    if steps and isinstance(steps[0], str):
        head, steps = steps[0], steps[1:]
    if not steps or not isinstance(steps[0], int):
        return None
    index, keys = steps[0], steps[1:]
    if len(keys) > 3 or not all(isinstance(key, str) for key in keys):
        return None
    tail = _key_getter(*keys) if keys else None  # type: ignore[arg-type]

    def get(value: Any) -> Any:
        if head is not None:
            if not isinstance(value, dict):
                return None
            value = value.get(head)
        if not isinstance(value, list):
            return None
        try:
            value = value[index]
        except IndexError:
            return None
        return value if tail is None else tail(value)

    return get


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


def plain_head(expression: str) -> str | None:
    """The first key of a plain path (``usage`` of ``usage.prompt_tokens``), else ``None``.
    Where that key is missing or null the path is ``None`` too, so a reader may skip it."""
    expression = expression.strip()
    if not _PLAIN.fullmatch(expression):
        return None
    name, _ = _STEP.match(expression).groups()  # type: ignore[union-attr]
    return name or None


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

    if len(expression) > MAX_CHARS:
        raise ConfigurationError(f"JMESPath expression is {len(expression):,} characters long (at most {MAX_CHARS:,})")
    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise ConfigurationError(f"invalid JMESPath expression {expression!r}: {exc}") from exc
    except RecursionError as exc:
        raise ConfigurationError(f"JMESPath expression nested too deeply: {expression[:80]!r}") from exc
    nodes, depth = _shape(compiled.parsed)
    if nodes > MAX_NODES or depth > MAX_DEPTH:
        raise ConfigurationError(
            f"JMESPath expression too complex ({nodes} nodes, {depth} deep; at most {MAX_NODES} "
            f"and {MAX_DEPTH}): {expression[:80]!r}"
        )
    return _bounded(compiled, expression)


def _shape(node: Any) -> tuple[int, int]:
    """``(nodes, depth)`` of a parsed JMESPath tree."""
    count, depth = 1, 1
    for child in node.get("children", ()) if isinstance(node, dict) else ():
        if isinstance(child, dict):
            child_count, child_depth = _shape(child)
            count, depth = count + child_count, max(depth, child_depth + 1)
    return count, depth


class _TooLarge(Exception):
    pass


_ALLOWANCE: ContextVar[int] = ContextVar("sm_llm_expr_allowance", default=MAX_UNITS)


def _units(value: Any, cap: int) -> int:
    """Size of ``value`` as text (a container element counts 8), shared references counted
    every time; raises ``_TooLarge`` past ``cap``. Each distinct container is walked once."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        if not isinstance(item, (dict, list)) or (not children_done and id(item) in sizes):
            continue
        values = list(item.values()) if isinstance(item, dict) else item
        if not children_done:
            stack.append((item, True))
            stack.extend((child, False) for child in values)
            continue
        size = 8 * (len(item) + 1) + (sum(map(len, item)) if isinstance(item, dict) else 0)
        for child in values:
            size += _size_of(sizes, child)
            if size > cap:
                raise _TooLarge
        sizes[id(item)] = size
    return _size_of(sizes, value)


def _size_of(sizes: dict[int, int], value: Any) -> int:
    if isinstance(value, (dict, list)):
        return sizes[id(value)]
    return len(value) if isinstance(value, str) else 8


def _functions() -> Any:
    from jmespath import functions

    class BoundedFunctions(functions.Functions):  # type: ignore[misc]
        """``to_string`` and ``join`` sized before they build (``to_string([@, @])`` doubles)."""

        @functions.signature({"types": []})  # type: ignore[untyped-decorator]
        def _func_to_string(self, arg: Any) -> Any:
            _units(arg, _ALLOWANCE.get())  # json.dumps writes every shared reference out
            return super()._func_to_string(arg)

        @functions.signature({"types": ["string"]}, {"types": ["array-string"]})  # type: ignore[untyped-decorator]
        def _func_join(self, separator: str, array: list[str]) -> Any:
            if len(separator) * len(array) + sum(map(len, array)) > _ALLOWANCE.get():
                raise _TooLarge
            return super()._func_join(separator, array)

    return BoundedFunctions()


@lru_cache(maxsize=1)
def _options() -> Any:
    import jmespath

    return jmespath.Options(custom_functions=_functions())


def _bounded(compiled: Any, expression: str) -> Getter:
    """``compiled.search`` with its built strings and its result bounded (see the module docstring)."""
    options = _options()

    def search(value: Any) -> Any:
        try:
            allowance = MAX_UNITS + 2 * _units(value, 1 << 62)
            token = _ALLOWANCE.set(allowance)
            try:
                result = compiled.search(value, options=options)
            finally:
                _ALLOWANCE.reset(token)
            _units(result, allowance)
        except _TooLarge:
            raise ResponseParseError(
                f"JMESPath expression {expression[:80]!r} would build more than {MAX_UNITS:,} "
                "characters beyond twice the reply"
            ) from None
        except RecursionError:
            raise ResponseParseError(f"reply nested too deeply for {expression[:80]!r}") from None
        return result

    return search
