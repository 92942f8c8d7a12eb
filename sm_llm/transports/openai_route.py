"""SageMaker's OpenAI-compatible route: chat completions with a bearer token, over httpx.

``POST {runtime}/endpoints/{EndpointName}/openai/v1/chat/completions``, or
``.../endpoints/{EndpointName}/inference-components/{Component}/openai/v1/chat/completions``
for an inference component; the body is an OpenAI Chat Completions request passed to the
container as is, a streamed reply is the container's SSE. ``{runtime}`` is ``endpoint_url``,
else ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` / ``AWS_ENDPOINT_URL`` (as for boto3), else
``https://runtime.sagemaker.{region}.amazonaws.com``.

Authentication: ``Authorization: Bearer <token>``, the token from a
:class:`~sm_llm.transports.bearer.TokenSource` — made from the same credential chain as the
boto3 client, or given. A 401/403 is an :class:`~sm_llm.errors.AuthenticationError`, except
once per call after a token expired (a 401, or a 403 saying "expired"): then the cached
token is dropped, a fresh one made and the request sent again. Errors arrive in OpenAI's
``{"error": {...}}`` envelope; a container's own error (``code: model_error``) is a
:class:`~sm_llm.errors.ModelError` with the container's status.

The route carries no production-variant, target-model, container-host, custom-attribute,
session or explanation routing, and no asynchronous inference: asking for any is a
:class:`~sm_llm.errors.ConfigurationError` before anything is sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import SecretStr

from sm_llm import errors as e
from sm_llm.transports.base import InvokeResult, QueueMessage, S3Object, StreamResult
from sm_llm.transports.bearer import MAX_EXPIRY, TokenSource, credentials_for
from sm_llm.transports.clients import (
    ClientSettings,
    configured_endpoint_url,
    no_region_error,
    resolve_settings,
)
from sm_llm.transports.http import ERROR_BODY_LIMIT, HttpTransport, status_error

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

__all__ = ["REFUSED_PARAMS", "OpenAIRouteTransport", "route_error", "runtime_url"]

CHAT_PATH = "openai/v1/chat/completions"
REFUSED_PARAMS = {
    "TargetModel": "target_model",
    "TargetVariant": "target_variant",
    "TargetContainerHostname": "target_container_hostname",
    "CustomAttributes": "custom_attributes",
    "SessionId": "session_id",
    "EnableExplanations": "enable_explanations",
    "InferenceIdentity": "inference_identity",
}
"""InvokeEndpoint parameters the route cannot carry → the adapter field that sets them."""
_CARRIED = frozenset({"EndpointName", "InferenceComponentName", "Body", "ContentType", "Accept", "InferenceId"})

BearerToken = SecretStr | str | Callable[[], SecretStr | str]


def runtime_url(region: str) -> str:
    """The SageMaker Runtime URL of ``region`` (``.amazonaws.com.cn`` in the China regions)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://runtime.sagemaker.{region}.{suffix}"


