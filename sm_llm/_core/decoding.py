"""Sans-IO incremental decoder for SageMaker response streams.

``InvokeEndpointWithResponseStream`` hands over the container's byte stream as
``PayloadPart`` chunks whose boundaries mean nothing: a record or a multi-byte
UTF-8 character may be cut at any byte, and one part may hold several records.
:class:`StreamDecoder` takes those bytes in arrival order and returns complete
records as ``str``; it does no I/O. Its output depends only on the concatenated
bytes, never on where they were split.

Formats:

* ``"jsonl"`` -- every non-blank line is a record (LMI ``application/jsonlines``).
* ``"sse"`` -- server-sent events (TGI ``data:{...}``, vLLM/LMI ``data: {...}``).
* ``"raw"`` -- no framing: the text decoded so far, never splitting a character.

Lines end with ``\\n`` or ``\\r\\n`` (a lone ``\\r`` is not a line end). Lines are
decoded as strict UTF-8: invalid bytes raise :class:`~sm_llm.errors.StreamError`
rather than being replaced, since every known container emits valid UTF-8 JSON
and silent U+FFFD would corrupt the text. Only ``\\n`` splits a line, so U+2028,
U+2029 and other Unicode line breaks stay inside their record.

Any line (record) longer than ``max_record_bytes`` raises ``StreamError``, however
it was split, so a stream without newlines cannot grow memory without bound.
Errors are split-independent too: every record before the faulty line is
returned first, and the ``StreamError`` comes from the next ``feed``/``close``
call (at once when there is nothing to return). Every ``StreamError`` is final.
"""

from __future__ import annotations

import codecs
from typing import NoReturn

from sm_llm._handler_spec import StreamFormat
from sm_llm.errors import StreamError

__all__ = ["StreamDecoder", "StreamFormat"]

_FORMATS = ("sse", "jsonl", "raw")
_SSE_FIELDS = ("event:", "id:", "retry:")
_SSE_BARE_FIELDS = frozenset(("event", "id", "retry", "data"))


