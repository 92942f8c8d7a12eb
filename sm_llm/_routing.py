"""Routing options and their per-operation validation.

SageMaker Runtime's three operations take different routing headers, and
botocore validates none of their patterns or lengths (it sends a 1025-byte
``CustomAttributes`` and lets the service reject it). Everything is checked
here, before a byte is sent, and reported as :class:`ConfigurationError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from sm_llm.errors import ConfigurationError

__all__ = [
    "ASYNC",
    "INVOKE",
    "MAX_ASYNC_INLINE_BODY",
    "MAX_BODY",
    "ROUTING_FIELDS",
    "STREAM",
    "Operation",
    "Routing",
    "format_custom_attributes",
    "routing_from_endpoint_kwargs",
]

Operation = Literal["InvokeEndpoint", "InvokeEndpointWithResponseStream", "InvokeEndpointAsync"]
INVOKE: Operation = "InvokeEndpoint"
STREAM: Operation = "InvokeEndpointWithResponseStream"
ASYNC: Operation = "InvokeEndpointAsync"

MAX_BODY = 6_291_456
MAX_ASYNC_INLINE_BODY = 128_000

# Matched with fullmatch: ``$`` would also accept a value ending in "\n".
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_COMPONENT = re.compile(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?")
_PRINTABLE_ID = re.compile(r"[\x21-\x7e][\x20-\x7e]*")
_VISIBLE_ASCII = re.compile(r"[\x20-\x7e]*")
_MAY_BE_EMPTY = frozenset({"custom_attributes", "content_type", "accept"})

# field → (boto3 parameter, max length, pattern, operations that have it)
_RULES: dict[str, tuple[str, int, re.Pattern[str] | None, frozenset[str]]] = {
    "target_model": ("TargetModel", 1024, _PRINTABLE_ID, frozenset({INVOKE})),
    "target_variant": ("TargetVariant", 63, _NAME, frozenset({INVOKE, STREAM})),
    "target_container_hostname": (
        "TargetContainerHostname", 63, _NAME, frozenset({INVOKE, STREAM})
    ),
    "inference_component_name": (
        "InferenceComponentName", 63, _COMPONENT, frozenset({INVOKE, STREAM})
    ),
    "enable_explanations": ("EnableExplanations", 64, _PRINTABLE_ID, frozenset({INVOKE})),
    "session_id": ("SessionId", 256, None, frozenset({INVOKE, STREAM})),
    "inference_id": ("InferenceId", 64, _PRINTABLE_ID, frozenset({INVOKE, STREAM, ASYNC})),
    "custom_attributes": ("CustomAttributes", 1024, _VISIBLE_ASCII, frozenset({INVOKE, STREAM, ASYNC})),
}
_HINTS = {
    ("target_model", STREAM): "multi-model endpoints cannot stream; call invoke() instead of stream()",
    ("enable_explanations", STREAM): "explanations are only returned by invoke()",
    ("target_model", ASYNC): "multi-model endpoints do not take asynchronous invocations",
}


@dataclass(frozen=True, slots=True)
class Routing:
    """Every routing option of SageMaker Runtime; ``None`` means not sent."""

    target_model: str | None = None
    target_variant: str | None = None
    target_container_hostname: str | None = None
    inference_component_name: str | None = None
    custom_attributes: str | Mapping[str, Any] | None = None
    enable_explanations: str | bool | None = None
    session_id: str | None = None
    inference_id: str | None = None

    def merged(self, overrides: Mapping[str, Any]) -> Routing:
        """A copy with per-call values (those not ``None``) winning."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **changes) if changes else self

    def to_params(
        self, operation: Operation, *, default_attributes: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The boto3 keyword arguments for ``operation``, validated."""
        params: dict[str, str] = {}
        for name, (param, max_len, pattern, operations) in _RULES.items():
            raw = getattr(self, name)
            if name == "custom_attributes":
                value = format_custom_attributes(raw, default_attributes)
            elif name == "enable_explanations" and isinstance(raw, bool):
                value = "`true`" if raw else "`false`"
            else:
                value = raw
            if value is None:
                continue
            if operation not in operations:
                hint = _HINTS.get((name, operation), f"{operation} does not take {param}")
                raise ConfigurationError(f"{name} cannot be used with {operation}: {hint}")
            _check(name, str(value), max_len, pattern)
            if name == "session_id":
                _check_session(str(value), operation)
            params[param] = str(value)
        return params


ROUTING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Routing))


# langchain-aws's endpoint_kwargs keys (invoke_endpoint's own names) → our routing fields
_BY_PARAMETER = {param: name for name, (param, *_) in _RULES.items()}
# set by the adapter from the content handler or the endpoint name, never by endpoint_kwargs
_NOT_ROUTING = {
    "Accept": "the accept type comes from the content handler",
    "ContentType": "the content type comes from the content handler",
    "Body": "the body is rendered by the content handler",
    "EndpointName": "use endpoint_name=",
}


def routing_from_endpoint_kwargs(endpoint_kwargs: Any) -> dict[str, Any]:
    """langchain-aws's ``endpoint_kwargs`` (``{"CustomAttributes": "accept_eula=true"}``)
    as routing fields (``{"custom_attributes": "accept_eula=true"}``).

    Keys are ``InvokeEndpoint``'s parameter names; the field names are accepted too.
    Anything else is refused with :class:`ConfigurationError`.
    """
    from sm_llm._names import did_you_mean

    if endpoint_kwargs is None:
        return {}
    if not isinstance(endpoint_kwargs, Mapping):
        raise ConfigurationError(
            f"endpoint_kwargs must be a mapping, not {type(endpoint_kwargs).__name__}"
        )
    fields: dict[str, Any] = {}
    for key, value in endpoint_kwargs.items():
        name = _BY_PARAMETER.get(key, key if key in _RULES else None)
        if name is None:
            reason = _NOT_ROUTING.get(key) or (
                f"known keys: {', '.join(_BY_PARAMETER)}{did_you_mean(str(key), _BY_PARAMETER)}"
            )
            raise ConfigurationError(f"endpoint_kwargs: {key!r} is not a routing option ({reason})")
        fields[name] = value
    return fields


def _check(name: str, value: str, max_len: int, pattern: re.Pattern[str] | None) -> None:
    if not value and name not in _MAY_BE_EMPTY:
        raise ConfigurationError(f"{name} must not be empty")
    if len(value) > max_len:
        raise ConfigurationError(f"{name} is {len(value)} characters long; the limit is {max_len}")
    if pattern is not None and not pattern.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ConfigurationError(
            f"{name}={shown!r} is not allowed: it must match {pattern.pattern} "
            "(no control characters such as CR/LF, printable ASCII only)"
        )


def _check_session(value: str, operation: Operation) -> None:
    if value == "NEW_SESSION":
        if operation != INVOKE:
            raise ConfigurationError(
                "session_id='NEW_SESSION' only works with invoke(): the streaming API cannot "
                "open sessions, so open one with invoke() first and stream with its id"
            )
        return
    if not _NAME.fullmatch(value):
        raise ConfigurationError(
            f"session_id={value!r} is not a valid session id (letters, digits and hyphens)"
        )


def format_custom_attributes(
    value: str | Mapping[str, Any] | None, defaults: Mapping[str, str] | None = None
) -> str | None:
    """``{"a": 1, "b": "x"}`` → ``"a=1;b=x"``, after the handler's defaults.

    A string is parsed as ``k=v;k=v`` pairs so per-call values override defaults
    key by key (the last duplicate wins, as containers read them); a segment
    without ``=`` is kept as it is.
    """
    pairs: dict[str, str | None] = dict(defaults or {})
    if isinstance(value, Mapping):
        for key, item in value.items():
            pairs[str(key)] = _attr(item)
    elif isinstance(value, str):
        for segment in value.split(";"):
            # Only spaces are trimmed: str.strip() would also drop "\n", VT, NEL, U+2028...
            # and hide them from the check that refuses control characters.
            segment = segment.strip(" ")
            if not segment:
                continue
            key, sep, item = segment.partition("=")
            pairs[key.strip(" ") if sep else segment] = item.strip(" ") if sep else None
    elif value is not None:
        raise ConfigurationError("custom_attributes must be a string or a mapping")
    if not pairs:
        return None
    return ";".join(key if item is None else f"{key}={item}" for key, item in pairs.items())


def _attr(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)


def check_endpoint_name(name: str) -> None:
    """Endpoint names follow the service's pattern (≤ 63, letters, digits, hyphens)."""
    if not name:
        raise ConfigurationError("endpoint_name is required")
    _check("endpoint_name", name, 63, _NAME)


def check_media_type(name: str, value: str) -> None:
    """A handler's ``content_type`` / ``accept``: at most 1024 characters (the service's
    limit), printable ASCII only, so no control character reaches a header."""
    _check(name, value, 1024, _VISIBLE_ASCII)


def check_body_size(body: bytes, operation: Operation) -> None:
    """Real-time bodies ≤ 6 MiB; inline async bodies ≤ 128,000 bytes."""
    limit = MAX_ASYNC_INLINE_BODY if operation == ASYNC else MAX_BODY
    if len(body) <= limit:
        return
    if operation == ASYNC:
        raise ConfigurationError(
            f"the request body is {len(body):,} bytes; inline asynchronous bodies are limited "
            f"to {limit:,} bytes", field="input_s3_uri",
            advice="set async_inference.input_s3_uri to upload it to S3 instead",
        )
    raise ConfigurationError(
        f"the request body is {len(body):,} bytes; real-time invocations are limited to "
        f"{limit:,} bytes (6 MiB)", field="async_inference",
        advice="use asynchronous inference (async_inference=...) for payloads up to 1 GB",
    )
