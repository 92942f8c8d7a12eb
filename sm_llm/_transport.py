"""The only module that talks to botocore: clients, calls and error mapping.

Everything above this module deals in bytes and :mod:`sm_llm.errors`; nothing
botocore raises escapes from here untranslated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sm_llm import errors as e

__all__ = [
    "ClientSettings",
    "InvokeResult",
    "StreamResult",
    "check_http_url",
    "create_client",
    "http_status",
    "invoke",
    "invoke_stream",
    "is_loopback_url",
    "map_error",
    "resolve_settings",
    "response_metadata",
]


_URL_CHARS = re.compile(r"[\x21-\x7e]+")  # urlsplit silently drops tabs and newlines


def check_http_url(value: str, what: str) -> None:
    """``value`` is an ``http://`` or ``https://`` URL with a host; anything else (``ftp:``,
    ``file:``, a bare host, a bad port) is a :class:`ConfigurationError` now rather than a
    retryable connection error at the first call."""
    try:
        parts = urlsplit(value) if _URL_CHARS.fullmatch(value) else None
        ok = (
            parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)  # .port raises ValueError for "x" or 99999
        )
    except ValueError:  # also a malformed [IPv6] host
        ok = False
    if not ok:
        raise e.ConfigurationError(
            f"{what}={value!r} is not allowed: give an http:// or https:// URL with a host"
        )


@dataclass(frozen=True)
class ClientSettings:
    """What a SageMaker Runtime client is made from (secrets as plain str, never logged)."""

    region_name: str | None = None
    profile_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    endpoint_url: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 70.0
    max_retries: int = 2
    max_connections: int = 100
    config: Any = None

    def __repr__(self) -> str:  # never show the keys
        return (
            f"ClientSettings(region_name={self.region_name!r}, endpoint_url={self.endpoint_url!r}, "
            f"profile_name={self.profile_name!r})"
        )

    def botocore_config(self) -> Any:
        """A botocore ``Config``: timeouts, standard retries, a pool sized for concurrency."""
        from botocore.config import Config

        ours = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": 1},  # sm_llm retries itself
            max_pool_connections=self.max_connections,
            user_agent_extra="sm-llm",
        )
        return ours.merge(self.config) if self.config is not None else ours




def no_region_error() -> e.ConfigurationError:
    """The one message for a missing region (the CLI names ``--region`` instead)."""
    return e.ConfigurationError(
        "no AWS region is configured", field="region_name",
        advice="pass region_name='us-east-1' (or set AWS_REGION / AWS_DEFAULT_REGION, "
        "or a region in your AWS profile)",
    )


LOCAL_REGION = "us-east-1"
LOCAL_KEY = "local"  # the local endpoint accepts any credentials; botocore needs some to sign


def is_loopback_url(url: str | None) -> bool:
    """Whether ``url``'s host is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if not url:
        return False
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _configured_endpoint_url(settings: ClientSettings, service: str) -> str | None:
    """The URL the client will call: ``endpoint_url``, else ``AWS_ENDPOINT_URL_<SERVICE>``, else
    ``AWS_ENDPOINT_URL`` (botocore's own variables, unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``)."""
    if settings.endpoint_url:
        return settings.endpoint_url
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    variable = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL") or None


