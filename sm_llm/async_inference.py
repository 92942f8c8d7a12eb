"""Asynchronous inference (``InvokeEndpointAsync``) as jobs: submit, poll, resume.

SageMaker takes the request (up to 1 GB through S3, or ≤ 128,000 bytes inline),
answers 202 at once, runs it for up to an hour and writes the container's reply to
an output object, or an error to a failure object. Here that becomes an
:class:`InferenceJob`::

    job = submit(llm, "summarise ...")            # or llm.submit(...)
    job.status()                                  # "pending" | "completed" | "failed"
    text = job.result(timeout=900)                # str for an LLM, AIMessage for chat
    InferenceJob.from_dict(job.to_dict(), llm=llm).result()   # in another process

Polling starts ``poll_interval`` after submission and backs off by ``poll_backoff``
up to ``max_poll_interval``; every wait ends at its deadline. :func:`wait_all` polls
many jobs on one shared schedule. The jobs themselves live in :mod:`sm_llm.engine`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sm_llm._async_config import AsyncInferenceConfig
from sm_llm.engine.jobs import InferenceJob, JobStatus
from sm_llm.engine.polling import await_all, wait_all

__all__ = [
    "AsyncInferenceConfig",
    "InferenceJob",
    "JobStatus",
    "asubmit",
    "await_all",
    "close_s3_clients",
    "submit",
    "wait_all",
]


def submit(
    adapter: Any, input: Any, *, config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
    stop: list[str] | None = None, **kwargs: Any,
) -> InferenceJob:
    """Render ``input`` with ``adapter``, upload it (or send it inline) and call
    ``InvokeEndpointAsync``; returns at once with the :class:`InferenceJob`.
    ``config`` defaults to ``adapter.async_inference``. Everything is validated
    before the first request. The same as ``adapter.submit(input, ...)``."""
    return adapter.submit(input, config=config, stop=stop, **kwargs)  # type: ignore[no-any-return]


async def asubmit(
    adapter: Any, input: Any, *, config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
    stop: list[str] | None = None, **kwargs: Any,
) -> InferenceJob:
    """Async :func:`submit` (the blocking calls run on the adapter's executor)."""
    return await adapter.asubmit(input, config=config, stop=stop, **kwargs)  # type: ignore[no-any-return]


def close_s3_clients(adapter: Any) -> None:
    """Close the S3 clients async inference made for ``adapter`` (``adapter.close()`` does
    it too: they belong to its transport)."""
    adapter.close()
