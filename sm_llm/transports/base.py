"""What the engine needs from a transport, and what a transport hands back.

A :class:`Transport` performs SageMaker Runtime calls and the S3 operations that
asynchronous inference jobs need, and raises only :mod:`sm_llm.errors` exceptions.
``timeout`` on a call is the time the attempt may still take (the engine's overall
deadline); a transport bounds the attempt by it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["InvokeResult", "QueueMessage", "S3Object", "StreamResult", "Transport"]


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """A whole reply and the metadata SageMaker returned with it."""

    body: bytes
    metadata: dict[str, Any]
    status: int | None = None
    """The HTTP status of the reply."""


@dataclass(slots=True)
class StreamResult:
    """An open event stream: iterate ``parts`` (``for`` from a sync call, ``async for`` from
    an async one) for ``PayloadPart`` bytes; always ``close()``."""

    parts: Any
    metadata: dict[str, Any]
    on_close: Callable[[], Any] | None = None
    status: int | None = None
    """The HTTP status of the reply."""

    def close(self) -> None:
        """Close the HTTP response (and its connection when unread data remains)."""
        if self.on_close is not None:
            with contextlib.suppress(Exception):  # closing must never mask the real outcome
                outcome = self.on_close()
                if inspect.iscoroutine(outcome):  # an async response: see aclose()
                    outcome.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaiting ``on_close`` when it is a coroutine function (an async
        HTTP response that only closes by being awaited)."""
        if self.on_close is not None:
            with contextlib.suppress(Exception):
                outcome = self.on_close()
                if inspect.isawaitable(outcome):
                    await outcome


@dataclass(frozen=True, slots=True)
class S3Object:
    """An S3 object read whole (or its first bytes)."""

    body: bytes
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One SQS message received (its body as text, and the handle that deletes it)."""

    body: str
    receipt_handle: str
    message_id: str = ""


@runtime_checkable
class Transport(Protocol):
    """SageMaker Runtime and S3 calls; every failure is an ``sm_llm.errors`` exception.

    ``params`` are the boto3 keyword arguments of the operation (``EndpointName``,
    ``Body``, ``ContentType``, routing headers...). S3 locations are ``s3://bucket/key``;
    ``owner`` is the expected bucket owner and ``endpoint_url`` the S3 endpoint (both
    optional).
    """

    def invoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """``InvokeEndpoint``: the whole body."""
        ...

    def invoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """``InvokeEndpointWithResponseStream``: an open stream of ``PayloadPart`` bytes."""
        ...

    def invoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """``InvokeEndpointAsync``: the reply (``InferenceId``, ``OutputLocation``, ``FailureLocation``)."""
        ...

    async def ainvoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """Async :meth:`invoke`."""
        ...

    async def ainvoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """Async :meth:`invoke_stream` (``parts`` is an async iterator)."""
        ...

    async def ainvoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Async :meth:`invoke_async`."""
        ...

    def s3_upload(
        self, uri: str, body: bytes, *, content_type: str | None = None,
        owner: str | None = None, endpoint_url: str | None = None,
    ) -> None:
        """Store ``body`` at ``uri``."""
        ...

    def s3_read(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None,
        limit: int | None = None,
    ) -> S3Object | None:
        """The object (its first ``limit`` bytes), or ``None`` when it does not exist (yet)."""
        ...

    def s3_exists(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> bool:
        """Whether the object exists."""
        ...

    def s3_chunks(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None
    ) -> Iterator[bytes] | None:
        """The object in chunks of at most 1 MiB (memory stays bounded), or ``None``."""
        ...

    def s3_delete(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> None:
        """Delete the object (best effort is the caller's choice)."""
        ...

    def sqs_receive(
        self, queue_url: str, *, wait_seconds: int = 20, max_messages: int = 10
    ) -> list[QueueMessage]:
        """A long poll of ``queue_url``: up to ``max_messages`` messages, waiting at most
        ``wait_seconds`` for the first."""
        ...

    def sqs_delete(self, queue_url: str, receipt_handles: list[str]) -> None:
        """Delete the messages received with ``receipt_handles``."""
        ...

    def close(self) -> None:
        """Release clients and connections; the transport may be used again afterwards."""
        ...

    async def aclose(self) -> None:
        """Close this event loop's async resources, then everything :meth:`close` releases."""
        ...
