"""Campaigns of asynchronous jobs on a :class:`~sm_llm.engine.ledger.JobLedger`.

:func:`ledger_submit` records a job before ``InvokeEndpointAsync`` (so no crash loses
it) under a key (so a re-run submits nothing twice) and names its output itself (so a
job accepted just before a crash is found in S3). :func:`~sm_llm.engine.ledger_wait.wait_ledger`
waits for every unfinished job of a ledger, from the ledger alone:

- with ``notification_queue_url``, it long-polls SQS and completes the jobs the
  messages name (one S3 ``GET`` for the output, none for a failure); S3 is checked only
  for a job without news after ``notification_fallback_seconds``, or for every job
  when the queue has been silent that long;
- without, each job's output (then failure) object is polled on its backoff schedule;
- a job left in ``submitting`` by a dead process is looked for in S3 and sent again
  (same ``InferenceId``, same output name) only when nothing shows SageMaker took it
  after ``ledger.resubmit_after`` seconds.

Every outcome is written to the ledger (the first writer wins), so several processes
may wait on one ledger: none completes a job twice, none loses a result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._core.request import PreparedRequest
from sm_llm._routing import ASYNC
from sm_llm.engine import jobs
from sm_llm.engine.jobs import Done, InferenceJob
from sm_llm.engine.ledger import JobLedger, LedgerEntry, new_job_id
from sm_llm.errors import ConfigurationError, RequestValidationError

__all__ = ["AdapterFor", "CampaignStats", "job_from_entry", "ledger_submit", "request_key"]

AdapterFor = Callable[[int], Any]
"""A ledger model id → the adapter that reads its jobs (``engine``, ``handler``)."""


@dataclass(slots=True)
class CampaignStats:
    """What one wait cost (filled by :func:`wait_ledger`)."""

    s3_requests: int = 0
    sqs_receives: int = 0
    notifications: int = 0
    resubmits: int = 0
    completed_here: int = 0
    completed_elsewhere: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class _Exists(Exception):
    """The key was recorded meanwhile (another process)."""


def request_key(request: PreparedRequest) -> str:
    """The default key of a job: a hash of its endpoint, parameters and body — the same
    request submitted again (a re-run of the script) is the same job. The ``InferenceId``
    (fresh for every rendering) is left out."""
    params = {k: v for k, v in request.params.items() if k not in ("Body", "InferenceId")}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(b"\0" + bytes(request.params.get("Body") or b""))
    return digest.hexdigest()


def _prepared(entry: LedgerEntry, adapter: Any) -> PreparedRequest:
    return PreparedRequest(ASYNC, {"EndpointName": entry.endpoint}, entry.stop, adapter.handler)


def job_from_entry(entry: LedgerEntry, adapter: Any) -> InferenceJob:
    """The :class:`InferenceJob` of a ledger entry (settled when the entry is finished)."""
    job = InferenceJob(
        engine=adapter.engine, adapter=adapter, request=_prepared(entry, adapter),
        config=AsyncInferenceConfig(**entry.config), inference_id=entry.inference_id,
        output_location=entry.output_location or "", failure_location=entry.failure_location,
        input_location=entry.input_location,
        submitted_at=datetime.fromtimestamp(entry.created, UTC),
    )
    job.ledger_id = entry.id
    if entry.state == "completed":
        metadata = {"content_type": entry.content_type, "inference_id": entry.inference_id,
                    "output_location": entry.output_location}
        job.settle(Done(generation=adapter.engine.replies.generation(job.request_like, entry.output or b"", metadata)))
    elif entry.finished:
        job.settle(Done(failure=entry.error or entry.state))
    return job


def ledger_submit(
    adapter: Any, request: PreparedRequest, config: AsyncInferenceConfig, ledger: JobLedger,
    *, model: int, key: str | None = None,
) -> InferenceJob:
    """Submit ``request`` as a job of ``ledger`` (model configuration id ``model``); a key
    already recorded returns its job without sending anything."""
    if config.filename is not None:
        raise ConfigurationError(
            "filename is chosen by the job ledger (<job id>.out) so that a crash cannot lose a job: "
            "leave AsyncInferenceConfig.filename unset when submitting with ledger="
        )
    key = key or request_key(request)
    found = ledger.by_key(key)
    if found is not None:
        return job_from_entry(found, adapter)
    job_id, endpoint = new_job_id(), str(request.params["EndpointName"])
    out_dir, fail_dir = ledger.output_dirs(endpoint)
    if config.s3_output_path_extension:  # the folders learnt belong to other jobs' extension
        out_dir = fail_dir = None

    def record(params: dict[str, Any], body: bytes | None, input_location: str | None) -> None:
        added = ledger.add(
            job_id=job_id, key=key, model=model, endpoint=endpoint, params=params, body=body,
            stop=request.stop, config=config.model_dump(), inference_id=str(params["InferenceId"]),
            input_location=input_location,
            output_location=f"{out_dir}{job_id}.out" if out_dir else None,
            failure_location=f"{fail_dir}{job_id}-error.out" if fail_dir else None,
        )
        if added is None:
            raise _Exists

    try:
        job = jobs.submit(adapter.engine, request, config, adapter=adapter, name=job_id, record=record)
    except _Exists:
        existing = ledger.by_key(key)
        assert existing is not None
        return job_from_entry(existing, adapter)
    except (RequestValidationError, ConfigurationError):
        ledger.forget(job_id)  # refused: nothing will ever run
        raise
    ledger.accepted(job_id, job.inference_id, job.output_location, job.failure_location)
    job.ledger_id = job_id
    return job
