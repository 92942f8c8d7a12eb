"""Proxy to a real container that follows the SageMaker container contract.

``POST {base}/invocations`` with the forwarded headers, ``GET {base}/ping`` for health.
The container's reply is relayed as is: a non-2xx status becomes the service's
424 ``ModelError`` (``OriginalStatusCode`` = the container's status), and on the
streaming route chunks are relayed as payload parts as they arrive. When the
container cannot be reached or times out, :class:`ContainerUnavailable` is raised
and the endpoint answers 424 ``ModelError`` with ``OriginalStatusCode`` 0, as
SageMaker does for a container that never answered; a connection lost mid-stream
ends the stream with a ``ModelStreamError`` (``StreamBroken``).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from sm_llm.errors import ConfigurationError
from sm_llm.local._containers import (
    CUSTOM_ATTRIBUTES,
    ContainerRequest,
    ContainerResponse,
    ContainerUnavailable,
    Piece,
)

__all__ = ["UpstreamContainer"]

class UpstreamContainer:
    """A container callable that forwards to ``base_url`` with :mod:`requests`."""

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 60.0,
    ) -> None:
        _check_url(base_url)  # file://, gopher://: refused before serving
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=256)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session

    def ping(self, timeout: float = 2.0) -> bool:
        """Whether ``GET /ping`` answers 200."""
        try:
            response = self.session.get(f"{self.base_url}/ping", timeout=timeout)
        except requests.RequestException:
            return False
        response.close()
        return response.status_code == 200

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def __call__(self, request: ContainerRequest) -> ContainerResponse:
        """Forward one invocation."""
        url = f"{self.base_url}/invocations"
        try:
            response = self.session.post(
                url,
                data=request.body,
                headers=dict(request.headers),
                timeout=self.timeout,
                stream=request.streaming_api,
            )
        except requests.Timeout as exc:
            raise ContainerUnavailable(
                "Your invocation timed out while waiting for a response from container primary."
            ) from exc
        except requests.RequestException as exc:
            raise ContainerUnavailable(
                f"Could not connect to the upstream container at {self.base_url}: {exc}"
            ) from exc
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        headers = {}
        attributes = response.headers.get(CUSTOM_ATTRIBUTES)
        if attributes is not None:
            headers[CUSTOM_ATTRIBUTES] = attributes
        if not 200 <= response.status_code < 300 or not request.streaming_api:
            try:
                body = response.content
            except requests.RequestException as exc:
                raise ContainerUnavailable(f"The upstream container closed the connection: {exc}") from exc
            finally:
                response.close()
            return ContainerResponse(response.status_code, content_type, [Piece(body)], headers)
        return ContainerResponse(response.status_code, content_type, _relay(response), headers)


def _relay(response: requests.Response) -> Iterator[Piece]:
    try:
        for chunk in response.iter_content(chunk_size=None):
            if chunk:
                yield Piece(chunk)
    finally:
        response.close()


def _check_url(url: str) -> None:
    """An http(s) URL with a host, printable ASCII only (the emulator shares no code
    with the client it checks, so this is its own copy of the rule)."""
    try:
        parts = urlsplit(url)
        ok = url.isascii() and url.isprintable() and " " not in url and parts.scheme in ("http", "https")
        ok = ok and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigurationError(f"upstream={url!r} is not allowed: give an http:// or https:// URL with a host")
