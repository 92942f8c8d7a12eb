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

Campaigns of many jobs keep them in a :class:`JobLedger` (an SQLite file)::

    ledger = JobLedger("jobs.db")
    for doc in docs:
        submit(llm, doc, ledger=ledger)          # a re-run submits nothing twice
    results = wait_all(ledger)                   # any process, after any crash
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._routing import ASYNC
from sm_llm.config import load_config
from sm_llm.engine.campaign import CampaignStats, ledger_submit
from sm_llm.engine.jobs import InferenceJob, JobStatus, resolve_config
from sm_llm.engine.ledger import JobLedger, JobState, LedgerEntry
from sm_llm.engine.ledger_wait import run_campaign as _run_campaign
from sm_llm.engine.ledger_wait import wait_ledger
from sm_llm.engine.polling import Progress
from sm_llm.engine.polling import await_all as _await_jobs
from sm_llm.engine.polling import wait_all as _wait_jobs
from sm_llm.errors import ConfigurationError

__all__ = [
    "AsyncInferenceConfig",
    "CampaignStats",
    "InferenceJob",
    "JobLedger",
    "JobState",
    "JobStatus",
    "LedgerEntry",
    "asubmit",
    "await_all",
    "close_s3_clients",
    "run_campaign",
    "submit",
    "wait_all",
]


def submit(
    adapter: Any, input: Any, *, config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
    stop: list[str] | None = None, ledger: JobLedger | None = None, key: str | None = None,
    **kwargs: Any,
) -> InferenceJob:
    """Render ``input`` with ``adapter``, upload it (or send it inline) and call
    ``InvokeEndpointAsync``; returns at once with the :class:`InferenceJob`.
    ``config`` defaults to ``adapter.async_inference``. Everything is validated
    before the first request. The same as ``adapter.submit(input, ...)``.

    With ``ledger``, the job is recorded there before it is sent, under ``key`` (default:
    a hash of the rendered request): a key already in the ledger returns its job and sends
    nothing, so a campaign script can simply be run again after a crash."""
    if ledger is None:
        return adapter.submit(input, config=config, stop=stop, **kwargs)  # type: ignore[no-any-return]
    resolved = resolve_config(adapter.async_inference, config)
    request = adapter.prepare_request(input, operation=ASYNC, stop=stop, **kwargs)
    model = ledger.model_id(adapter.to_config())
    ledger.adapters.setdefault(model, adapter)
    return ledger_submit(adapter, request, resolved, ledger, model=model, key=key)


async def asubmit(
    adapter: Any, input: Any, *, config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
    stop: list[str] | None = None, ledger: JobLedger | None = None, key: str | None = None,
    **kwargs: Any,
) -> InferenceJob:
    """Async :func:`submit` (the blocking calls run on the adapter's executor)."""
    if ledger is None:
        return await adapter.asubmit(input, config=config, stop=stop, **kwargs)  # type: ignore[no-any-return]
    return await adapter.engine.to_thread(  # type: ignore[no-any-return]
        lambda: submit(adapter, input, config=config, stop=stop, ledger=ledger, key=key, **kwargs)
    )


def run_campaign(
    adapter: Any,
    inputs: Sequence[Any],
    *,
    ledger: JobLedger,
    keys: Sequence[str] | None = None,
    config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
    stop: list[str] | None = None,
    concurrency: int = 8,
    timeout: float | None = None,
    progress: Progress = False,
    return_exceptions: bool = True,
    generations: bool = False,
    stats: CampaignStats | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Submit every input as a job of ``ledger`` (``concurrency`` submissions at a time)
    *while* waiting for them; their results (or errors) in input order.

    The same as ``submit(...)`` for each input then ``wait_all(ledger)``, except that
    waiting starts with the first submission: with ``notification_queue_url`` the
    notifications of jobs finished early are read while later jobs are still being sent,
    so a campaign ends shortly after its slowest job instead of after the sending plus
    the reading of a backlog. ``keys[i]`` is input ``i``'s ledger key (default: a hash of
    the rendered request), so running the same campaign again after a crash submits
    nothing twice. The ledger's other unfinished jobs are waited for too. A submission
    refused (or that could not be sent) fills its slot with the error; the others go on.
    ``timeout`` bounds the whole run (default: the jobs' largest ``config.timeout`` after
    the last submission)."""
    if keys is not None and len(keys) != len(inputs):
        raise ConfigurationError(f"{len(keys)} keys for {len(inputs)} inputs: give one key per input")
    items = list(inputs)

    def one(i: int) -> InferenceJob:
        return submit(adapter, items[i], config=config, stop=stop, ledger=ledger,
                      key=keys[i] if keys is not None else None, **kwargs)

    return _run_campaign(
        one, len(items), ledger, _adapter_for(ledger), concurrency=concurrency, timeout=timeout,
        progress=progress, return_exceptions=return_exceptions, generations=generations, stats=stats,
    )


def _adapter_for(ledger: JobLedger) -> Any:
    """Ledger model id → adapter: this process's, else one rebuilt from the stored config."""

    def get(model: int) -> Any:
        adapter = ledger.adapters.get(model)
        if adapter is None:
            adapter = ledger.adapters[model] = load_config(ledger.model_config(model))
        return adapter

    return get


def wait_all(
    jobs: Iterable[InferenceJob] | JobLedger,
    timeout: float | None = None,
    progress: Progress = False,
    return_exceptions: bool = True,
    *,
    generations: bool = False,
    stats: CampaignStats | None = None,
) -> list[Any]:
    """Wait for every job on one polling schedule; results in input order.

    Each slot holds the job's result (``generations=True``: its generation) or, with
    ``return_exceptions``, its error: :class:`~sm_llm.errors.AsyncInferenceError` for a
    failure, :class:`~sm_llm.errors.JobTimeoutError` when the deadline (``timeout``,
    default the jobs' largest ``config.timeout``) came first.

    ``jobs`` may be a :class:`JobLedger`: every job it holds, in submission order, the
    unfinished ones waited for (through SQS notifications when the jobs' config names a
    queue) and their outcomes written back; ``stats`` (a :class:`CampaignStats`) counts
    the requests it took.
    """
    if isinstance(jobs, JobLedger):
        return wait_ledger(
            jobs, _adapter_for(jobs), timeout=timeout, progress=progress,
            return_exceptions=return_exceptions, generations=generations, stats=stats,
        )
    return _wait_jobs(jobs, timeout, progress, return_exceptions, generations=generations)


async def await_all(
    jobs: Iterable[InferenceJob] | JobLedger,
    timeout: float | None = None,
    progress: Progress = False,
    return_exceptions: bool = True,
    *,
    generations: bool = False,
    stats: CampaignStats | None = None,
) -> list[Any]:
    """Async :func:`wait_all` (a ledger is waited for on a worker thread)."""
    if isinstance(jobs, JobLedger):
        return await asyncio.to_thread(
            wait_all, jobs, timeout, progress, return_exceptions, generations=generations, stats=stats
        )
    return await _await_jobs(jobs, timeout, progress, return_exceptions, generations=generations)


def close_s3_clients(adapter: Any) -> None:
    """Close the S3 clients async inference made for ``adapter`` (``adapter.close()`` does
    it too: they belong to its transport)."""
    adapter.close()