def resolve_settings(settings: ClientSettings, service: str = "sagemaker-runtime") -> ClientSettings:
    """``settings`` with the region chosen, for the boto3 and the aiobotocore client alike.

    Region, first found: ``region_name``; ``AWS_REGION`` (which botocore ignores, but the
    AWS CLI, the other AWS SDKs and Lambda set or read); ``AWS_DEFAULT_REGION``; the
    profile's ``region``; and, only for a loopback endpoint, ``us-east-1``. For a loopback
    endpoint with no credentials anywhere (instance metadata is not asked), dummy ones:
    the local endpoint accepts any. Blocking (reads ~/.aws); raises ConfigurationError.
    """
    import botocore.session
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    local = is_loopback_url(_configured_endpoint_url(settings, service))
    region = settings.region_name or os.environ.get("AWS_REGION")
    # botocore's env provider is first in its chain, and skipped when a profile is named
    env_keys = not settings.profile_name and bool(
        os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")
    )
    check_credentials = local and not settings.aws_access_key_id and not env_keys
    if region and not check_credentials:  # nothing to look up: no session (~20 ms) needed
        return dataclasses.replace(settings, region_name=region)
    try:
        session = botocore.session.Session(profile=settings.profile_name)
        region = region or session.get_config_variable("region") or (LOCAL_REGION if local else None)
        changes: dict[str, Any] = {"region_name": region}
        if check_credentials:
            session.get_component("credential_provider").remove("iam-role")
            if session.get_credentials() is None:
                changes.update(aws_access_key_id=LOCAL_KEY, aws_secret_access_key=LOCAL_KEY,
                               aws_session_token=None)
    except ProfileNotFound as exc:
        raise e.ConfigurationError(
            f"AWS profile {settings.profile_name!r} was not found in your AWS config"
        ) from exc
    except (BotoCoreError, ValueError) as exc:
        raise e.ConfigurationError(f"cannot read the AWS configuration: {exc}") from exc
    return dataclasses.replace(settings, **changes)


def create_client(settings: ClientSettings, service: str = "sagemaker-runtime") -> Any:
    """A boto3 client for ``service``; a missing region or profile is a clear error."""
    import boto3
    from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

    settings = resolve_settings(settings, service)
    try:
        session = boto3.Session(profile_name=settings.profile_name)
        return session.client(
            service,
            region_name=settings.region_name,
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
            config=settings.botocore_config(),
        )
    except NoRegionError as exc:
        raise no_region_error() from exc
    except ProfileNotFound as exc:
        raise e.ConfigurationError(
            f"AWS profile {settings.profile_name!r} was not found in your AWS config"
        ) from exc
    except (BotoCoreError, ValueError) as exc:
        raise e.ConfigurationError(f"cannot create the SageMaker Runtime client: {exc}") from exc


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """A whole reply and the metadata SageMaker returned with it."""

    body: bytes
    metadata: dict[str, Any]
    status: int | None = None
    """The HTTP status of the reply."""


@dataclass(slots=True)
class StreamResult:
    """An open event stream: iterate ``parts`` (sync, or ``async for`` on aiobotocore) for
    PayloadPart bytes; always ``close()``."""

    parts: Any
    metadata: dict[str, Any]
    _stream: Any
    status: int | None = None
    """The HTTP status of the reply."""

    def close(self) -> None:
        """Close the HTTP response (and its connection when unread data remains)."""
        with contextlib.suppress(Exception):  # closing must never mask the real outcome
            self._stream.close()


def response_metadata(response: dict[str, Any]) -> dict[str, Any]:
    """The reply's routing and session headers, by their snake_case names."""
    meta: dict[str, Any] = {}
    for key, name in (
        ("InvokedProductionVariant", "invoked_production_variant"),
        ("CustomAttributes", "custom_attributes"),
        ("NewSessionId", "new_session_id"),
        ("ClosedSessionId", "closed_session_id"),
        ("ContentType", "content_type"),
    ):
        value = response.get(key)
        if value:
            meta[name] = value
    request_id = response.get("ResponseMetadata", {}).get("RequestId")
    if request_id:
        meta["request_id"] = request_id
    return meta


def http_status(response: dict[str, Any]) -> int | None:
    """The reply's HTTP status code."""
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def invoke(client: Any, params: dict[str, Any], timeout: float | None = None) -> InvokeResult:
    """``InvokeEndpoint``: the whole body read, errors mapped.

    ``timeout``: seconds left for the call; the body must arrive within them, however
    slowly it trickles in (botocore's read timeout bounds each socket read, not the body).
    """
    started = time.monotonic()
    try:
        response = client.invoke_endpoint(**params)
        body = _read_body(response["Body"], None if timeout is None else started + timeout)
    except e.RequestTimeoutError as exc:
        raise e.RequestTimeoutError(f"InvokeEndpoint on endpoint {params.get('EndpointName')!r}: {exc}") from exc
    except Exception as exc:
        raise map_error(exc, "InvokeEndpoint", params.get("EndpointName")) from exc
    return InvokeResult(body=body, metadata=response_metadata(response), status=http_status(response))


