"""``AsyncInferenceConfig``: how asynchronous inference jobs are submitted and awaited.

A pure specification (no I/O): the adapters declare the field, the engine's jobs read it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from sm_llm._validation import check_http_url, parse_s3_uri, validation_problems
from sm_llm.errors import ConfigurationError

__all__ = ["AsyncInferenceConfig"]

# Matched with fullmatch (``$`` accepts a final "\n") and ASCII classes only (``\d`` is
# Unicode). The input prefix becomes the InputLocation header: printable ASCII.
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
_RULES: dict[str, tuple[re.Pattern[str] | tuple[float, float], str]] = {
    "poll_interval": ((1e-3, 3600.0), "a positive number of seconds (at most 3600)"),
    "max_poll_interval": ((1e-3, 3600.0), "a positive number of seconds (at most 3600)"),
    "timeout": ((0.0, 7 * 86400.0), "a number of seconds, 0 to 7 days"),
    "poll_backoff": ((1.0, 10.0), "a growth factor between 1 and 10"),
    "request_ttl_seconds": (
        (60, 21600), "between 60 and 21600 (6 hours): how long SageMaker keeps the request queued"
    ),
    "invocation_timeout_seconds": (
        (1, 3600), "between 1 and 3600 (1 hour): how long the container may work on the request"
    ),
    "s3_output_path_extension": (
        re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]{1,512}"),
        "1-512 letters, digits and !_.*'()/- characters, without an s3:/https: prefix",
    ),
    "filename": (
        re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]{0,31}"),
        "1-32 characters: a letter or digit, then letters, digits, '-', '_' or '.' (one '.' at most)",
    ),
    "notification_wait_seconds": ((0, 20), "0 to 20 seconds (SQS WaitTimeSeconds)"),
    "notification_fallback_seconds": ((0.0, 7 * 86400.0), "a number of seconds, 0 to 7 days"),
    "expected_bucket_owner": (re.compile(r"[0-9]{12}"), "a 12-digit AWS account id"),
}


class AsyncInferenceConfig(BaseModel):
    """How to submit and wait for ``InvokeEndpointAsync`` jobs.

    ``input_s3_uri`` is the ``s3://bucket/prefix/`` inputs are uploaded to (each as
    ``<uuid>.json``); it may be omitted with ``inline_body=True``, which sends bodies
    of at most 128,000 bytes in the request itself. ``timeout`` bounds every wait
    (``result()``, ``wait_all``); the other fields are the API's request options.
    ``filename`` names the output object, so give each job its own (per call:
    ``config=cfg.model_copy(update={"filename": ...})``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_s3_uri: str | None = None
    poll_interval: float = 1.0
    poll_backoff: float = 2.0
    max_poll_interval: float = 15.0
    timeout: float = 900.0
    request_ttl_seconds: int | None = None
    invocation_timeout_seconds: int | None = None
    inline_body: bool = False
    s3_output_path_extension: str | None = None
    filename: str | None = None
    expected_bucket_owner: str | None = None
    s3_endpoint_url: str | None = None
    notification_queue_url: str | None = None
    notification_wait_seconds: int = 20
    notification_fallback_seconds: float = 300.0
    delete_unknown_notifications: bool = False

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = validation_problems(exc, unwrap=True)
            raise ConfigurationError("invalid AsyncInferenceConfig: " + "; ".join(problems)) from None

    @classmethod
    def coerce(cls, value: AsyncInferenceConfig | Mapping[str, Any] | None) -> AsyncInferenceConfig | None:
        """A config from a config, a mapping (YAML) or ``None``."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        raise ConfigurationError(
            f"async_inference must be an AsyncInferenceConfig or a mapping, not {type(value).__name__}"
        )

    @field_validator("input_s3_uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        parsed = parse_s3_uri(value) if value is not None else None
        if value is not None and (parsed is None or not _HEADER_SAFE.fullmatch(parsed[1])):
            raise ConfigurationError(f"input_s3_uri={value!r} is not an S3 prefix: write it as s3://bucket/prefix/")
        return value if value is None or value.endswith("/") else value + "/"

    @field_validator("s3_endpoint_url", "notification_queue_url")
    @classmethod
    def _check_endpoint_url(cls, value: str | None, info: Any) -> str | None:
        if value is not None:
            check_http_url(value, info.field_name)
        return value

    @field_validator(*_RULES)
    @classmethod
    def _check_rule(cls, value: Any, info: Any) -> Any:
        rule, hint = _RULES[info.field_name]
        ok = value is None or (rule.fullmatch(value) if isinstance(rule, re.Pattern) else rule[0] <= value <= rule[1])
        if not ok:
            raise ConfigurationError(f"{info.field_name}={value!r} is not allowed: {hint}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AsyncInferenceConfig:
        if self.input_s3_uri is None and not self.inline_body:
            raise ConfigurationError(
                "async inference needs somewhere to put the input: set input_s3_uri="
                "'s3://bucket/prefix/' (or inline_body=True for bodies of at most 128,000 bytes)"
            )
        if self.max_poll_interval < self.poll_interval:
            raise ConfigurationError(
                f"max_poll_interval ({self.max_poll_interval}) must not be below "
                f"poll_interval ({self.poll_interval})"
            )
        return self

