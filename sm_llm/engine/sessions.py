"""Stateful sessions: keep one conversation on one model instance.

SageMaker opens a session when ``InvokeEndpoint`` carries
``SessionId: NEW_SESSION`` (the streaming API cannot open one) and returns
``NewSessionId: <id>; Expires=<UTC time>``; later calls, streamed or not, send
that id, and a ``{"requestType": "CLOSE"}`` body ends it (``ClosedSessionId``).
The open/close bodies are LMI's (``{"requestType": "NEW_SESSION" | "CLOSE"}``).

>>> with chat.open_session() as session:          # doctest: +SKIP
...     session.invoke("Hi, I'm Ada")
...     session.invoke("What's my name?")         # same instance, same KV cache
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sm_llm._core.request import RequestSpec
from sm_llm._routing import INVOKE
from sm_llm.errors import ResponseParseError

__all__ = ["CLOSE", "OPEN", "Session", "SessionHost", "parse_new_session", "session_params"]

T = TypeVar("T")

OPEN = json.dumps({"requestType": "NEW_SESSION"}).encode()
CLOSE = json.dumps({"requestType": "CLOSE"}).encode()


def session_params(spec: RequestSpec, body: bytes, session_id: str) -> dict[str, Any]:
    """``InvokeEndpoint`` parameters that open (``NEW_SESSION``) or close a session."""
    routing = spec.routing.merged({"session_id": session_id}).to_params(
        INVOKE, default_attributes=spec.handler.custom_attributes
    )
    return {
        "EndpointName": spec.endpoint_name,
        "Body": body,
        "ContentType": "application/json",
        "Accept": "application/json",
        **routing,
    }


def parse_new_session(value: str | None) -> tuple[str, datetime | None]:
    """``NewSessionId: <id>; Expires=<UTC time>`` → the id and its expiry."""
    if not value:
        raise ResponseParseError(
            "the endpoint did not open a session (no NewSessionId in the reply); "
            "its container must support stateful sessions"
        )
    session_id, _, rest = value.partition(";")
    expires: datetime | None = None
    rest = rest.strip()
    if rest.startswith("Expires="):
        try:
            expires = datetime.strptime(rest[8:], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            expires = None
    return session_id.strip(), expires


class SessionHost(Protocol):
    """What a session needs of the engine that opened it (:class:`~sm_llm.engine.Engine` is
    one). Sessions depend on this shape, never on the engine module, which imports them."""

    def close_session(self, session_id: str) -> str | None:
        """Close ``session_id`` on the endpoint; the ``ClosedSessionId`` it reported."""
        ...

    def to_thread(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run blocking ``fn`` on the worker pool without blocking the event loop."""
        ...


class Session:
    """An open session: a runnable bound to ``session_id``, and ``close()``.

    ``session.model`` is the adapter bound to the session (usable in chains);
    ``invoke`` / ``stream`` and their async twins delegate to it.
    """

    def __init__(
        self,
        engine: SessionHost,
        session_id: str,
        expires_at: datetime | None,
        *,
        bind: Callable[[str], Any],
        adapter: Any = None,
    ) -> None:
        self.engine = engine
        self.adapter = adapter
        """The adapter that opened the session, if any."""
        self.session_id = session_id
        self.expires_at = expires_at
        self.closed_session_id: str | None = None
        self.model: Any = bind(session_id)

    def __repr__(self) -> str:
        return f"Session(session_id={self.session_id!r}, expires_at={self.expires_at!r})"

    def invoke(self, value: Any, config: Any = None, **kwargs: Any) -> Any:
        """Invoke the adapter within this session."""
        return self.model.invoke(value, config, **kwargs)

    async def ainvoke(self, value: Any, config: Any = None, **kwargs: Any) -> Any:
        """Async invoke within this session."""
        return await self.model.ainvoke(value, config, **kwargs)

    def stream(self, value: Any, config: Any = None, **kwargs: Any) -> Any:
        """Stream within this session (the streaming API accepts an open session's id)."""
        return self.model.stream(value, config, **kwargs)

    def astream(self, value: Any, config: Any = None, **kwargs: Any) -> Any:
        """Async stream within this session."""
        return self.model.astream(value, config, **kwargs)

    def close(self) -> str | None:
        """Close the session on the endpoint (idempotent)."""
        if self.closed_session_id is None:
            self.closed_session_id = self.engine.close_session(self.session_id) or self.session_id
        return self.closed_session_id

    async def aclose(self) -> str | None:
        """Async ``close``."""
        return await self.engine.to_thread(self.close)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
