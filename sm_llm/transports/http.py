"""The HTTP transport base on httpx: clients, timeouts and errors, for any SageMaker wire.

Wire-agnostic: a subclass builds each request (URL, headers, body) and reads the reply;
:class:`HttpTransport` owns the clients — one ``httpx.Client`` for sync calls and one
``httpx.AsyncClient`` per event loop (like the aiobotocore clients, parked so that they
close when the loop shuts down), both created on first use, pooled by
``max_connections``, with the connect and read timeouts of the settings — and turns what
httpx raises, and HTTP error statuses, into :mod:`sm_llm.errors` exceptions.
httpx is imported on first use, not with :mod:`sm_llm`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sm_llm import errors as e
from sm_llm.transports.clients import AsyncClients, ClientSettings
from sm_llm.transports.mapping import status_error_class

if TYPE_CHECKING:
    import httpx

_C = TypeVar("_C", "httpx.Client", "httpx.AsyncClient")

__all__ = ["ERROR_BODY_LIMIT", "POOL_SHARD", "URL_CACHE", "HttpTransport", "http_errors", "status_error"]

ERROR_BODY_LIMIT = 65_536
"""Bytes of an error reply read (the rest is dropped with the connection)."""

POOL_SHARD = 8
"""Most connections in one httpx async pool. httpcore's pool (1.0.x) walks all its
connections, and for each idle one all of them again, whenever a request starts or ends
(encode/httpcore#1035): ~10 ms of CPU per request with 100 pooled connections, seconds
with 1,000. A larger ``max_connections`` is split over several ``AsyncClient`` pools of at
most this many connections (together exactly ``max_connections``); each request goes to
the one with the most free connections."""

URL_CACHE = 256
"""Parsed request URLs kept per transport: a bound for callers that vary the URL per call."""

_BY_STATUS: dict[int, type[e.SageMakerError]] = {
    401: e.AuthenticationError,
    403: e.AuthenticationError,
    404: e.EndpointNotFoundError,
    408: e.RequestTimeoutError,
}


def status_error(
    status: int, message: str, *, where: str, code: str | None = None, request_id: str | None = None
) -> e.SageMakerError:
    """The typed error for an HTTP error ``status`` whose body says ``message``: 400 as
    SageMaker's ``ValidationError`` (no capacity, endpoint not found, invalid request),
    401/403 :class:`~sm_llm.errors.AuthenticationError`, 404 not found, 408 timeout, other
    4xx invalid requests, 429 throttling, 5xx as SageMaker Runtime's."""
    cls = _BY_STATUS.get(status) or status_error_class(status, message)
    if cls is e.SageMakerError and 400 <= status < 500:
        cls = e.RequestValidationError
    return cls(f"{where}: {e.snippet(message, e.MAX_QUOTE)}", status_code=status, error_code=code,
               request_id=request_id)


def _transport_error(exc: BaseException, where: str, in_stream: bool) -> e.SageMakerError:
    import httpx

    text = e.snippet(f"{type(exc).__name__}: {exc}", e.MAX_QUOTE)
    if in_stream:
        stalled = isinstance(exc, httpx.TimeoutException)
        return e.StreamError(f"{where}: the stream {'stalled' if stalled else 'broke'}: {text}")
    if isinstance(exc, httpx.TimeoutException):
        return e.RequestTimeoutError(f"{where} timed out: {text}")
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return e.ConfigurationError(f"{where}: invalid endpoint URL: {text}", field="endpoint_url")
    if isinstance(exc, (httpx.TransportError, OSError)):
        return e.EndpointUnreachableError(f"{where}: cannot reach the endpoint: {text}")
    return e.SageMakerError(f"{where} failed: {text}")


@contextmanager
def http_errors(where: str, *, in_stream: bool = False) -> Iterator[None]:
    """What httpx raises in the block, as an ``sm_llm.errors`` exception (``in_stream``:
    once a stream has started, any failure is a :class:`~sm_llm.errors.StreamError`)."""
    import httpx

    try:
        yield
    except e.SageMakerError:
        raise
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        raise _transport_error(exc, where, in_stream) from exc


class HttpTransport:
    """httpx clients and the request/reply plumbing every HTTP wire shares.

    Subclasses implement the :class:`~sm_llm.transports.Transport` methods their wire
    serves with :meth:`send` / :meth:`asend` and :meth:`read` / :meth:`aread`.
    """

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._urls: dict[str, httpx.URL] = {}
        self._aclients = AsyncClients(self._create_async, close="aclose")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings!r})"

    # -- clients --------------------------------------------------------------------------

    def timeouts(self, attempt: float | None = None) -> httpx.Timeout:
        """Connect and read timeouts of the settings, each at most ``attempt`` seconds."""
        import httpx

        connect, read = self.settings.connect_timeout, self.settings.read_timeout
        if attempt is not None:
            attempt = max(attempt, 0.001)
            connect, read = min(connect, attempt), min(read, attempt)
        return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)

    def _options(self) -> dict[str, Any]:
        import httpx

        size = self.settings.max_connections
        return {
            "timeout": self.timeouts(),
            "limits": httpx.Limits(max_connections=size, max_keepalive_connections=size),
            "headers": {"User-Agent": f"sm-llm httpx/{httpx.__version__}"},
        }

    def client(self) -> httpx.Client:
        """The sync client, created on first use."""
        client = self._client
        if client is None:
            import httpx

            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = self._prepared(httpx.Client(**self._options()))
        return client

    async def _create_async(self, settings: ClientSettings) -> _Shards:
        import httpx

        sizes = _shard_sizes(self.settings.max_connections)

        def create() -> list[httpx.AsyncClient]:
            clients = []
            tls = httpx.create_ssl_context()  # one trust store for all the pools (~10 ms each)
            for size in sizes:
                options = {"verify": tls, **self._options()}
                options["limits"] = httpx.Limits(max_connections=size, max_keepalive_connections=size)
                clients.append(self._prepared(httpx.AsyncClient(**options)))
            return clients

        # Loading the TLS trust store reads files: not on the event loop.
        return _Shards(await asyncio.to_thread(create), sizes)

    def _prepared(self, client: _C) -> _C:
        """A new client, adjusted by a subclass (e.g. its default headers)."""
        return client

    # -- requests -------------------------------------------------------------------------

    def send(
        self, url: str | httpx.URL, *, headers: dict[str, str], content: bytes, timeout: float | None,
        stream: bool = False, where: str,
    ) -> httpx.Response:
        """``POST`` ``content`` to ``url``; the response (its body unread when ``stream``).

        The request goes straight to the client's connection pool (the transport httpx
        mounts for ``url``: proxies from the environment apply), without ``Client.send``'s
        per-request layers that these wires never use — auth flows, redirects (off), event
        hooks (none) and the cookie jar: like boto3, no cookies are kept or sent. That layer
        costs about as much CPU as the HTTP exchange itself on a keep-alive connection.
        """
        with http_errors(where):
            client = self.client()
            request = _request(client, self._parsed(url), headers, content, self.timeouts(timeout))
            transport = client._transport_for_url(request.url)  # httpx's mount (proxy) choice
            response = transport.handle_request(request)
            response.request = request
            if not stream:
                try:
                    response.read()
                finally:
                    response.close()
            return response

    async def asend(
        self, url: str | httpx.URL, *, headers: dict[str, str], content: bytes, timeout: float | None,
        stream: bool = False, where: str,
    ) -> httpx.Response:
        """Async :meth:`send`."""
        with http_errors(where):
            shards: _Shards = await self._aclients.get(self.settings)
            return await shards.send(self._parsed(url), headers, content, self.timeouts(timeout), stream=stream)

    def _parsed(self, url: str | httpx.URL) -> httpx.URL:
        """``url`` parsed once (httpx parses a string URL on every request)."""
        import httpx

        if isinstance(url, httpx.URL):
            return url
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= URL_CACHE:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    def read(self, response: httpx.Response, *, where: str, deadline: float | None = None,
             limit: int | None = None) -> bytes:
        """A streamed response's body (its first ``limit`` bytes), by the ``deadline``
        (``time.monotonic()``) if given; the response is closed."""
        chunks: list[bytes] = []
        size = 0
        try:
            with http_errors(where):
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if limit is not None and size >= limit:
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        raise e.RequestTimeoutError(
                            f"{where}: the reply body did not arrive within the timeout ({size} bytes received)"
                        )
        finally:
            response.close()
        return b"".join(chunks)[:limit]

    async def aread(self, response: httpx.Response, *, where: str, limit: int | None = None) -> bytes:
        """Async :meth:`read` (the engine bounds async attempts by cancelling them)."""
        chunks: list[bytes] = []
        size = 0
        try:
            with http_errors(where):
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if limit is not None and size >= limit:
                        break
        finally:
            await response.aclose()
        return b"".join(chunks)[:limit]

    def parts(self, response: httpx.Response, *, where: str) -> Iterator[bytes]:
        """A streamed body's bytes as they arrive; failures are ``StreamError``."""
        with http_errors(where, in_stream=True):
            yield from response.iter_bytes()

    async def aparts(self, response: httpx.Response, *, where: str) -> AsyncIterator[bytes]:
        """Async :meth:`parts`."""
        with http_errors(where, in_stream=True):
            async for chunk in response.aiter_bytes():
                yield chunk

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client (its pool); it is recreated on the next call."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close this event loop's async client, then the sync one."""
        await self._aclients.aclose()
        self.close()


