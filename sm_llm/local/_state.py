"""State shared by the request handlers: recorded requests, counters, faults, sessions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from sm_llm.local._capacity import CapacityState
from sm_llm.local._config import FaultConfig, ServerConfig
from sm_llm.local._containers import ContainerRequest
from sm_llm.local._faults import FaultState
from sm_llm.local._routing import Router, Target
from sm_llm.local._sessions import SessionStore

__all__ = ["AsyncAccepted", "AsyncBackend", "RecordedRequest", "ServerState", "new_state"]


@dataclass
class RecordedRequest:
    """One invocation as the server saw and answered it.

    ``headers`` is a plain ``dict`` with lower-cased names. ``status`` is 0 until
    answered (and stays 0 for an injected connection reset). ``stream_completed`` is
    ``None`` for non-streaming replies, else True once the whole event stream
    (including a final exception frame, if any: see ``stream_error``) was written.
    ``client_disconnected`` is True when writing the stream failed because the client
    had gone away. On the OpenAI-compatible route ``operation`` is ``"OpenAIChatCompletions"``,
    ``component`` the inference component named in the path, and the ``authorization``
    header is recorded without its token.
    """

    operation: str
    endpoint_name: str
    headers: dict[str, str]
    body: bytes
    request_id: str = ""
    status: int = 0
    error_code: str | None = None
    invoked_variant: str | None = None
    stream_completed: bool | None = None
    stream_error: str | None = None
    client_disconnected: bool = False
    component: str | None = None


@dataclass(frozen=True)
class AsyncAccepted:
    """What an async backend answers: the 202 body and location headers."""

    inference_id: str
    output_location: str
    failure_location: str | None = None


class AsyncBackend(Protocol):
    """Runs ``InvokeEndpointAsync`` jobs (e.g. against an S3 emulator)."""

    def submit(
        self, *, endpoint_name: str, target: Target, request: ContainerRequest, request_id: str
    ) -> AsyncAccepted:
        """Queue one job; raise :class:`ServiceError` to refuse it."""
        ...


@dataclass
class ServerState:
    """Everything the request handlers share (thread-safe where it is mutated)."""

    config: ServerConfig
    router: Router
    faults: FaultState
    sessions: SessionStore
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    capacity: CapacityState = field(default_factory=CapacityState)
    async_backend: AsyncBackend | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    peak_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def enter(self) -> None:
        """Count one more request in flight."""
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        """Count one request done."""
        with self._lock:
            self.in_flight -= 1

    def reset_stats(self) -> None:
        """Reset the peak to the current in-flight count."""
        with self._lock:
            self.peak_in_flight = self.in_flight

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; True when the server is stopping meanwhile."""
        if seconds <= 0:
            return self.stopping.is_set()
        return self.stopping.wait(seconds)


def new_state(
    config: ServerConfig, router: Router, faults: FaultConfig | None
) -> ServerState:
    """Shared state for a server built from ``config``."""
    return ServerState(
        config=config,
        router=router,
        faults=FaultState(faults if faults is not None else config.faults),
        sessions=SessionStore(config.session_ttl_s),
        credentials={key: secret.get_secret_value() for key, secret in config.credentials.items()},
    )

