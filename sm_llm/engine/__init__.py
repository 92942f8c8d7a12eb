"""The engine under the adapters: calls, streams, asynchronous jobs and sessions over one
:class:`~sm_llm.transports.Transport` (see :class:`Engine`)."""

from sm_llm.engine.engine import Engine, Reply
from sm_llm.engine.jobs import InferenceJob, Replies
from sm_llm.engine.sessions import Session

__all__ = ["Engine", "InferenceJob", "Replies", "Reply", "Session"]
