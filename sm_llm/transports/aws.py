"""The botocore transport: boto3 for sync calls, aiobotocore (the ``aio`` extra) for
async ones — or worker threads when aiobotocore is missing or a sync client was given."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from sm_llm import errors as e
from sm_llm.errors import ConfigurationError
from sm_llm.transports import s3, sqs
from sm_llm.transports.base import InvokeResult, QueueMessage, S3Object, StreamResult
from sm_llm.transports.clients import (
    AsyncClients,
    ClientSettings,
    aio_available,
    create_client,
    creating,
)
from sm_llm.transports.mapping import mapped

__all__ = ["AIO_AVAILABLE", "BotocoreTransport", "http_status", "response_metadata"]

T = TypeVar("T")

AIO_AVAILABLE = aio_available()  # a find_spec probe: aiobotocore is imported on first use
INVOKE = "InvokeEndpoint"
STREAM = "InvokeEndpointWithResponseStream"
ASYNC = "InvokeEndpointAsync"
_INLINE_BOTOCORE = (1, 43, 29)
_SLACK = 0.95  # an attempt bound this close to the client's own timeouts needs no other client


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


def _loopback_origin(url: str | None) -> str | None:
    """``scheme://host:port`` of a loopback URL, else ``None``."""
    from urllib.parse import urlsplit

    from sm_llm.transports.clients import is_loopback_url

    if not is_loopback_url(url):
        return None
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}"


def _is_async_client(client: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "invoke_endpoint", None))


def _check_inline_support() -> None:
    import botocore

    version = tuple(int(p) for p in re.findall(r"\d+", botocore.__version__)[:3])
    if version < _INLINE_BOTOCORE:
        raise ConfigurationError(
            f"inline async bodies need botocore>=1.43.29 (installed: {botocore.__version__}); "
            "upgrade boto3/botocore or set input_s3_uri to upload inputs to S3"
        )


