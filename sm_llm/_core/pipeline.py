"""The stream pipeline, sans-IO: ``PayloadPart`` bytes in, steps out.

bytes → :class:`~sm_llm._core.decoding.StreamDecoder` (the handler's framing) →
``handler.parse_stream_record`` → :class:`StreamAssembler` (literal stop sequences,
finish reason, usage, partial text) → :class:`StreamPiece` steps and one final
:class:`StreamEnd`. A failure comes out as the raised error, with ``partial_text`` set
to what was already emitted. The engine's sync and async loops, and the tests, all run
streams through :class:`StreamPipeline`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sm_llm._core.decoding import StreamDecoder
from sm_llm._stop import StopScanner
from sm_llm.errors import ConfigurationError, SageMakerError, StreamError
from sm_llm.handlers import ContentHandler, StreamDelta

__all__ = ["StreamAssembler", "StreamEnd", "StreamPiece", "StreamPipeline", "StreamStep", "with_partial"]


@dataclass(frozen=True, slots=True)
class StreamPiece:
    """What one stream record contributes: the text that may be emitted now (held-back
    text of a possible stop sequence excluded) and its tool-call deltas."""

    text: str
    tool_call_chunks: list[dict[str, Any]]
    delta: StreamDelta


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last step: held-back text released, and what the stream reported overall."""

    text: str
    finish_reason: str | None
    usage: dict[str, int] | None
    model_name: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False
    """A stop sequence ended the stream (``finish_reason`` is then ``"stop"``)."""


StreamStep = StreamPiece | StreamEnd


class StreamAssembler:
    """Sans-IO: stream deltas in, text to emit out, with literal stop handling.

    The emitted text is kept for ``partial_text`` in blocks of joined pieces, so a
    50 MB stream of small tokens does not hold a million small strings.
    """

    __slots__ = ("_blocks", "_recent", "emitted_any", "finish_reason", "model_name", "scanner", "usage")

    _BLOCK = 512

    def __init__(self, stop: list[str] | None) -> None:
        self.scanner = StopScanner(stop)
        self._blocks: list[str] = []
        self._recent: list[str] = []
        self.emitted_any = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.model_name: str | None = None

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


class StreamPipeline:
    """One stream: feed it bytes, take its steps; ``partial_text`` is what was emitted.

    :meth:`steps` / :meth:`asteps` run the whole loop over an iterable of parts (what the
    engine does); :meth:`feed` and :meth:`close` are its two halves for other drivers.
    After the parts, :meth:`end` gives the :class:`StreamEnd`. ``parse`` replaces the
    handler's record parser (tests memoise it).
    """

    __slots__ = ("_decoder", "_parse", "assembler", "metadata")

    def __init__(
        self,
        handler: ContentHandler,
        stop: list[str] | None = None,
        *,
        parse: Callable[[str], StreamDelta] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if handler.stream is None:
            raise ConfigurationError(f"content handler {handler.name!r} does not stream")
        self._decoder = StreamDecoder(handler.stream.format)
        self._parse = parse or handler.parse_stream_record
        self.assembler = StreamAssembler(stop)
        self.metadata: dict[str, Any] = metadata or {}
        """Reply headers (variant, custom attributes...), set when the stream opens."""

    @property
    def done(self) -> bool:
        """The stream said ``[DONE]`` or reached a stop sequence: read no further."""
        return self._decoder.done or self.assembler.stopped

    @property
    def partial_text(self) -> str:
        """Everything emitted so far."""
        return self.assembler.text

    def _step(self, record: str) -> StreamPiece:
        delta = self._parse(record)
        return StreamPiece(self.assembler.add(delta), delta.tool_call_chunks, delta)

    def feed(self, data: bytes) -> Iterator[StreamPiece]:
        """The steps of the records ``data`` completes, lazily: a bad record raises after
        the steps before it were taken. Nothing more once :attr:`done`."""
        if self.done:
            return
        for record in self._decoder.feed(data):
            yield self._step(record)
            if self.assembler.stopped:
                return

    def close(self) -> Iterator[StreamPiece]:
        """End of input: the steps of a last record left without its line end."""
        if self.done:
            return
        for record in self._decoder.close():
            yield self._step(record)
            if self.assembler.stopped:
                return

    def failure(self, exc: SageMakerError) -> SageMakerError:
        """``exc`` with what was already emitted attached (see :func:`with_partial`)."""
        return with_partial(exc, self.assembler)

    def steps(self, parts: Iterable[bytes]) -> Iterator[StreamPiece]:
        """Every step of ``parts``; stops reading at ``[DONE]`` or a stop sequence.

        :meth:`feed` and :meth:`close` inlined: once per token, a generator per part and
        the :attr:`done` property cost more than the rest of the loop."""
        decoder, parse, assembler, scanner = self._decoder, self._parse, self.assembler, self.assembler.scanner
        try:
            for part in parts:
                for record in decoder.feed(part):
                    delta = parse(record)
                    yield StreamPiece(assembler.add(delta), delta.tool_call_chunks, delta)
                    if scanner.stopped:
                        return
                if decoder.done:
                    return
            yield from self.close()
        except SageMakerError as exc:
            raise self.failure(exc) from exc.__cause__ or exc

    async def asteps(self, parts: AsyncIterable[bytes]) -> AsyncIterator[StreamPiece]:
        """Async :meth:`steps` (the same steps, from async parts)."""
        decoder, parse, assembler, scanner = self._decoder, self._parse, self.assembler, self.assembler.scanner
        try:
            async for part in parts:
                for record in decoder.feed(part):
                    delta = parse(record)
                    yield StreamPiece(assembler.add(delta), delta.tool_call_chunks, delta)
                    if scanner.stopped:
                        return
                if decoder.done:
                    return
            for step in self.close():
                yield step
        except SageMakerError as exc:
            raise self.failure(exc) from exc.__cause__ or exc

    def end(self) -> StreamEnd:
        """The last step: held-back text and what the stream reported."""
        assembler = self.assembler
        tail = assembler.finish()
        return StreamEnd(
            tail, assembler.finish_reason, assembler.usage, assembler.model_name,
            self.metadata, assembler.stopped,
        )
