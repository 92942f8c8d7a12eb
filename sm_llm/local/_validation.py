"""Request validation with the service's constraints and its ``ValidationError`` wording.

botocore checks only required members, types and minimum lengths, so limits and
patterns are enforced here, as SageMaker does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ASYNC_BODY_LIMIT",
    "BODY_LIMIT",
    "Constraint",
    "validate_request",
    "validation_message",
]

BODY_LIMIT = 6_291_456
ASYNC_BODY_LIMIT = 128_000

_NAME = (r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", "^[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_PRINT = (r"\S[\x20-\x7e]*", r"\A\S[\p{Print}]*\z")
_ASCII = (r"[\x00-\x7f]*", r"\p{ASCII}*")
_COMPONENT = (r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?", r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_SESSION = (r"NEW_SESSION|[a-zA-Z0-9](-*[a-zA-Z0-9])*", r"^(NEW_SESSION)$|^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_SESSION_HEADER = (r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
_S3_URI = (r"(https|s3)://([^/]+)/?(.*)", r"^(https|s3)://([^/]+)/?(.*)$")
_EXTENSION = (r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+", r"^(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+$")
_FILENAME = (r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*", r"^(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9-_\.]*$")


@dataclass(frozen=True)
class Constraint:
    """One header member: its wire header, model name and constraints."""

    header: str
    member: str
    max_len: int | None = None
    min_len: int = 0
    pattern: tuple[str, str] | None = None
    sensitive: bool = False
    int_range: tuple[int, int] | None = None


def _common(accept_header: str, content_type_header: str) -> list[Constraint]:
    return [
        Constraint(content_type_header, "contentType", 1024, pattern=_ASCII),
        Constraint(accept_header, "accept", 1024, pattern=_ASCII),
        Constraint("x-amzn-sagemaker-custom-attributes", "customAttributes", 1024, pattern=_ASCII, sensitive=True),
        Constraint("x-amzn-sagemaker-inference-id", "inferenceId", 64, 1, _PRINT),
    ]


_REALTIME = [
    Constraint("x-amzn-sagemaker-target-variant", "targetVariant", 63, pattern=_NAME),
    Constraint("x-amzn-sagemaker-target-container-hostname", "targetContainerHostname", 63, pattern=_NAME),
    Constraint("x-amzn-sagemaker-inference-component", "inferenceComponentName", 63, pattern=_COMPONENT),
    Constraint("x-amzn-sagemaker-prefix-aware-id", "prefixAwareId", 64, 1, _PRINT),
]

CONSTRAINTS: dict[str, list[Constraint]] = {
    "InvokeEndpoint": [
        *_common("accept", "content-type"),
        *_REALTIME,
        Constraint("x-amzn-sagemaker-target-model", "targetModel", 1024, 1, _PRINT),
        Constraint("x-amzn-sagemaker-enable-explanations", "enableExplanations", 64, 1),
        Constraint("x-amzn-sagemaker-session-id", "sessionId", 256, pattern=_SESSION),
    ],
    "InvokeEndpointWithResponseStream": [
        *_common("x-amzn-sagemaker-accept", "content-type"),
        *_REALTIME,
        Constraint("x-amzn-sagemaker-session-id", "sessionId", 256, pattern=_SESSION_HEADER),
    ],
    "InvokeEndpointAsync": [
        *_common("x-amzn-sagemaker-accept", "x-amzn-sagemaker-content-type"),
        Constraint("x-amzn-sagemaker-inputlocation", "inputLocation", 1024, 1, _S3_URI),
        Constraint("x-amzn-sagemaker-s3outputpathextension", "s3OutputPathExtension", 512, 1, _EXTENSION),
        Constraint("x-amzn-sagemaker-filename", "filename", 32, 1, _FILENAME),
        Constraint("x-amzn-sagemaker-requestttlseconds", "requestTTLSeconds", int_range=(60, 21600)),
        Constraint("x-amzn-sagemaker-invocationtimeoutseconds", "invocationTimeoutSeconds", int_range=(1, 3600)),
    ],
}


def _value(c: Constraint, value: str) -> str:
    return "Value at" if c.sensitive else f"Value '{value}' at"


def _check(c: Constraint, value: str) -> str | None:
    prefix = f"{_value(c, value)} '{c.member}' failed to satisfy constraint: Member must"
    if c.int_range is not None:
        low, high = c.int_range
        try:
            number = int(value)
        except ValueError:
            return f"{prefix} be an integer"
        if number < low:
            return f"{prefix} have value greater than or equal to {low}"
        if number > high:
            return f"{prefix} have value less than or equal to {high}"
        return None
    if c.max_len is not None and len(value) > c.max_len:
        return f"{prefix} have length less than or equal to {c.max_len}"
    if len(value) < c.min_len:
        return f"{prefix} have length greater than or equal to {c.min_len}"
    if c.pattern is not None and not re.fullmatch(c.pattern[0], value):
        return f"{prefix} satisfy regular expression pattern: {c.pattern[1]}"
    return None


def validation_message(problems: list[str]) -> str:
    """The service's ``N validation error(s) detected: ...`` sentence."""
    noun = "error" if len(problems) == 1 else "errors"
    return f"{len(problems)} validation {noun} detected: " + "; ".join(problems)


def validate_request(
    operation: str, endpoint_name: str, headers: Mapping[str, str], body_length: int
) -> str | None:
    """Return the ValidationError message for a request, or ``None`` when it is valid.

    ``headers`` has lower-case keys.
    """
    problems: list[str] = []
    if len(endpoint_name) > 63:
        problems.append(
            f"Value '{endpoint_name}' at 'endpointName' failed to satisfy constraint: "
            "Member must have length less than or equal to 63"
        )
    elif not re.fullmatch(_NAME[0], endpoint_name):
        problems.append(
            f"Value '{endpoint_name}' at 'endpointName' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {_NAME[1]}"
        )
    limit = ASYNC_BODY_LIMIT if operation == "InvokeEndpointAsync" else BODY_LIMIT
    if body_length > limit:
        problems.append(
            "Value at 'body' failed to satisfy constraint: "
            f"Member must have length less than or equal to {limit}"
        )
    for constraint in CONSTRAINTS[operation]:
        value = headers.get(constraint.header)
        if value is not None:
            problem = _check(constraint, value)
            if problem is not None:
                problems.append(problem)
    return validation_message(problems) if problems else None
