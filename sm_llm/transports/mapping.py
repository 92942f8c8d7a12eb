"""Error mapping: anything botocore, urllib3 or aiohttp raised → one ``sm_llm.errors``
exception. :func:`mapped` is the one place calls and stream iteration are wrapped in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sm_llm import errors as e
from sm_llm.transports.clients import no_credentials_error, no_region_error

__all__ = [
    "client_error",
    "log_url_from_arn",
    "map_error",
    "mapped",
    "status_error_class",
    "validation_error_class",
]


@contextmanager
def mapped(operation: str, endpoint: str | None = None, *, in_stream: bool = False) -> Iterator[None]:
    """Raise what the block raises as an ``sm_llm.errors`` exception (see :func:`map_error`),
    the original kept as ``__cause__``."""
    try:
        yield
    except e.SageMakerError:
        raise
    except Exception as exc:
        raise map_error(exc, operation, endpoint, in_stream=in_stream) from exc


_NOT_FOUND = re.compile(r"Endpoint .+ not found", re.IGNORECASE)
_NO_CAPACITY = re.compile(r"has no capacity", re.IGNORECASE)  # a component scaled to zero
_LOG_URL = re.compile(r"See (https://\S+?)(?: in account|\s|$)")
_BY_CODE: dict[str, type[e.SageMakerError]] = {
    "ModelNotReadyException": e.ModelNotReadyError,
    "ThrottlingException": e.ThrottlingError,
    "Throttling": e.ThrottlingError,
    "TooManyRequestsException": e.ThrottlingError,
    "ServiceUnavailable": e.ServiceUnavailableError,
    "InternalFailure": e.InternalFailureError,
    "InternalDependencyException": e.InternalDependencyError,
    "ModelStreamError": e.StreamError,
    "InternalStreamFailure": e.StreamError,
}
_BY_STATUS: dict[int, type[e.SageMakerError]] = {
    429: e.ThrottlingError,
    500: e.InternalFailureError,
    502: e.ServiceUnavailableError,
    503: e.ServiceUnavailableError,
    504: e.ServiceUnavailableError,
    530: e.InternalDependencyError,
}


def log_url_from_arn(arn: str | None) -> str | None:
    """CloudWatch console link for a ``LogStreamArn`` (``arn:aws:logs:REGION:ACCT:log-group:G``)."""
    if not arn:
        return None
    parts = arn.split(":", 6)
    if len(parts) < 7 or parts[2] != "logs":
        return None
    region, group = parts[3], parts[6].removeprefix("log-group:").split(":", 1)[0]
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={group}"
    )


def map_error(
    exc: BaseException,
    operation: str,
    endpoint: str | None,
    *,
    partial_text: str = "",
    in_stream: bool = False,
) -> e.SageMakerError:
    """Translate anything botocore/urllib3 raised into an ``sm_llm.errors`` exception.

    ``in_stream``: the failure happened while reading an event stream that had
    started, so anything but a modeled error is a :class:`StreamError`.
    """
    from botocore import exceptions as bx
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, e.SageMakerError):
        return exc
    where = f"{operation} on endpoint {endpoint!r}" if endpoint else operation
    if in_stream and not isinstance(exc, bx.ClientError):
        return e.StreamError(f"{where}: the stream broke: {type(exc).__name__}: {_quote(exc)}",
                             partial_text=partial_text)
    if isinstance(exc, bx.ClientError):
        return client_error(exc, where, partial_text)
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectTimeoutError)):
        if partial_text:
            return e.StreamError(f"{where}: the stream stalled: {_quote(exc)}", partial_text=partial_text)
        return e.RequestTimeoutError(f"{where} timed out: {_quote(exc)}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ConnectionError)):
        if partial_text:
            return e.StreamError(f"{where}: connection lost: {_quote(exc)}", partial_text=partial_text)
        return e.EndpointUnreachableError(f"{where}: cannot reach the endpoint: {_quote(exc)}")
    if isinstance(exc, bx.NoCredentialsError):
        return no_credentials_error()
    if isinstance(exc, bx.NoRegionError):
        return no_region_error()
    if isinstance(exc, bx.ParamValidationError):
        return e.ConfigurationError(f"{where}: invalid request: {_quote(exc)}")
    if isinstance(exc, bx.BotoCoreError):
        return e.EndpointUnreachableError(f"{where} failed: {_quote(exc)}")
    if isinstance(exc, (OSError, Urllib3Error)) or _is_aiohttp_error(exc):
        return e.EndpointUnreachableError(f"{where}: connection failed: {_quote(exc)}")
    return e.SageMakerError(f"{where} failed: {type(exc).__name__}: {_quote(exc)}")


def _is_aiohttp_error(exc: BaseException) -> bool:
    """aiohttp's connection/payload errors (aiobotocore lets some through unwrapped)."""
    if not type(exc).__module__.startswith("aiohttp"):
        return False
    from aiohttp import ClientError

    return isinstance(exc, ClientError)


def _quote(text: object) -> str:
    """Text from the wire (or an exception quoting it), bounded for an error message."""
    return e.snippet(str(text), e.MAX_QUOTE)


def _service_message(message: str, original: object) -> str:
    """The service's error message, bounded: a container body quoted in it (``OriginalMessage``)
    is cut to 200 characters, the rest to 1,000."""
    if isinstance(original, str) and len(original) > e.SNIPPET and original in message:
        message = message.replace(original, e.snippet(original), 1)
    return _quote(message)


def client_error(exc: Any, where: str, partial_text: str) -> e.SageMakerError:
    """A modelled service error (anything with botocore's ``response`` shape) → its typed error."""
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    error = response.get("Error", {})
    code = str(error.get("Code", ""))
    full = str(error.get("Message", "")) or str(exc)
    message = _service_message(full, response.get("OriginalMessage"))
    meta = response.get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode")
    common: dict[str, Any] = {
        "status_code": status,
        "error_code": code or None,
        "request_id": meta.get("RequestId"),
    }
    text = f"{where}: {message}"
    if code in ("ModelStreamError", "InternalStreamFailure") or partial_text:
        return e.StreamError(f"{where}: stream failed ({code}): {message}",
                             partial_text=partial_text, **common)
    if code == "ModelError" or status == 424:
        arn = response.get("LogStreamArn")
        found = _LOG_URL.search(full)
        return e.ModelError(
            text,
            original_status_code=response.get("OriginalStatusCode"),
            original_message=response.get("OriginalMessage"),
            log_stream_arn=arn,
            log_url=log_url_from_arn(arn) or (found.group(1) if found else None),
            **common,
        )
    if code == "ValidationError" or status == 400:
        return validation_error_class(message)(text, **common)
    by_status = _BY_STATUS.get(status) if isinstance(status, int) else None
    return (_BY_CODE.get(code) or by_status or e.SageMakerError)(text, **common)


def validation_error_class(message: str) -> type[e.SageMakerError]:
    """What a 400 ``ValidationError`` is, by its message: a component with no capacity
    (scaled to zero), an endpoint that does not exist, or an invalid request."""
    if _NO_CAPACITY.search(message):
        return e.NoCapacityError
    return e.EndpointNotFoundError if _NOT_FOUND.search(message) else e.RequestValidationError


def status_error_class(status: int | None, message: str) -> type[e.SageMakerError]:
    """The error a SageMaker Runtime HTTP status stands for, for wires that carry no
    botocore error code (400 split by :func:`validation_error_class`)."""
    if status == 400:
        return validation_error_class(message)
    if status == 424:
        return e.ModelError
    return _BY_STATUS.get(status, e.SageMakerError) if isinstance(status, int) else e.SageMakerError
