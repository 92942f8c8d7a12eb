"""Stateful sessions, handled at the endpoint layer like the service does."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["SessionStore"]

_MAX_SESSIONS = 10_000


class SessionStore:
    """Open sessions per endpoint with an expiry (thread-safe)."""

    def __init__(self, ttl_s: float = 1200.0, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[tuple[str, str], float] = {}

    def open(self, endpoint: str) -> str:
        """Open a session; returns the ``NewSessionId`` header value ``<id>; Expires=<UTC>``."""
        session_id = f"sess-{uuid.uuid4().hex}"
        now = self._clock()
        expires = now + self.ttl_s
        with self._lock:
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            if len(self._expiry) >= _MAX_SESSIONS:
                oldest = min(self._expiry, key=self._expiry.__getitem__)
                del self._expiry[oldest]
            self._expiry[(endpoint, session_id)] = expires
        stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{session_id}; Expires={stamp}"

    def is_open(self, endpoint: str, session_id: str) -> bool:
        """Whether ``session_id`` is a live session of ``endpoint``."""
        with self._lock:
            expiry = self._expiry.get((endpoint, session_id))
            return expiry is not None and expiry > self._clock()

    def close(self, endpoint: str, session_id: str) -> bool:
        """Close a session; False when it was not open."""
        with self._lock:
            expiry = self._expiry.pop((endpoint, session_id), None)
            return expiry is not None and expiry > self._clock()
