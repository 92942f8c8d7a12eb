"""An in-memory :class:`~sm_llm.transports.Transport` for unit tests (yours and ours).

Queue what the endpoint answers, then look at what was sent::

    fake = FakeTransport().reply({"generated_text": "hi"}).stream(b'data:{"token":...}\\n\\n')
    llm = SageMakerLLM(endpoint_name="ep", transport=fake)
    llm.invoke("x"); fake.calls[0].params["Body"]

Every call takes the next queued outcome (a reply, a stream or an error); with none
queued, ``responder(operation, params)`` is asked, and ``InvokeEndpointAsync`` answers
with output and failure locations of its own. S3 objects live in :attr:`objects`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sm_llm.errors import SageMakerError
from sm_llm.transports.base import InvokeResult, QueueMessage, S3Object, StreamResult

__all__ = ["FakeCall", "FakeStream", "FakeTransport"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One call the fake received."""

    operation: str
    params: dict[str, Any]
    timeout: float | None = None


@dataclass(slots=True)
class FakeStream:
    """A queued stream: its parts, then (optionally) an error raised mid-stream."""

    parts: list[bytes]
    metadata: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    closed: bool = False


def _bytes(body: bytes | str | dict[str, Any] | list[Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class FakeTransport:
    """Replies from a queue (or ``responder``), calls recorded in :attr:`calls`."""

    def __init__(self, responder: Callable[[str, dict[str, Any]], Any] | None = None) -> None:
        self.responder = responder
        self.queue: deque[Any] = deque()
        self.calls: list[FakeCall] = []
        self.objects: dict[str, S3Object] = {}
        self.streams: list[FakeStream] = []
        self.messages: dict[str, list[QueueMessage]] = {}
        """SQS queues: messages not yet deleted, by queue URL."""
        self.closed = 0

    # -- queueing ---------------------------------------------------------------------------

    def reply(self, body: bytes | str | dict[str, Any] | list[Any], **metadata: Any) -> FakeTransport:
        """Queue a whole reply (a mapping or list is sent as JSON)."""
        self.queue.append(InvokeResult(_bytes(body), dict(metadata)))
        return self

    def stream(self, *parts: bytes | str, error: BaseException | None = None, **metadata: Any) -> FakeTransport:
        """Queue a stream of ``parts``, failing with ``error`` after them when given."""
        self.queue.append(FakeStream([_bytes(p) for p in parts], dict(metadata), error))
        return self

    def fail(self, error: BaseException) -> FakeTransport:
        """Queue an error for the next call."""
        self.queue.append(error)
        return self

    def _next(self, operation: str, params: dict[str, Any], timeout: float | None) -> Any:
        self.calls.append(FakeCall(operation, dict(params), timeout))
        if self.queue:
            outcome = self.queue.popleft()
        elif self.responder is not None:
            outcome = self.responder(operation, params)
        elif operation == "InvokeEndpointAsync":
            name = params.get("InferenceId", "job")
            outcome = {
                "InferenceId": name,
                "OutputLocation": f"s3://fake-bucket/output/{name}.out",
                "FailureLocation": f"s3://fake-bucket/failure/{name}-error.out",
            }
        else:
            raise SageMakerError(f"FakeTransport: nothing queued for {operation}")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    # -- calls ------------------------------------------------------------------------------

    def invoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """The next queued reply."""
        outcome = self._next("InvokeEndpoint", params, timeout)
        if isinstance(outcome, InvokeResult):
            return outcome
        return InvokeResult(_bytes(outcome), {})

    def _stream(self, params: dict[str, Any], timeout: float | None) -> FakeStream:
        outcome = self._next("InvokeEndpointWithResponseStream", params, timeout)
        stream = outcome if isinstance(outcome, FakeStream) else FakeStream([_bytes(outcome)])
        self.streams.append(stream)
        return stream

    def invoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """The next queued stream."""
        stream = self._stream(params, timeout)

        def parts() -> Iterator[bytes]:
            yield from stream.parts
            if stream.error is not None:
                raise stream.error

        return StreamResult(parts(), dict(stream.metadata), lambda: setattr(stream, "closed", True))

    def invoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """The next queued reply, or output and failure locations named after the inference id."""
        return dict(self._next("InvokeEndpointAsync", params, timeout))

    async def ainvoke(self, params: dict[str, Any], *, timeout: float | None = None) -> InvokeResult:
        """Async :meth:`invoke`."""
        return self.invoke(params, timeout=timeout)

    async def ainvoke_stream(self, params: dict[str, Any], *, timeout: float | None = None) -> StreamResult:
        """Async :meth:`invoke_stream` (async parts)."""
        stream = self._stream(params, timeout)

        async def parts() -> AsyncIterator[bytes]:
            for part in stream.parts:
                yield part
            if stream.error is not None:
                raise stream.error

        return StreamResult(parts(), dict(stream.metadata), lambda: setattr(stream, "closed", True))

    async def ainvoke_async(self, params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Async :meth:`invoke_async`."""
        return self.invoke_async(params, timeout=timeout)

    # -- S3 ---------------------------------------------------------------------------------

    def s3_upload(
        self, uri: str, body: bytes, *, content_type: str | None = None,
        owner: str | None = None, endpoint_url: str | None = None,
    ) -> None:
        """Keep ``body`` in :attr:`objects`."""
        self.calls.append(FakeCall("s3:upload", {"uri": uri}))
        self.objects[uri] = S3Object(body, content_type)

    def s3_read(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None,
        limit: int | None = None,
    ) -> S3Object | None:
        """The object from :attr:`objects` (its first ``limit`` bytes)."""
        self.calls.append(FakeCall("s3:read", {"uri": uri}))
        found = self.objects.get(uri)
        if found is None or limit is None:
            return found
        return S3Object(found.body[:limit], found.content_type)

    def s3_exists(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> bool:
        """Whether :attr:`objects` holds ``uri``."""
        self.calls.append(FakeCall("s3:exists", {"uri": uri}))
        return uri in self.objects

    def s3_chunks(
        self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None
    ) -> Iterator[bytes] | None:
        """The object in 1 MiB chunks."""
        found = self.objects.get(uri)
        if found is None:
            return None
        body = found.body
        return iter([body[i : i + _CHUNK] for i in range(0, len(body), _CHUNK)])

    def s3_delete(self, uri: str, *, owner: str | None = None, endpoint_url: str | None = None) -> None:
        """Drop the object."""
        self.calls.append(FakeCall("s3:delete", {"uri": uri}))
        self.objects.pop(uri, None)

    # -- SQS --------------------------------------------------------------------------------

    def send_message(self, queue_url: str, body: str | dict[str, Any]) -> FakeTransport:
        """Put a message on ``queue_url`` (a mapping is sent as JSON)."""
        queue = self.messages.setdefault(queue_url, [])
        number = sum(map(len, self.messages.values())) + len(self.calls)
        text = body if isinstance(body, str) else json.dumps(body)
        queue.append(QueueMessage(text, f"handle-{number}", f"message-{number}"))
        return self

    def sqs_receive(
        self, queue_url: str, *, wait_seconds: int = 20, max_messages: int = 10
    ) -> list[QueueMessage]:
        """Up to ``max_messages`` of the queue's messages (all stay until deleted; no wait)."""
        self.calls.append(FakeCall("sqs:receive", {"queue_url": queue_url, "wait_seconds": wait_seconds}))
        return list(self.messages.get(queue_url, [])[:max_messages])

    def sqs_delete(self, queue_url: str, receipt_handles: list[str]) -> None:
        """Drop the messages."""
        self.calls.append(FakeCall("sqs:delete", {"queue_url": queue_url, "handles": list(receipt_handles)}))
        gone = set(receipt_handles)
        self.messages[queue_url] = [m for m in self.messages.get(queue_url, []) if m.receipt_handle not in gone]

    def close(self) -> None:
        """Count the close."""
        self.closed += 1

    async def aclose(self) -> None:
        """Count the close."""
        self.close()
