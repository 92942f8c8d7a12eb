"""SageMaker Runtime over httpx, signed with botocore's SigV4 signer (``transport="httpx"``).

``InvokeEndpoint``, ``InvokeEndpointWithResponseStream`` and ``InvokeEndpointAsync`` are
sent as boto3 sends them — the URL its client resolves (``endpoint_url``,
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``, FIPS and dual-stack configuration), the headers the
service model names, a SigV4 signature from botocore's ``SigV4Auth`` over frozen
credentials of botocore's own chain (profiles, SSO, roles; refreshable credentials renew
themselves) — on the pooled httpx clients of :class:`HttpTransport`. Error replies are
parsed by botocore's ``rest-json`` parser and its modeled error shapes, so they become the
same typed errors, with the same fields, as on the botocore transport; the event stream
is decoded by :class:`~sm_llm.transports.eventstream.EventStreamDecoder`. S3 and SQS stay
on boto3 (a :class:`BotocoreTransport` held inside).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from sm_llm import errors as e
from sm_llm.transports.aws import ASYNC, INVOKE, STREAM, BotocoreTransport, response_metadata
from sm_llm.transports.base import InvokeResult, QueueMessage, S3Object, StreamResult
from sm_llm.transports.bearer import credentials_for
from sm_llm.transports.clients import ClientSettings, no_credentials_error, resolve_settings
from sm_llm.transports.eventstream import EventStreamDecoder, stream_error
from sm_llm.transports.http import ERROR_BODY_LIMIT, URL_CACHE, HttpTransport
from sm_llm.transports.mapping import client_error, mapped

if TYPE_CHECKING:
    import httpx

__all__ = ["SigV4HttpTransport"]

_C = TypeVar("_C", "httpx.Client", "httpx.AsyncClient")

SIGNING_NAME = "sagemaker"
"""The service model's ``signingName``."""
_PATHS = {INVOKE: "invocations", STREAM: "invocations-response-stream", ASYNC: "async-invocations"}
ERROR_REPLY_LIMIT = 8 * 1024 * 1024
"""Bytes of a service error reply read. botocore reads one whole; it must be whole to parse
(a ``ModelError`` quotes the container's body, which may be megabytes, and its modeled
fields follow): bounded above SageMaker's 6 MB payload limit."""


@dataclass(frozen=True)
class _Operation:
    """What the service model says about one operation's request and reply."""

    name: str
    path: str
    request_headers: tuple[tuple[str, str], ...]  # (parameter, header name)
    reply_headers: tuple[tuple[str, str], ...]  # (output member, header name)
    model: Any  # botocore OperationModel


@dataclass(frozen=True)
class _Setup:
    """Resolved once per transport: where to call, as which region, with what."""

    endpoint_url: str
    region: str
    credentials: Any
    operations: dict[str, _Operation]
    service_model: Any


class _Signable:
    """The parts of a botocore ``AWSRequest`` that ``SigV4Auth.add_auth`` reads and writes
    (it adds ``X-Amz-Date``, ``X-Amz-Security-Token`` and ``Authorization`` to ``headers``),
    without ``AWSRequest``'s email-message header map: the same signature, for less CPU.
    ``headers`` holds the service model's header names, none of which the signer writes
    in another case."""

    __slots__ = ("body", "context", "data", "headers", "method", "params", "stream_output", "url")

    def __init__(self, url: str, headers: dict[str, str], body: bytes) -> None:
        self.method = "POST"
        self.url = url
        self.headers = headers
        self.body = self.data = body
        self.params: dict[str, str] = {}
        self.context: dict[str, Any] = {}
        self.stream_output = False


def _operation(service_model: Any, name: str) -> _Operation:
    model = service_model.operation_model(name)

    def headers(shape: Any) -> tuple[tuple[str, str], ...]:
        return tuple(
            (member, str(s.serialization.get("name", member)))
            for member, s in shape.members.items() if s.serialization.get("location") == "header"
        )

    return _Operation(name, _PATHS[name], headers(model.input_shape), headers(model.output_shape), model)