class BotocoreTransport:
    """SageMaker Runtime and S3 through boto3 / aiobotocore, clients created on first use.

    ``client``: a ready boto3 ``sagemaker-runtime`` client (async calls then run on worker
    threads) or an aiobotocore one (then only async calls are possible). A sync attempt
    bounded by less time than the client's timeouts runs on a short-lived client with
    those timeouts lowered — no thread is left behind at the deadline.
    """

    def __init__(self, settings: ClientSettings, *, client: Any = None) -> None:
        self.settings = settings
        self._given = client
        self._given_async = client is not None and _is_async_client(client)
        self._lock = threading.Lock()
        self._session: Any = None
        self._client: Any = None
        self._s3: dict[str | None, Any] = {}
        self._sqs: dict[str | None, Any] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._aclients = AsyncClients()

    def __repr__(self) -> str:
        return f"BotocoreTransport({self.settings!r})"

    # -- clients ------------------------------------------------------------------------

    def _boto_session(self) -> Any:
        if self._session is None:
            import boto3

            with self._lock:
                if self._session is None:
                    with creating(self.settings, "sagemaker-runtime"):
                        self._session = boto3.Session(profile_name=self.settings.profile_name)
        return self._session

    def client(self) -> Any:
        """The boto3 ``sagemaker-runtime`` client, created on first use and cached."""
        if self._given is not None:
            if self._given_async:
                raise ConfigurationError(
                    "client= is an aiobotocore client, which only serves async calls (ainvoke, "
                    "astream, abatch...); pass a boto3 client, or no client, for sync calls"
                )
            return self._given
        if self._client is None:
            session = self._boto_session()
            with self._lock:
                if self._client is None:
                    self._client = create_client(self.settings, session=session)
        return self._client

    def s3_client(self, endpoint_url: str | None = None) -> Any:
        """The boto3 S3 client for ``endpoint_url`` (``None``: AWS or ``AWS_ENDPOINT_URL_S3``)."""
        client = self._s3.get(endpoint_url)
        if client is None:
            session = self._boto_session()
            settings = dataclasses.replace(self.settings, endpoint_url=endpoint_url)
            with self._lock:
                client = self._s3.get(endpoint_url)
                if client is None:
                    client = self._s3[endpoint_url] = create_client(settings, "s3", session=session)
        return client

    def sqs_client(self, queue_url: str | None = None) -> Any:
        """The boto3 SQS client (``AWS_ENDPOINT_URL_SQS`` and the profile apply, as for S3).
        A queue on a loopback address (the local endpoint's moto) is reached at that address."""
        endpoint_url = _loopback_origin(queue_url)
        client = self._sqs.get(endpoint_url)
        if client is None:
            session = self._boto_session()
            # the long poll (20 s at most) must fit in the read timeout
            settings = dataclasses.replace(
                self.settings, endpoint_url=endpoint_url, read_timeout=max(self.settings.read_timeout, 30.0)
            )
            with self._lock:
                client = self._sqs.get(endpoint_url)
                if client is None:
                    client = self._sqs[endpoint_url] = create_client(settings, "sqs", session=session)
        return client

    def _bounded_client(self, timeout: float | None) -> tuple[Any, bool]:
        """The client for an attempt of at most ``timeout`` seconds, and whether it is a
        short-lived one to close after the attempt."""
        settings = self.settings
        if timeout is None or timeout >= _SLACK * min(settings.connect_timeout, settings.read_timeout):
            return self.client(), False
        if self._given is not None:
            return self.client(), False  # a given client keeps its own timeouts
        seconds, session = max(timeout, 0.001), self._boto_session()
        with self._lock:  # a boto3 session creates one client at a time
            bounded = create_client(settings, session=session, connect_timeout=seconds, read_timeout=seconds)
        return bounded, True

    def _executor(self) -> ThreadPoolExecutor:
        """Worker threads for async calls without aiobotocore, as many as the pool has
        connections (asyncio's default executor has only ``cpu_count + 4``)."""
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self.settings.max_connections, thread_name_prefix="sm-llm"
                    )
        return self._pool

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)

    def _native_async(self) -> bool:
        """aiobotocore is installed and no ready-made sync client was given."""
        return self._given_async or (self._given is None and AIO_AVAILABLE)

    async def _aclient(self) -> Any:
        if self._given_async:
            return self._given
        return await self._aclients.get(self.settings)

    # -- sync calls -----------------------------------------------------------------------

    def _call(self, name: str, params: dict[str, Any], timeout: float | None) -> Any:
        client, short_lived = self._bounded_client(timeout)
        try:
            return getattr(client, name)(**params)
        finally:
            if short_lived:
                client.close()

    def invoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """``InvokeEndpoint``: the whole body read, errors mapped. With ``timeout``, the body
        must arrive within it, however slowly it trickles in (botocore's read timeout bounds
        each socket read, not the body)."""
        started, endpoint = time.monotonic(), params.get("EndpointName")
        try:
            with mapped(INVOKE, endpoint):
                client, short_lived = self._bounded_client(timeout)
                try:
                    response = client.invoke_endpoint(**params)
                    body = _read_body(response["Body"], None if timeout is None else started + timeout)
                finally:
                    if short_lived:
                        client.close()
        except e.RequestTimeoutError as exc:
            if exc.__cause__ is not None:  # already mapped: botocore's own timeout
                raise
            raise e.RequestTimeoutError(f"InvokeEndpoint on endpoint {endpoint!r}: {exc}") from exc
        return InvokeResult(body=body, metadata=response_metadata(response), status=http_status(response))

    def invoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """``InvokeEndpointWithResponseStream``: an open stream of PayloadPart bytes."""
        endpoint = params.get("EndpointName")
        with mapped(STREAM, endpoint):
            client, short_lived = self._bounded_client(timeout)
            try:
                response = client.invoke_endpoint_with_response_stream(**params)
            except BaseException:
                if short_lived:
                    client.close()
                raise
        stream = response["Body"]

        def parts() -> Iterator[bytes]:
            with mapped(STREAM, endpoint, in_stream=True):
                for event in stream:
                    part = event.get("PayloadPart")
                    if part is not None:
                        yield part.get("Bytes", b"")

        def close() -> None:
            stream.close()
            if short_lived:
                client.close()

        return StreamResult(parts(), response_metadata(response), close, http_status(response))

    def invoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """``InvokeEndpointAsync`` (an inline ``Body`` needs a recent botocore)."""
        if "Body" in params:
            _check_inline_support()
        with mapped(ASYNC, params.get("EndpointName")):
            return cast(dict[str, Any], self._call("invoke_endpoint_async", params, timeout))

    # -- async calls ----------------------------------------------------------------------

    async def ainvoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """Async :meth:`invoke`: aiobotocore, or a worker thread."""
        if not self._native_async():
            return await self._in_thread(lambda: self.invoke(params, timeout=timeout))
        with mapped(INVOKE, params.get("EndpointName")):
            client = await self._aclient()
            response = await client.invoke_endpoint(**params)
            async with response["Body"] as body:
                data = await body.read()
        return InvokeResult(body=data, metadata=response_metadata(response), status=http_status(response))

    async def ainvoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """Async :meth:`invoke_stream`: ``parts`` is an async iterator."""
        if not self._native_async():
            result = await self._in_thread(lambda: self.invoke_stream(params, timeout=timeout))
            return StreamResult(self._threaded_parts(result), result.metadata, result.close, result.status)
        endpoint = params.get("EndpointName")
        with mapped(STREAM, endpoint):
            client = await self._aclient()
            response = await client.invoke_endpoint_with_response_stream(**params)
        stream = response["Body"]

        async def parts() -> AsyncIterator[bytes]:
            with mapped(STREAM, endpoint, in_stream=True):
                async for event in stream:
                    part = event.get("PayloadPart")
                    if part is not None:
                        yield part.get("Bytes", b"")

        return StreamResult(parts(), response_metadata(response), stream.close, http_status(response))

    async def _threaded_parts(self, result: StreamResult) -> AsyncIterator[bytes]:
        """PayloadPart bytes of a sync stream, each read in a worker thread."""
        sentinel: Any = object()
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                pending = asyncio.ensure_future(self._in_thread(next, result.parts, sentinel))
                part = await pending
                pending = None
                if part is sentinel:
                    return
                yield part
        finally:
            if pending is not None:
                # Cancelled mid-read: closing the response unblocks the worker thread.
                result.close()
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved, so asyncio does not log it

    async def ainvoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Async :meth:`invoke_async` (on a worker thread)."""
        return await self._in_thread(lambda: self.invoke_async(params, timeout=timeout))

    # -- S3 -------------------------------------------------------------------------------

    def s3_upload(
        self, uri: str, body: bytes, *, content_type: str | None = None,
        owner: str | None = None, endpoint_url: str | None = None,
    ) -> None:
        """Upload ``body`` (multipart in parallel parts above 8 MiB)."""
        s3.s3_upload(self.s3_client(endpoint_url), uri, body, content_type, owner)

    def s3_read(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None,
        limit: int | None = None,
    ) -> S3Object | None:
        """The object (its first ``limit`` bytes, by a ranged ``GET``), or ``None``."""
        return s3.s3_read(self.s3_client(endpoint_url), uri, owner, limit)

    def s3_exists(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> bool:
        """``HeadObject``."""
        return s3.s3_exists(self.s3_client(endpoint_url), uri, owner)

    def s3_chunks(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None
    ) -> Iterator[bytes] | None:
        """The object in 1 MiB chunks, or ``None``."""
        return s3.s3_chunks(self.s3_client(endpoint_url), uri, owner)

    def s3_delete(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> None:
        """``DeleteObject``."""
        s3.s3_delete(self.s3_client(endpoint_url), uri, owner)

    # -- SQS ------------------------------------------------------------------------------

    def sqs_receive(
        self, queue_url: str, *, wait_seconds: int = 20, max_messages: int = 10
    ) -> list[QueueMessage]:
        """``ReceiveMessage`` (a long poll)."""
        return sqs.sqs_receive(self.sqs_client(queue_url), queue_url, wait_seconds, max_messages)

    def sqs_delete(self, queue_url: str, receipt_handles: list[str]) -> None:
        """``DeleteMessageBatch``."""
        sqs.sqs_delete(self.sqs_client(queue_url), queue_url, receipt_handles)

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the clients and worker threads; all are recreated on the next call."""
        with self._lock:
            client, self._client = self._client, None
            s3_clients, self._s3 = [*self._s3.values(), *self._sqs.values()], {}
            self._sqs = {}
            pool, self._pool = self._pool, None
        for each in (client, *s3_clients):
            if each is not None:
                each.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Close this event loop's async client, then everything :meth:`close` releases."""
        await self._aclients.aclose()
        self.close()
