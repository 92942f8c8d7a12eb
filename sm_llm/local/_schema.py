"""Deterministic JSON-Schema instances: the arguments the local model "chooses" for a
tool call, and its ``json_schema`` replies.

Values come from the user's text (``name=value`` / ``name: value``, the first number,
or the text itself), following ``$ref``/``$defs``, ``anyOf``/``oneOf``/``allOf``,
``enum``, ``const`` and defaults; recursion and sizes are bounded.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ChatValidationError", "schema_instance"]


class ChatValidationError(Exception):
    """A bad chat/completions request; each container reports it in its own error format."""


_INT = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FALSE = frozenset({"false", "no", "off", "0"})
_MAX_DEPTH = 16
_MAX_ITEMS = 64


def schema_instance(schema: Any, text: str) -> Any:
    """A deterministic value matching the JSON ``schema``, drawn from the user's ``text``.

    ``$ref`` (local pointers such as pydantic's ``#/$defs/X``) and ``allOf`` are
    resolved first; then ``const``, ``default``, the first ``enum`` value, or the first
    non-null ``anyOf`` / ``oneOf`` branch win. Otherwise, by ``type``: objects hold
    their ``required`` properties only (optional ones are omitted); arrays hold
    ``minItems`` generated items (usually none); booleans are ``true``; ``null`` is
    null; integers / numbers are the first integer / number in ``text`` (else 0 /
    0.0), clamped to ``minimum`` / ``maximum``; strings are ``text`` itself. For a
    property written ``name=value`` or ``name: value`` in ``text`` (quotes optional),
    that value is used when it fits the type. An untyped schema yields a string.
    """
    return _value(schema, text, "", schema if isinstance(schema, Mapping) else {}, 0)


def _pointer(root: Mapping[str, Any], ref: Any) -> Mapping[str, Any]:
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise ChatValidationError(f"unsupported $ref {ref!r}: only local references (#/...)")
    node: Any = root
    for part in filter(None, ref[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            raise ChatValidationError(f"unresolvable $ref {ref!r}")
        node = node[part]
    if not isinstance(node, Mapping):
        raise ChatValidationError(f"$ref {ref!r} does not point to a schema")
    return node


def _flatten(schema: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with ``$ref`` followed (siblings override the target) and ``allOf`` merged."""
    if not isinstance(schema, Mapping):
        return {}  # boolean schemas and junk: anything goes
    node: Mapping[str, Any] = schema
    hops = 0
    while "$ref" in node:
        hops += 1
        if hops > _MAX_DEPTH:
            raise ChatValidationError("$ref cycle in schema")
        target = _pointer(root, node["$ref"])
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    parts = node.get("allOf")
    if isinstance(parts, list):
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in parts:
            for key, value in _flatten(part, root).items():
                if key == "properties" and isinstance(value, Mapping):
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required" and isinstance(value, list):
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        node = merged
    return node


def _is_null(schema: Any, root: Mapping[str, Any]) -> bool:
    return _flatten(schema, root).get("type") == "null"


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if kinds else ("null" if kind else None)
    if isinstance(kind, str):
        return kind
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _named_value(name: str, text: str) -> str | None:
    """``value`` of ``name=value`` / ``name: value`` in ``text`` (quotes optional)."""
    if not name:
        return None
    match = re.search(
        rf"(?<![\w-]){re.escape(name)}\s*[=:]\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s,;]+))",
        text,
        re.IGNORECASE,
    )
    if match is None:
        return None
    if match.group(3) is None:
        return match.group(1) if match.group(1) is not None else match.group(2)
    return match.group(3).rstrip(".!?)") or match.group(3)


def _number(pattern: re.Pattern[str], named: str | None, text: str) -> str | None:
    if named is not None and pattern.fullmatch(named):
        return named
    match = pattern.search(text)
    return match.group(0) if match else None


def _clamp(value: float, schema: Mapping[str, Any], step: float) -> float:
    low, low_x = _numeric(schema.get("minimum")), _numeric(schema.get("exclusiveMinimum"))
    high, high_x = _numeric(schema.get("maximum")), _numeric(schema.get("exclusiveMaximum"))
    if low is not None and value < low:
        value = low
    if low_x is not None and value <= low_x:
        value = low_x + step
    if high is not None and value > high:
        value = high
    if high_x is not None and value >= high_x:
        value = high_x - step
    return value


def _numeric(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _value(schema: Any, text: str, name: str, root: Mapping[str, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    schema = _flatten(schema, root)
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return copy.deepcopy(enum[0])
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            option = next((o for o in options if not _is_null(o, root)), None)
            return None if option is None else _value(option, text, name, root, depth + 1)
    kind = _kind(schema)
    named = _named_value(name, text)
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        keys = [k for k in required if isinstance(k, str)] if isinstance(required, list) else []
        return {
            k: _value(properties.get(k, {}), text, k, root, depth + 1) for k in dict.fromkeys(keys)
        }
    if kind == "array":
        count = schema.get("minItems", 0)
        count = min(count, _MAX_ITEMS) if isinstance(count, int) and count > 0 else 0
        return [_value(schema.get("items", {}), text, name, root, depth + 1) for _ in range(count)]
    if kind == "integer":
        found = _number(_INT, named, text)
        return int(_clamp(int(found) if found else 0, schema, 1))
    if kind == "number":
        found = _number(_NUMBER, named, text)
        return float(_clamp(float(found) if found else 0.0, schema, 1.0))
    if kind == "boolean":
        return named is None or named.lower() not in _FALSE
    if kind == "null":
        return None
    value = text if named is None else named
    min_len, max_len = schema.get("minLength"), schema.get("maxLength")
    if isinstance(max_len, int) and max_len >= 0:
        value = value[:max_len]
    if isinstance(min_len, int) and len(value) < min_len:
        value = value.ljust(min_len, "x")
    return value