class SigV4HttpTransport(HttpTransport):
    """SageMaker Runtime on httpx with SigV4 (see the module docstring); S3 and SQS through
    boto3. ``settings`` as for :class:`BotocoreTransport`."""

    def __init__(self, settings: ClientSettings) -> None:
        super().__init__(settings)
        self._aws = BotocoreTransport(settings)
        self._setup_lock = threading.Lock()
        self._setup: _Setup | None = None
        self._targets: dict[tuple[str, str], tuple[str, str]] = {}  # see _target
        self._sigv4: Any = None  # botocore SigV4Auth, see _signer

    def _prepared(self, client: _C) -> _C:
        # boto3 sends no Accept unless asked, and asks for no compression
        del client.headers["Accept"]
        client.headers["Accept-Encoding"] = "identity"
        return client

    # -- where, and as whom ---------------------------------------------------------------

    def setup(self) -> _Setup:
        """The endpoint URL, signing region, credentials and service model, resolved once
        as boto3 resolves them (blocking: reads ~/.aws, may call STS)."""
        if self._setup is None:
            with self._setup_lock:
                if self._setup is None:
                    client = self._aws.client()  # boto3's own endpoint resolution
                    settings = resolve_settings(self.settings)
                    service_model = client.meta.service_model
                    self._setup = _Setup(
                        endpoint_url=str(client.meta.endpoint_url).rstrip("/"),
                        region=str(client.meta.region_name),
                        credentials=credentials_for(settings, missing=no_credentials_error),  # as boto3's
                        operations={name: _operation(service_model, name) for name in _PATHS},
                        service_model=service_model,
                    )
        return self._setup

    def request(self, operation: str, params: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
        """(URL, signed headers, body) of ``operation`` with the boto3 keyword ``params``."""
        setup = self.setup()
        op = setup.operations[operation]
        endpoint = params.get("EndpointName")
        if not endpoint:
            raise e.ConfigurationError(f"{operation}: EndpointName is required")
        headers = {
            header: str(params[member]) for member, header in op.request_headers if params.get(member) is not None
        }
        body = params.get("Body", b"")
        if isinstance(body, str):
            body = body.encode("utf-8")
        body = bytes(body)
        with mapped(operation, str(endpoint)):
            try:
                frozen = setup.credentials.get_frozen_credentials()
            except Exception as exc:  # a failed refresh (expired SSO session, failing process...)
                raise e.ConfigurationError(
                    f"cannot refresh the AWS credentials: {type(exc).__name__}: {e.snippet(str(exc))}",
                    field="credentials_profile_name",
                ) from exc
            signer = self._signer(frozen, setup.region)
            url, host = self._target(setup, str(endpoint), op.path, signer)
            headers["host"] = host  # spares the signer parsing the URL twice per call
            signable = _Signable(url, headers, body)
            signer.add_auth(signable)
            del headers["host"]  # httpx sends it (the same value) from the URL
        return url, headers, body

    def _target(self, setup: _Setup, endpoint: str, path: str, signer: Any) -> tuple[str, str]:
        """The request URL and its signed ``host`` value, as botocore's signer derives it."""
        key = (endpoint, path)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= URL_CACHE:
                self._targets.clear()
            url = f"{setup.endpoint_url}/endpoints/{quote(endpoint, safe='')}/{path}"
            host = str(signer.headers_to_sign(_Signable(url, {}, b""))["host"])
            target = self._targets[key] = (url, host)
        return target

    def _signer(self, frozen: Any, region: str) -> Any:
        """botocore's ``SigV4Auth`` for these frozen credentials (made again when they
        change: a refreshable chain hands out new ones when botocore refreshes them)."""
        signer = self._sigv4
        if signer is None or signer.credentials != frozen:
            from botocore.auth import SigV4Auth

            signer = self._sigv4 = SigV4Auth(frozen, SIGNING_NAME, region)
        return signer

    @staticmethod
    def _where(operation: str, params: dict[str, Any]) -> str:
        return f"{operation} on endpoint {params.get('EndpointName')!r}"

    def _error(self, operation: str, params: dict[str, Any], response: httpx.Response, body: bytes) -> e.SageMakerError:
        """An error reply parsed as botocore parses it (its modeled error shape included),
        then typed as on the botocore transport."""
        from botocore.exceptions import ClientError
        from botocore.parsers import create_parser

        setup = self.setup()
        raw = {"status_code": response.status_code, "headers": response.headers, "body": body}
        parser = create_parser("rest-json")
        parsed: dict[str, Any] = parser.parse(raw, setup.operations[operation].model.output_shape)
        code = parsed.get("Error", {}).get("Code")
        shape = setup.service_model.shape_for_error_code(code) if code else None
        if shape is not None:
            parsed.update(parser.parse(raw, shape))
        failure = ClientError(parsed, operation)  # what boto3 raises, chained as the cause
        error = client_error(failure, self._where(operation, params), "")
        error.__cause__ = failure
        return error

    @staticmethod
    def _reply(op: _Operation, response: httpx.Response) -> dict[str, Any]:
        headers = response.headers
        reply: dict[str, Any] = {
            member: headers[name] for member, name in op.reply_headers if name in headers
        }
        reply["ResponseMetadata"] = {
            "RequestId": headers.get("x-amzn-requestid", ""), "HTTPStatusCode": response.status_code,
        }
        return reply

    # -- sync -----------------------------------------------------------------------------

    def _open(self, operation: str, params: dict[str, Any], timeout: float | None) -> httpx.Response:
        url, headers, body = self.request(operation, params)
        where = self._where(operation, params)
        response = self.send(url, headers=headers, content=body, timeout=timeout, stream=True, where=where)
        if response.status_code >= 300:
            error = self._error(operation, params, response, self.read(response, where=where, limit=ERROR_REPLY_LIMIT))
            raise error from error.__cause__
        return response

    def invoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """``InvokeEndpoint``: the whole body, read within ``timeout`` if given."""
        started = time.monotonic()
        response = self._open(INVOKE, params, timeout)
        deadline = None if timeout is None else started + timeout
        body = self.read(response, where=self._where(INVOKE, params), deadline=deadline)
        reply = self._reply(self.setup().operations[INVOKE], response)
        return InvokeResult(body=body, metadata=response_metadata(reply), status=response.status_code)

    def invoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """``InvokeEndpointWithResponseStream``: PayloadPart bytes as the frames arrive."""
        response = self._open(STREAM, params, timeout)
        reply = self._reply(self.setup().operations[STREAM], response)
        parts = _payloads(self.parts(response, where=self._where(STREAM, params)), params.get("EndpointName"))
        return StreamResult(parts, response_metadata(reply), response.close, response.status_code)

    def invoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """``InvokeEndpointAsync``: the reply as boto3 returns it."""
        response = self._open(ASYNC, params, timeout)
        body = self.read(response, where=self._where(ASYNC, params), limit=ERROR_BODY_LIMIT)
        return self._async_reply(response, body)

    def _async_reply(self, response: httpx.Response, body: bytes) -> dict[str, Any]:
        from botocore.parsers import create_parser

        raw = {"status_code": response.status_code, "headers": response.headers, "body": body}
        with mapped(ASYNC):
            parsed: dict[str, Any] = create_parser("rest-json").parse(
                raw, self.setup().operations[ASYNC].model.output_shape
            )
        return parsed

    # -- async ----------------------------------------------------------------------------

    async def _aopen(self, operation: str, params: dict[str, Any], timeout: float | None) -> httpx.Response:
        if self._setup is None:  # the first call reads the AWS configuration
            await asyncio.to_thread(self.setup)
        url, headers, body = self.request(operation, params)
        where = self._where(operation, params)
        response = await self.asend(url, headers=headers, content=body, timeout=timeout, stream=True, where=where)
        if response.status_code >= 300:
            error_body = await self.aread(response, where=where, limit=ERROR_REPLY_LIMIT)
            error = self._error(operation, params, response, error_body)
            raise error from error.__cause__
        return response

    async def ainvoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """Async :meth:`invoke` (the engine cancels the attempt at its deadline)."""
        response = await self._aopen(INVOKE, params, timeout)
        body = await self.aread(response, where=self._where(INVOKE, params))
        reply = self._reply(self.setup().operations[INVOKE], response)
        return InvokeResult(body=body, metadata=response_metadata(reply), status=response.status_code)

    async def ainvoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """Async :meth:`invoke_stream` (``parts`` is an async iterator; ``aclose()`` it)."""
        response = await self._aopen(STREAM, params, timeout)
        reply = self._reply(self.setup().operations[STREAM], response)
        parts = _apayloads(self.aparts(response, where=self._where(STREAM, params)), params.get("EndpointName"))
        return StreamResult(parts, response_metadata(reply), response.aclose, response.status_code)

    async def ainvoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Async :meth:`invoke_async`."""
        response = await self._aopen(ASYNC, params, timeout)
        body = await self.aread(response, where=self._where(ASYNC, params), limit=ERROR_BODY_LIMIT)
        return self._async_reply(response, body)

    # -- S3 and SQS: boto3 ----------------------------------------------------------------

    def s3_client(self, endpoint_url: str | None = None) -> Any:
        """See :meth:`BotocoreTransport.s3_client`."""
        return self._aws.s3_client(endpoint_url)

    def s3_upload(
        self, uri: str, body: bytes, *, content_type: str | None = None,
        owner: str | None = None, endpoint_url: str | None = None,
    ) -> None:
        """See :meth:`BotocoreTransport.s3_upload`."""
        self._aws.s3_upload(uri, body, content_type=content_type, owner=owner, endpoint_url=endpoint_url)

    def s3_read(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None,
        limit: int | None = None,
    ) -> S3Object | None:
        """See :meth:`BotocoreTransport.s3_read`."""
        return self._aws.s3_read(uri, owner=owner, endpoint_url=endpoint_url, limit=limit)

    def s3_exists(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> bool:
        """See :meth:`BotocoreTransport.s3_exists`."""
        return self._aws.s3_exists(uri, owner=owner, endpoint_url=endpoint_url)

    def s3_chunks(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None
    ) -> Iterator[bytes] | None:
        """See :meth:`BotocoreTransport.s3_chunks`."""
        return self._aws.s3_chunks(uri, owner=owner, endpoint_url=endpoint_url)

    def s3_delete(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> None:
        """See :meth:`BotocoreTransport.s3_delete`."""
        self._aws.s3_delete(uri, owner=owner, endpoint_url=endpoint_url)

    def sqs_receive(
        self, queue_url: str, *, wait_seconds: int = 20, max_messages: int = 10
    ) -> list[QueueMessage]:
        """See :meth:`BotocoreTransport.sqs_receive`."""
        return self._aws.sqs_receive(queue_url, wait_seconds=wait_seconds, max_messages=max_messages)

    def sqs_delete(self, queue_url: str, receipt_handles: list[str]) -> None:
        """See :meth:`BotocoreTransport.sqs_delete`."""
        self._aws.sqs_delete(queue_url, receipt_handles)

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the httpx clients and the boto3 ones (all recreated on the next call)."""
        super().close()
        self._aws.close()

    async def aclose(self) -> None:
        """Close this event loop's httpx client, then everything :meth:`close` releases."""
        await super().aclose()
        self._aws.close()


def _payloads(chunks: Iterator[bytes], endpoint: Any) -> Iterator[bytes]:
    decoder = EventStreamDecoder()
    for chunk in chunks:
        for event in decoder.feed(chunk):
            if event.is_error:
                raise stream_error(event, STREAM, endpoint)
            if event.kind == "PayloadPart":
                yield event.payload
    decoder.close()


async def _apayloads(chunks: AsyncIterator[bytes], endpoint: Any) -> AsyncIterator[bytes]:
    decoder = EventStreamDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            if event.is_error:
                raise stream_error(event, STREAM, endpoint)
            if event.kind == "PayloadPart":
                yield event.payload
    decoder.close()
