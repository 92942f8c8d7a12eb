"""Stateful sessions: keep one conversation on one model instance.

SageMaker opens a session when ``InvokeEndpoint`` carries
``SessionId: NEW_SESSION`` (the streaming API cannot open one) and returns
``NewSessionId: <id>; Expires=<UTC time>``; later calls, streamed or not, send
that id, and a ``{"requestType": "CLOSE"}`` body ends it (``ClosedSessionId``).

>>> with chat.open_session() as session:          # doctest: +SKIP
...     session.invoke("Hi, I'm Ada")
...     session.invoke("What's my name?")         # same instance, same KV cache
"""

from __future__ import annotations

from typing import Any

from sm_llm.engine.sessions import Session

__all__ = ["Session", "close_session", "open_session"]


def open_session(adapter: Any) -> Session:
    """Open a session on the adapter's endpoint (``adapter.open_session()``)."""
    return adapter.open_session()  # type: ignore[no-any-return]


def close_session(adapter: Any, session_id: str) -> str | None:
    """Close a session; returns the ``ClosedSessionId`` the endpoint reported."""
    return adapter.engine.close_session(session_id)  # type: ignore[no-any-return]
