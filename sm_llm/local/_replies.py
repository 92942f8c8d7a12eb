"""The HTTP replies of the local endpoint: reading the body, writing whole, dribbled,
event-stream and server-sent-event answers, error shapes, and calling the container."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from sm_llm.local._containers import (
    CUSTOM_ATTRIBUTES,
    ContainerRequest,
    ContainerResponse,
    ContainerUnavailable,
    invoke,
)
from sm_llm.local._errors import ServiceError, model_error
from sm_llm.local._eventstream import chunked, exception_frame, payload_part
from sm_llm.local._faults import FaultState, StreamFault, shape_stream
from sm_llm.local._httpserver import LocalHTTPServer
from sm_llm.local._routing import Target
from sm_llm.local._state import RecordedRequest

__all__ = ["Abort", "ReplyHandler"]

logger = logging.getLogger("sm_llm.local")

_READ_CAP = 64 * 1024 * 1024  # larger bodies are refused without being read


class Abort(Exception):
    """The client went away; nothing more can be sent."""


class ReplyHandler(BaseHTTPRequestHandler):
    """The request handler's writing half: the routes (in ``_server``) build on it."""

    protocol_version = "HTTP/1.1"
    server_version = "sm-llm-local"
    sys_version = ""
    timeout = 120.0  # idle keep-alive connections are dropped after this
    disable_nagle_algorithm = True  # else small header+body writes stall on delayed ACKs
    server: LocalHTTPServer

    # -- plumbing ---------------------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError as exc:
            self.close_connection = True
            raise Abort from exc

    def _start(self, status: int, headers: Mapping[str, str], reason: str | None = None) -> None:
        self.send_response(status, reason)
        for name, value in headers.items():
            self.send_header(name, value)
        try:
            self.end_headers()
        except OSError as exc:
            self.close_connection = True
            raise Abort from exc

    def _send_body(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self._start(status, {**headers, "Content-Length": str(len(body))})
        self._write(body)

    def _read_body(self) -> tuple[bytes, int]:
        """Read the request body; returns it and its length (body empty when over the cap)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts, total = [], 0
            for _ in range(_READ_CAP):
                size = int(self.rfile.readline(66).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(66)
                    break
                total += size
                if total > _READ_CAP:
                    self.close_connection = True
                    return b"", total
                parts.append(self.rfile.read(size))
                self.rfile.readline(66)
            return b"".join(parts), total
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > _READ_CAP:
            self.close_connection = True
            return b"", length
        return self.rfile.read(length), length

    def _safely(self, send: Callable[[], None]) -> None:
        with contextlib.suppress(Abort):
            send()

    def _send_error(self, error: ServiceError, request_id: str) -> None:
        body = json.dumps(error.body()).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": request_id,
        }
        headers["Content-Length"] = str(len(body))
        self._start(error.status, headers, error.code if error.status == 530 else None)
        self._write(body)

    def _sse(
        self,
        record: RecordedRequest,
        target: Target,
        response: ContainerResponse,
        faults: FaultState,
        truncate: bool,
    ) -> None:
        """Relay the container's server-sent events as they come (chunked, paced by
        ``token_delay_ms``; ``TruncatedBody`` ends the connection after the first event)."""
        state = self.server.state
        delay = faults.config.token_delay_ms / 1000.0
        headers = {
            **self._success_headers(record, target, response.content_type, response.headers),
            "Transfer-Encoding": "chunked",
        }
        record.status, record.stream_completed = 200, False
        pieces = iter(response.pieces)
        try:
            self._start(200, headers)
            for index, piece in enumerate(pieces):
                if truncate and index >= 1:
                    self.close_connection = True
                    return
                if piece.token and delay > 0 and state.wait(delay):
                    self.close_connection = True
                    return
                if piece.data:
                    self._write(chunked(piece.data))
            record.stream_completed = True
            self._write(chunked(b""))
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def _reset(self, record: RecordedRequest) -> None:
        """Drop the connection with a TCP reset instead of answering."""
        record.error_code = "ConnectionReset"
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _call(self, target: Target, request: ContainerRequest, name: str) -> ContainerResponse:
        config = self.server.state.config

        def fail(status: int, text: str) -> ServiceError:
            return model_error(
                endpoint=name,
                container_name=target.container_name,
                status=status,
                body=text,
                region=config.region,
                account_id=config.account_id,
            )

        try:
            response = invoke(target.container, request)
            if 200 <= response.status < 300:
                return response
            text = response.body().decode("utf-8", "replace")
        except ContainerUnavailable as exc:
            raise fail(0, str(exc)) from exc
        raise fail(response.status, text)

    def _success_headers(
        self, record: RecordedRequest, target: Target, content_type: str, response_headers: Mapping[str, str]
    ) -> dict[str, str]:
        headers = {
            "Content-Type": content_type,
            "x-Amzn-Invoked-Production-Variant": target.variant,
            "x-amzn-RequestId": record.request_id,
        }
        if CUSTOM_ATTRIBUTES in response_headers:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = response_headers[CUSTOM_ATTRIBUTES]
        return headers

    def _reply_json(
        self, record: RecordedRequest, target: Target, obj: Any, extra: Mapping[str, str]
    ) -> None:
        headers = {**self._success_headers(record, target, "application/json", {}), **extra}
        record.status = 200
        self._send_body(200, headers, json.dumps(obj).encode("utf-8"))

    def _whole(
        self,
        record: RecordedRequest,
        target: Target,
        response: ContainerResponse,
        faults: FaultState,
        extra: Mapping[str, str],
        truncate: bool,
    ) -> None:
        state = self.server.state
        delay = faults.config.token_delay_ms / 1000.0
        parts = []
        try:
            for piece in response.pieces:
                if piece.token and delay > 0 and state.wait(delay):
                    raise ServiceError("ServiceUnavailable", "The local endpoint is shutting down.")
                parts.append(piece.data)
        except (ServiceError, Abort):
            raise
        except Exception as exc:
            error = model_error(
                endpoint=record.endpoint_name,
                container_name=target.container_name,
                status=0,
                body=f"The container closed the connection: {exc}",
                region=state.config.region,
                account_id=state.config.account_id,
            )
            raise error from exc
        body = b"".join(parts)
        headers = {
            **self._success_headers(record, target, response.content_type, response.headers),
            **extra,
        }
        record.status = response.status
        if truncate:
            self._start(response.status, {**headers, "Content-Length": str(len(body))})
            self._write(body[: len(body) // 2])
            self.close_connection = True
            return
        byte_delay = faults.config.body_byte_delay_ms / 1000.0
        if byte_delay > 0:
            self._dribble(response.status, headers, body, byte_delay)
            return
        self._send_body(response.status, headers, body)

    def _dribble(self, status: int, headers: Mapping[str, str], body: bytes, delay: float) -> None:
        """Send ``body`` one byte every ``delay`` seconds (the ``body_byte_delay_ms`` fault)."""
        self._start(status, {**headers, "Content-Length": str(len(body))})
        for index in range(len(body)):
            if self.server.state.wait(delay):
                self.close_connection = True
                return
            self._write(body[index : index + 1])  # a reader that gave up ends this with Abort

    def _stream(
        self,
        record: RecordedRequest,
        target: Target,
        response: ContainerResponse,
        faults: FaultState,
        truncate: bool,
    ) -> None:
        state = self.server.state
        headers = {
            **self._success_headers(
                record, target, "application/vnd.amazon.eventstream", response.headers
            ),
            "X-Amzn-SageMaker-Content-Type": response.content_type,
            "Transfer-Encoding": "chunked",
        }
        items = shape_stream(response.pieces, faults.stream_config(), faults.split_rng(), state.wait)
        record.status, record.stream_completed = 200, False
        try:
            self._start(200, headers)
            for index, item in enumerate(items):
                if truncate and index >= 1:
                    break
                if isinstance(item, StreamFault):
                    # Flags are set before writing what a client may react to first.
                    record.stream_error, record.stream_completed = item.exception_type, True
                    self._write(chunked(exception_frame(item.exception_type, item.body())))
                    # The client may be gone already: it stops at the exception.
                    self._safely(lambda: self._write(chunked(b"")))
                    return
                self._write(chunked(payload_part(item)))
            if truncate:  # end the connection without the terminating chunk
                self.close_connection = True
                return
            record.stream_completed = True
            self._write(chunked(b""))
        finally:
            items.close()
