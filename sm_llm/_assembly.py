"""The sans-IO core the adapters share: a prepared request, reply metadata, and the
assembly of stream records into emitted text (stop sequences, partial text on failure).

No I/O here: ``_base`` feeds it from the sync, aiobotocore and threaded loops alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sm_llm._decoding import StreamDecoder
from sm_llm._routing import Operation
from sm_llm._stop import StopScanner
from sm_llm.errors import ConfigurationError, SageMakerError, StreamError
from sm_llm.handlers import ContentHandler, StreamDelta

__all__ = ["PreparedRequest", "StreamAssembler", "reply_metadata", "stream_parser", "with_partial"]


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A validated request, ready for the transport; building it sends nothing."""

    operation: Operation
    params: dict[str, Any]
    stop: list[str] | None
    handler: ContentHandler


def reply_metadata(
    metadata: dict[str, Any],
    *,
    finish_reason: str | None,
    usage: dict[str, int] | None,
    model_name: str | None,
) -> dict[str, Any]:
    """What came back with a reply: variant, custom attributes, sessions, finish, usage."""
    info: dict[str, Any] = {k: v for k, v in metadata.items() if k != "content_type"}
    info["finish_reason"] = finish_reason
    if usage:
        info["usage"] = usage
    if model_name:
        info["model_name"] = model_name
    return info


class StreamAssembler:
    """Sans-IO: stream deltas in, text to emit out, with literal stop handling.

    The emitted text is kept for ``partial_text`` in blocks of joined pieces, so a
    50 MB stream of small tokens does not hold a million small strings.
    """

    __slots__ = ("_blocks", "_recent", "emitted_any", "finish_reason", "metadata", "model_name", "scanner", "usage")

    _BLOCK = 512

    def __init__(self, stop: list[str] | None) -> None:
        self.scanner = StopScanner(stop)
        self._blocks: list[str] = []
        self._recent: list[str] = []
        self.emitted_any = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.model_name: str | None = None
        self.metadata: dict[str, Any] = {}
        """Reply headers (variant, custom attributes...), set when the stream opens."""

    @property
    def stopped(self) -> bool:
        """A stop sequence was seen: the caller should close the stream now."""
        return self.scanner.stopped

    def _keep(self, piece: str) -> None:
        self.emitted_any = True
        self._recent.append(piece)
        if len(self._recent) >= self._BLOCK:
            self._blocks.append("".join(self._recent))
            self._recent.clear()

    def add(self, delta: StreamDelta) -> str:
        """Account for one record; return the text that may be emitted now."""
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        if delta.usage:
            self.usage = {**(self.usage or {}), **delta.usage}
        if delta.model_name:
            self.model_name = delta.model_name
        piece = self.scanner.feed(delta.text) if delta.text else ""
        if self.scanner.stopped:
            self.finish_reason = "stop"
        if piece:
            self._keep(piece)
        return piece

    def finish(self) -> str:
        """End of stream: release held-back text."""
        tail = self.scanner.flush()
        if tail:
            self._keep(tail)
        return tail

    @property
    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self._blocks) + "".join(self._recent)


def stream_parser(request: PreparedRequest) -> tuple[StreamDecoder, Callable[[str], StreamDelta]]:
    """A decoder for the handler's stream framing, and its record parser."""
    handler = request.handler
    if handler.stream is None:  # _prepare refuses to stream with such a handler
        raise ConfigurationError(f"content handler {handler.name!r} does not stream")
    return StreamDecoder(handler.stream.format), handler.parse_stream_record


def with_partial(exc: SageMakerError, assembler: StreamAssembler) -> SageMakerError:
    """Attach what was already emitted to a mid-stream failure."""
    if isinstance(exc, StreamError):
        exc.partial_text = assembler.text
        return exc
    if not assembler.emitted_any:
        return exc
    failure = StreamError(
        f"{exc} (after {len(assembler.text)} characters were streamed)",
        partial_text=assembler.text,
        status_code=exc.status_code,
        error_code=exc.error_code,
        request_id=exc.request_id,
    )
    return failure