def _envelope(body: bytes) -> tuple[str, str | None]:
    """(message, code) of an error body: OpenAI's ``{"error": {...}}``, a bare
    ``{"message": ...}`` (vLLM), or the text itself."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", "replace").strip() or "(empty body)", None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return str(error.get("message") or error), (str(code) if code is not None else None)
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"]), None
    return body.decode("utf-8", "replace"), None


def route_error(status: int, body: bytes, headers: Any, where: str) -> e.SageMakerError:
    """The typed error for an error reply of the route."""
    message, code = _envelope(body)
    request_id = headers.get("x-amzn-requestid")
    if code == "model_error":
        return e.ModelError(
            f"{where}: {e.snippet(message, e.MAX_QUOTE)}", original_status_code=status, original_message=message,
            status_code=status, error_code=code, request_id=request_id,
        )
    return status_error(status, message, where=where, code=code, request_id=request_id)


def _expired(error: e.SageMakerError) -> bool:
    """An auth failure a fresh token may cure: a 401, or a 403 saying the token expired."""
    if not isinstance(error, e.AuthenticationError):
        return False
    return error.status_code == 401 or "expire" in error.message.lower()


def _metadata(response: httpx.Response) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for header, name in (
        ("x-amzn-requestid", "request_id"),
        ("x-amzn-invoked-production-variant", "invoked_production_variant"),
        ("content-type", "content_type"),
    ):
        value = response.headers.get(header)
        if value:
            meta[name] = value
    return meta


class OpenAIRouteTransport(HttpTransport):
    """Chat completions on SageMaker's OpenAI-compatible route (see the module docstring).

    ``bearer_token``: a token (``SecretStr``), or a callable returning one before every
    request; by default tokens are made from the settings' credential chain, each living
    ``token_expiry``. ``tokens``: a ready :class:`TokenSource` instead (tests).
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        bearer_token: BearerToken | None = None,
        token_expiry: timedelta = MAX_EXPIRY,
        tokens: TokenSource | None = None,
    ) -> None:
        super().__init__(settings)
        self._given = bearer_token
        self._expiry = token_expiry
        self._tokens = tokens or (TokenSource(bearer_token=bearer_token) if bearer_token is not None else None)
        # A fixed token cannot be renewed: sending it again would fail the same way.
        self._renewable = tokens is not None or bearer_token is None or callable(bearer_token)
        self._setup_lock = threading.Lock()
        self._base: str | None = None

    # -- where, and with which token -------------------------------------------------------

    def _resolved(self) -> ClientSettings:
        return resolve_settings(self.settings)  # blocking: may read ~/.aws

    def base_url(self) -> str:
        """The runtime URL the route is under (resolved once; blocking)."""
        if self._base is None:
            with self._setup_lock:
                if self._base is None:
                    settings = self._resolved()
                    url = configured_endpoint_url(settings)
                    if not url:
                        if not settings.region_name:
                            raise no_region_error()
                        url = runtime_url(settings.region_name)
                    self._base = url.rstrip("/")
        return self._base

    def token_source(self) -> TokenSource:
        """Where tokens come from (made on first use from the credential chain; blocking)."""
        if self._tokens is None:
            with self._setup_lock:
                if self._tokens is None:
                    settings = self._resolved()
                    if not settings.region_name:
                        raise no_region_error()
                    credentials = credentials_for(settings)  # refreshable ones renew themselves
                    self._tokens = TokenSource(
                        region=settings.region_name, credentials=lambda: credentials, expiry=self._expiry
                    )
        return self._tokens

    def _target(self, params: dict[str, Any]) -> tuple[str, str, bytes]:
        """(URL, where — for messages, body) of a request; what the route cannot carry is refused."""
        refused = [REFUSED_PARAMS.get(k, k) for k, v in params.items() if k not in _CARRIED and v is not None]
        if refused:
            raise e.ConfigurationError(
                f"SageMaker's OpenAI route cannot carry {', '.join(sorted(refused))}: it takes the endpoint "
                "and an inference component only; use api='invocations' for the other routing options"
            )
        endpoint = str(params["EndpointName"])
        component = params.get("InferenceComponentName")
        path = f"/endpoints/{quote(endpoint, safe='')}"
        where = f"OpenAI route on endpoint {endpoint!r}"
        if component:
            path += f"/inference-components/{quote(str(component), safe='')}"
            where += f", inference component {component!r}"
        body = params.get("Body", b"")
        if isinstance(body, str):
            body = body.encode("utf-8")
        return f"{self.base_url()}{path}/{CHAT_PATH}", where, body

    @staticmethod
    def _headers(token: SecretStr, stream: bool) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token.get_secret_value()}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }

    def _retry_auth(self, error: e.SageMakerError, first: bool) -> bool:
        if first and self._renewable and _expired(error):
            assert self._tokens is not None
            self._tokens.invalidate()
            return True
        return False

    # -- sync -----------------------------------------------------------------------------

    def _open(self, params: dict[str, Any], timeout: float | None, stream: bool) -> tuple[httpx.Response, str]:
        url, where, body = self._target(params)
        tokens = self.token_source()
        deadline = None if timeout is None else time.monotonic() + timeout
        for first in (True, False):
            left = None if deadline is None else deadline - time.monotonic()
            response = self.send(
                url, headers=self._headers(tokens.token(), stream), content=body, timeout=left,
                stream=True, where=where,
            )
            if response.status_code < 400:
                return response, where
            error = route_error(
                response.status_code, self.read(response, where=where, limit=ERROR_BODY_LIMIT),
                response.headers, where,
            )
            if not self._retry_auth(error, first):
                raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def invoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """One chat completion, the whole reply read (within ``timeout`` if given)."""
        started = time.monotonic()
        response, where = self._open(params, timeout, stream=False)
        deadline = None if timeout is None else started + timeout
        body = self.read(response, where=where, deadline=deadline)
        return InvokeResult(body=body, metadata=_metadata(response), status=response.status_code)

    def invoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """A streamed chat completion: the container's SSE bytes as they arrive."""
        response, where = self._open(params, timeout, stream=True)
        parts: Iterator[bytes] = self.parts(response, where=where)
        return StreamResult(parts, _metadata(response), response.close, response.status_code)

    # -- async ----------------------------------------------------------------------------

    async def _aopen(self, params: dict[str, Any], timeout: float | None, stream: bool) -> tuple[httpx.Response, str]:
        if self._base is None or self._tokens is None:  # the first call reads the AWS configuration
            await asyncio.to_thread(lambda: (self.base_url(), self.token_source()))
        url, where, body = self._target(params)
        tokens = self.token_source()
        for first in (True, False):
            token = await asyncio.to_thread(tokens.token)  # may load or refresh credentials
            response = await self.asend(
                url, headers=self._headers(token, stream), content=body, timeout=timeout, stream=True, where=where,
            )
            if response.status_code < 400:
                return response, where
            error = route_error(
                response.status_code, await self.aread(response, where=where, limit=ERROR_BODY_LIMIT),
                response.headers, where,
            )
            if not self._retry_auth(error, first):
                raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def ainvoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """Async :meth:`invoke` (the engine cancels the attempt at its deadline)."""
        response, where = await self._aopen(params, timeout, stream=False)
        body = await self.aread(response, where=where)
        return InvokeResult(body=body, metadata=_metadata(response), status=response.status_code)

    async def ainvoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """Async :meth:`invoke_stream` (``parts`` is an async iterator; ``aclose()`` it)."""
        response, where = await self._aopen(params, timeout, stream=True)
        return StreamResult(self.aparts(response, where=where), _metadata(response), response.aclose,
                            response.status_code)

    # -- what the route does not serve ------------------------------------------------------

    @staticmethod
    def _unsupported(what: str) -> e.ConfigurationError:
        return e.ConfigurationError(
            f"SageMaker's OpenAI route has no {what}: use api='invocations' for it"
        )

    def invoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Refused: the route has no asynchronous inference."""
        raise self._unsupported("asynchronous inference (InvokeEndpointAsync)")

    async def ainvoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Refused: the route has no asynchronous inference."""
        raise self._unsupported("asynchronous inference (InvokeEndpointAsync)")

    def s3_upload(
        self, uri: str, body: bytes, *, content_type: str | None = None,
        owner: str | None = None, endpoint_url: str | None = None,
    ) -> None:
        """Refused: S3 is for asynchronous inference, which the route lacks."""
        raise self._unsupported("S3 access (asynchronous inference)")

    def s3_read(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None,
        limit: int | None = None,
    ) -> S3Object | None:
        """Refused (see :meth:`s3_upload`)."""
        raise self._unsupported("S3 access (asynchronous inference)")

    def s3_exists(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> bool:
        """Refused (see :meth:`s3_upload`)."""
        raise self._unsupported("S3 access (asynchronous inference)")

    def s3_chunks(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None
    ) -> Iterator[bytes] | None:
        """Refused (see :meth:`s3_upload`)."""
        raise self._unsupported("S3 access (asynchronous inference)")

    def s3_delete(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> None:
        """Refused (see :meth:`s3_upload`)."""
        raise self._unsupported("S3 access (asynchronous inference)")

    def sqs_receive(
        self, queue_url: str, *, wait_seconds: int = 20, max_messages: int = 10
    ) -> list[QueueMessage]:
        """Refused: job notifications belong to asynchronous inference (see :meth:`s3_upload`)."""
        raise self._unsupported("SQS notifications (asynchronous inference)")

    def sqs_delete(self, queue_url: str, receipt_handles: list[str]) -> None:
        """Refused (see :meth:`sqs_receive`)."""
        raise self._unsupported("SQS notifications (asynchronous inference)")
