"""Literal stop sequences, whole and across stream chunks (no regex, ever).

``stop=["."]`` stops at the first full stop and ``stop=["?"]`` at the first
question mark — characters a regex-based splitter mangles. In a stream a stop
sequence may straddle chunks (``"ST"`` then ``"OP"``), so :class:`StopScanner`
holds back just enough text to recognise it before yielding.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["StopScanner", "truncate_at_stop"]


def _earliest(text: str, stops: Sequence[str]) -> int:
    cut = -1
    for stop in stops:
        if not stop:
            continue
        index = text.find(stop)
        if index != -1 and (cut == -1 or index < cut):
            cut = index
    return cut


def truncate_at_stop(text: str, stops: Sequence[str] | None) -> tuple[str, bool]:
    """The text before the earliest stop sequence, and whether one was found."""
    if not stops:
        return text, False
    cut = _earliest(text, stops)
    return (text, False) if cut == -1 else (text[:cut], True)


class StopScanner:
    """Incremental stop matching: feed text pieces, get the text that is safe to emit."""

    __slots__ = ("_hold", "_pending", "_stops", "stopped")

    def __init__(self, stops: Sequence[str] | None) -> None:
        self._stops = [s for s in (stops or ()) if s]
        # Longest suffix that may still grow into a stop sequence.
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Return the text that can be emitted now; after a stop, always ``""``."""
        if self.stopped:
            return ""
        if not self._stops:
            return piece
        text = self._pending + piece
        cut = _earliest(text, self._stops)
        if cut != -1:
            self.stopped = True
            self._pending = ""
            return text[:cut]
        keep = self._partial_suffix(text)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that begins some stop sequence."""
        for size in range(min(self._hold, len(text)), 0, -1):
            tail = text[-size:]
            if any(stop.startswith(tail) for stop in self._stops):
                return size
        return 0

    def flush(self) -> str:
        """At the end of the stream, release what was held back."""
        if self.stopped:
            return ""
        rest, self._pending = self._pending, ""
        return rest