_READ_CHUNK = 65_536


def _socket(raw: Any) -> Any:
    """The socket under urllib3's response, found the way botocore's
    ``StreamingBody.set_socket_timeout`` finds it (``None`` once the body is read)."""
    fp = getattr(getattr(raw, "_fp", None), "fp", None)
    return getattr(getattr(fp, "raw", None), "_sock", None)


def _read_body(body: Any, deadline: float | None) -> bytes:
    """A ``StreamingBody`` read whole, by the ``deadline`` (``time.monotonic()``) if given.

    Each read takes what has arrived (``read1``) and may wait only the time left: the
    socket's timeout is set to it before every read. No thread is involved.
    """
    raw: Any = getattr(body, "_raw_stream", None)  # urllib3's response, as botocore reads it
    if deadline is None or not hasattr(raw, "read1"):
        return bytes(body.read())
    from urllib3.exceptions import ReadTimeoutError

    chunks: list[bytes] = []
    sock = _socket(raw)
    usual = sock.gettimeout() if sock is not None else None
    try:
        while (left := deadline - time.monotonic()) > 0:
            if sock is not None:
                sock.settimeout(left)
            chunk = raw.read1(_READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except (ReadTimeoutError, TimeoutError):
        pass
    finally:
        if sock is not None:  # the connection may go back to the pool: its usual read timeout
            with contextlib.suppress(OSError):
                sock.settimeout(usual)
    body.close()  # unread data remains: the connection is dropped, not reused
    received = sum(map(len, chunks))
    raise e.RequestTimeoutError(
        f"the reply body did not arrive within the timeout ({received} bytes received)"
    )


def invoke_stream(client: Any, params: dict[str, Any]) -> StreamResult:
    """``InvokeEndpointWithResponseStream``: an open stream of PayloadPart bytes."""
    operation = "InvokeEndpointWithResponseStream"
    endpoint = params.get("EndpointName")
    try:
        response = client.invoke_endpoint_with_response_stream(**params)
    except Exception as exc:
        raise map_error(exc, operation, endpoint) from exc
    stream = response["Body"]

    def parts() -> Iterator[bytes]:
        try:
            for event in stream:
                part = event.get("PayloadPart")
                if part is not None:
                    yield part.get("Bytes", b"")
        except Exception as exc:
            raise map_error(exc, operation, endpoint, in_stream=True) from exc

    return StreamResult(
        parts=parts(), metadata=response_metadata(response), _stream=stream, status=http_status(response)
    )


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
        return _client_error(exc, where, partial_text)
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectTimeoutError)):
        if partial_text:
            return e.StreamError(f"{where}: the stream stalled: {_quote(exc)}", partial_text=partial_text)
        return e.RequestTimeoutError(f"{where} timed out: {_quote(exc)}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ConnectionError)):
        if partial_text:
            return e.StreamError(f"{where}: connection lost: {_quote(exc)}", partial_text=partial_text)
        return e.EndpointUnreachableError(f"{where}: cannot reach the endpoint: {_quote(exc)}")
    if isinstance(exc, bx.NoCredentialsError):
        return e.ConfigurationError(
            "no AWS credentials found", field="credentials_profile_name",
            advice="configure a profile (credentials_profile_name=...), "
            "environment variables, or pass aws_access_key_id/aws_secret_access_key",
        )
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


def _client_error(exc: Any, where: str, partial_text: str) -> e.SageMakerError:
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
        if _NO_CAPACITY.search(message):
            return e.NoCapacityError(text, **common)
        invalid = e.EndpointNotFoundError if _NOT_FOUND.search(message) else e.RequestValidationError
        return invalid(text, **common)
    by_status = _BY_STATUS.get(status) if isinstance(status, int) else None
    return (_BY_CODE.get(code) or by_status or e.SageMakerError)(text, **common)