def _request(client: httpx.Client | httpx.AsyncClient, url: str | httpx.URL, headers: dict[str, str],
             content: bytes, timeout: httpx.Timeout) -> httpx.Request:
    """A ``POST`` as ``client.build_request`` makes it: the client's default headers, then
    ``headers``; no cookies (the jar is never filled, see :meth:`HttpTransport.send`)."""
    import httpx

    defaults = client.headers.raw  # [(name as given, value)], few
    if {name.lower() for name, _ in defaults}.isdisjoint(name.lower().encode("ascii") for name in headers):
        # what httpx's header merge gives when nothing is overridden, without rebuilding it
        merged: Any = [*defaults, *((name.encode("ascii"), value.encode("ascii")) for name, value in headers.items())]
    else:
        merged = httpx.Headers(client.headers)
        merged.update(headers)
    return httpx.Request("POST", url, headers=merged, content=content, extensions={"timeout": timeout.as_dict()})


def _shard_sizes(size: int) -> list[int]:
    """``size`` connections as pools of at most :data:`POOL_SHARD`, as even as possible."""
    count = -(-size // POOL_SHARD)
    return [size // count + (i < size % count) for i in range(count)]


class _Shards:
    """One event loop's httpx ``AsyncClient`` pools (see :data:`POOL_SHARD`) and the
    requests each has in flight, from send to the response's close."""

    def __init__(self, clients: list[httpx.AsyncClient], sizes: list[int]) -> None:
        self.clients = clients
        self._free = list(sizes)

    async def send(
        self, url: str | httpx.URL, headers: dict[str, str], content: bytes, timeout: httpx.Timeout, *,
        stream: bool,
    ) -> httpx.Response:
        """``POST`` on the pool with the most free connections, as :meth:`HttpTransport.send`
        does; a streamed response holds its connection until it is closed (read to the end,
        or ``aclose``)."""
        import httpx

        free = self._free
        index = free.index(max(free)) if len(free) > 1 else 0
        client = self.clients[index]
        request = _request(client, url, headers, content, timeout)
        free[index] -= 1
        try:
            response = await client._transport_for_url(request.url).handle_async_request(request)
            response.request = request
            if not stream:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except BaseException:
            free[index] += 1
            raise
        if not stream:
            free[index] += 1
        else:
            body = response.stream
            assert isinstance(body, httpx.AsyncByteStream)
            response.stream = _held_stream()(body, lambda: free.__setitem__(index, free[index] + 1))
        return response

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


@functools.cache
def _held_stream() -> Callable[[httpx.AsyncByteStream, Callable[[], None]], httpx.AsyncByteStream]:
    """The class of a response body stream that calls ``release`` once, when it is closed
    (an ``httpx.AsyncByteStream``, defined on first use: httpx is imported lazily)."""
    import httpx

    class Held(httpx.AsyncByteStream):
        def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
            self._stream = stream
            self._release: Callable[[], None] | None = release

        def __aiter__(self) -> AsyncIterator[bytes]:
            return aiter(self._stream)

        async def aclose(self) -> None:
            try:
                await self._stream.aclose()
            finally:
                release, self._release = self._release, None
                if release is not None:
                    release()

    return Held