class StreamDecoder:
    """Feed ``PayloadPart`` bytes as they arrive; get complete records back.

    SSE rules (pragmatic, not the full WHATWG event model):

    * each ``data:`` line is its own record, with one optional space after the
      colon removed. Consecutive ``data:`` lines are *not* joined: LMI's ``sse``
      formatter separates events with a single ``\\n``, so joining would glue
      JSON objects together. An empty ``data:`` line carries nothing and is skipped;
    * ``data: [DONE]`` (space optional) ends the stream: :attr:`done` becomes
      true, and everything after it, in this feed and later ones, is ignored;
    * comment lines (starting with ``:``), ``event:``/``id:``/``retry:`` lines and
      blank lines are skipped;
    * any other non-blank line is returned whole as a record, so a JSON-lines
      stream declared as ``sse`` (a misconfigured container) still decodes, and
      an unexpected line surfaces in the downstream parse error rather than
      vanishing.

    ``max_record_bytes`` bounds one line (``sse``/``jsonl``); ``raw`` keeps at
    most three pending bytes. Misuse (feeding after :meth:`close`) also raises
    ``StreamError``.
    """

    __slots__ = ("_buf", "_closed", "_done", "_error", "_format", "_max", "_raw")

    def __init__(
        self, stream_format: StreamFormat, *, max_record_bytes: int = 16 * 1024 * 1024
    ) -> None:
        if stream_format not in _FORMATS:
            raise ValueError(f"stream_format must be one of {_FORMATS}, not {stream_format!r}")
        if max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")
        self._format = stream_format
        self._max = max_record_bytes
        self._buf = bytearray()  # unterminated tail; never contains b"\n"
        self._done = False
        self._closed = False
        self._error: str | None = None  # raised once the records before it are out
        self._raw = (
            codecs.getincrementaldecoder("utf-8")("strict") if stream_format == "raw" else None
        )

    @property
    def done(self) -> bool:
        """True once an SSE ``data: [DONE]`` was seen; later input is ignored."""
        return self._done

    def feed(self, data: bytes) -> list[str]:
        """Add the next bytes of the stream; return the records they complete (maybe none)."""
        if self._error is not None:
            self._raise()
        if self._closed:
            raise StreamError("stream decoder fed after close()")
        if self._done or not data:
            return []
        if self._raw is not None:
            out = self._decode_raw(data, final=False)
        else:
            buf = self._buf
            last = data.rfind(b"\n")
            if last < 0:  # still inside one line: only the new bytes are searched
                buf += data
                if len(buf) > self._max:
                    self._error = self._too_long
                    self._raise()
                return []
            if buf:
                buf += data[:last]
                chunk = bytes(buf)
                buf.clear()
                buf += data[last + 1 :]
            elif last == len(data) - 1:  # the usual part: whole lines, nothing to copy
                chunk = data  # its final empty line is skipped like any blank line
            else:
                chunk = data[:last]
                buf += data[last + 1 :]
            out = self._lines(chunk)
            if len(buf) > self._max and not self._done and self._error is None:
                self._error = self._too_long
        if self._error is not None and not out:
            self._raise()
        return out

    def close(self) -> list[str]:
        """End of stream: return the last record even if it had no trailing newline.

        Raises ``StreamError`` if a ``raw`` stream ends inside a UTF-8 character.
        Calling it again returns ``[]``.
        """
        if self._error is not None:
            self._raise()
        if self._closed:
            return []
        self._closed = True
        if self._done:
            out = []
        elif self._raw is not None:
            out = self._decode_raw(b"", final=True)
        else:
            tail = bytes(self._buf)
            self._buf.clear()
            out = self._lines(tail) if tail else []
        if self._error is not None and not out:
            self._raise()
        return out

    @property
    def _too_long(self) -> str:
        return f"stream record exceeds max_record_bytes={self._max}"

    def _raise(self) -> NoReturn:
        self._buf.clear()
        self._closed = True
        raise StreamError(self._error or "stream decoder failed")

    def _decode_raw(self, data: bytes, *, final: bool) -> list[str]:
        assert self._raw is not None
        try:
            text = self._raw.decode(data, final)
        except UnicodeDecodeError as exc:  # keep the valid text before the bad byte
            self._error = f"invalid UTF-8 in stream: {exc.reason}"
            text = exc.object[: exc.start].decode("utf-8")
        return [text] if text else []

    def _lines(self, chunk: bytes) -> list[str]:
        """Records of the complete lines in ``chunk`` (which has no final newline).

        On an oversized line or invalid UTF-8, returns the records before it and
        leaves the error for the next call.
        """
        if len(chunk) > self._max:
            sizes = [len(line) for line in chunk.split(b"\n")]
            if max(sizes) > self._max:
                self._error = self._too_long
                bad = next(i for i, n in enumerate(sizes) if n > self._max)
                chunk = chunk[: sum(sizes[:bad]) + bad - 1] if bad else b""
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:  # keep the lines before the faulty one
            start = chunk.rfind(b"\n", 0, exc.start) + 1
            stop = chunk.find(b"\n", exc.start)
            faulty = chunk[start:] if stop < 0 else chunk[start:stop]
            self._error = f"invalid UTF-8 in stream record: {_utf8_fault(faulty)}"
            text = chunk[: start - 1].decode("utf-8") if start else ""
        lines = text.split("\n")
        if "\r" in text:  # CRLF line ends: drop one \r per line
            lines = [line[:-1] if line[-1:] == "\r" else line for line in lines]
        out: list[str] = []
        if self._format == "jsonl":
            for line in lines:
                if line and line.strip(" \t"):
                    out.append(line)
            return out
        for line in lines:
            if not line:
                continue
            head = line[:6]  # fast path: a JSON record, "data:{" (TGI) or "data: {"
            if head == "data:{":
                out.append(line[5:])
                continue
            if head == "data: " and line[6:7] == "{":
                out.append(line[6:])
                continue
            if head.startswith("data:"):
                value = line[6:] if line[5:6] == " " else line[5:]
                if value.strip() == "[DONE]":
                    self._done = True
                    self._error = None  # a fault after [DONE] is never reached
                    self._buf.clear()
                    break
                if value:
                    out.append(value)
            elif (  # a bare line: not blank, a comment or an ignored field
                line[0] != ":"
                and line.strip(" \t")
                and not line.startswith(_SSE_FIELDS)
                and line not in _SSE_BARE_FIELDS
            ):
                out.append(line)
        return out


def _utf8_fault(line: bytes) -> str:
    """Why ``line`` is not UTF-8, judged on the line alone so the message does not
    depend on what followed it in the same ``PayloadPart``."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return str(exc.reason)
    return "invalid byte sequence"  # pragma: no cover - the caller saw it fail
