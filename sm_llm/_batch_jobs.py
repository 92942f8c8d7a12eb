""":mod:`sm_llm.batch` through asynchronous inference: each record a job of a
:class:`~sm_llm.engine.ledger.JobLedger`, a window of ``concurrency`` outstanding jobs.

A record's job is keyed by its id and its rendered request (``batch:<id>:<request hash>``),
so a rerun finds the jobs an earlier run submitted (whatever state they reached) and sends
none of them again; a record whose prompt or parameters changed is a new job. Jobs are
waited for as :func:`~sm_llm.async_inference.wait_all` waits for a ledger (SQS notifications
when the config names a queue, else S3 polling), one round at a time, and each finished job
becomes the same output line as a real-time call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sm_llm._adapter import AdapterBase
from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._batch_files import (
    Record,
    error_line,
    model_input,
    record_key,
    reply_line,
    success_line,
)
from sm_llm._generative import GenerativeBase
from sm_llm._routing import ASYNC
from sm_llm.config import load_config
from sm_llm.engine.campaign import job_from_entry, ledger_submit, request_key
from sm_llm.engine.jobs import resolve_config
from sm_llm.engine.ledger import JobLedger, LedgerEntry
from sm_llm.engine.ledger_wait import JobWatch
from sm_llm.errors import ConfigurationError, RequestValidationError, SageMakerError

__all__ = ["jobs_model", "run_jobs"]

_SUBMITTERS = 16
"""``InvokeEndpointAsync`` calls (and uploads) at once while the window fills."""


def jobs_model(model: Any) -> tuple[GenerativeBase, dict[str, Any]]:
    """The adapter under ``model`` (a binding's arguments kept, the outer ones winning),
    checked for asynchronous inference before anything is read or sent."""
    bound: dict[str, Any] = {}
    while not isinstance(model, AdapterBase) and hasattr(model, "bound"):
        bound = {**(getattr(model, "kwargs", None) or {}), **bound}
        model = model.bound
    if not isinstance(model, GenerativeBase):
        raise ConfigurationError(
            f"async_inference=True needs a SageMakerLLM or ChatSageMaker (or one bound with "
            f"arguments), not {type(model).__name__}"
        )
    if model.async_inference is None:
        raise ConfigurationError(
            "async_inference=True needs the model's async_inference config: "
            "AsyncInferenceConfig(input_s3_uri='s3://bucket/prefix/') or inline_body=True "
            "(from the shell: --input-s3-uri or --inline, or async_inference: in --config)"
        )
    config = resolve_config(model.async_inference, None)
    if config.filename is not None:
        raise ConfigurationError(
            "a batch names each job's output itself (<job id>.out): leave async_inference.filename unset"
        )
    return model, bound


@dataclass(slots=True)
class _Outstanding:
    record_id: Any
    deadline: float
    timeout: float


class _Jobs:
    """One run: the window (ledger job id → record), the submitters, the watch."""

    def __init__(self, adapter: GenerativeBase, bound: dict[str, Any], ledger: JobLedger,
                 emit: Callable[[dict[str, Any]], None], clock: Callable[[], float]) -> None:
        self.adapter, self.bound, self.ledger, self.emit, self.clock = adapter, bound, ledger, emit, clock
        self.config: AsyncInferenceConfig = resolve_config(adapter.async_inference, None)
        self.model = ledger.model_id(adapter.to_config())
        ledger.adapters.setdefault(self.model, adapter)
        self.built: list[Any] = []
        self.watch = JobWatch(ledger, self.adapter_for)
        self.window: dict[str, _Outstanding] = {}
        self.accepted_once = False

    def adapter_for(self, model: int) -> Any:
        """This run's adapter, or one rebuilt from the ledger (a job of another model)."""
        adapter = self.ledger.adapters.get(model)
        if adapter is None:
            adapter = self.ledger.adapters[model] = load_config(self.ledger.model_config(model))
            self.built.append(adapter)
        return adapter

    # -- submitting ----------------------------------------------------------------------

    def submit(self, record: Record) -> LedgerEntry | dict[str, Any]:
        """The record's job, submitted unless the ledger holds it; or its error line."""
        record_id = record.get("id")
        kwargs = {**self.bound, **{k: v for k, v in record.items() if k not in ("id", "prompt", "messages")}}
        key = None
        try:
            stop = kwargs.pop("stop", None)
            request = self.adapter.prepare_request(model_input(self.adapter, record), operation=ASYNC,
                                                   stop=stop, **kwargs)
            key = f"batch:{record_key(record, 'record')}:{request_key(request)}"
            job = ledger_submit(self.adapter, request, self.config, self.ledger, model=self.model, key=key)
        except (RequestValidationError, ConfigurationError) as exc:  # refused: nothing will run
            return error_line(record_id, exc)
        except Exception as exc:
            recorded = self.ledger.by_key(key) if key is not None else None
            if recorded is None:  # never recorded (the upload failed): nothing to wait for
                return error_line(record_id, exc)
            return recorded  # perhaps accepted: the watch looks in S3, sends it again if not
        entry = self.ledger.get(str(job.ledger_id))
        assert entry is not None
        return entry

    def fill(self, records: Iterator[Record], room: int, pool: ThreadPoolExecutor) -> bool:
        """Submit up to ``room`` records; False when the input is exhausted."""
        batch = list(islice(records, room))
        if not batch:
            return False
        first: list[LedgerEntry | dict[str, Any]] = []
        if not self.accepted_once:  # one alone: the ledger learns the output folder before the rest
            first = [self.submit(batch[0])]
        outcomes = first + list(pool.map(self.submit, batch[len(first):]))
        for record, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, dict):
                self.emit(outcome)
            elif outcome.finished:
                self.emit(self.line(record.get("id"), outcome))
            else:
                timeout = self.config.timeout
                self.window[outcome.id] = _Outstanding(record.get("id"), self.clock() + timeout, timeout)
                self.watch.add(outcome)
        self.accepted_once = self.accepted_once or any(
            isinstance(o, LedgerEntry) and o.state != "submitting" for o in outcomes
        )
        return True

    # -- waiting -------------------------------------------------------------------------

    def line(self, record_id: Any, entry: LedgerEntry) -> dict[str, Any]:
        """The output line of a finished job."""
        adapter = self.adapter_for(entry.model)
        try:
            generation = job_from_entry(entry, adapter).generation()
        except SageMakerError as exc:
            return error_line(record_id, exc)
        message = getattr(generation, "message", None)
        if message is not None:
            return reply_line(record_id, message)
        return success_line(record_id, generation.text, generation.generation_info or {}, None)

    def wait(self) -> None:
        """One round of waiting; a line for each job that finished or ran out of time."""
        deadline = min(item.deadline for item in self.window.values())
        for job_id in self.watch.step(deadline):
            item = self.window.pop(job_id, None)
            entry = self.ledger.get(job_id)
            if item is not None and entry is not None and entry.finished:
                self.emit(self.line(item.record_id, entry))
        now = self.clock()
        for job_id, item in list(self.window.items()):
            if item.deadline <= now:  # left pending in the ledger: a rerun picks it up
                del self.window[job_id]
                self.watch.discard(job_id)
                entry = self.ledger.get(job_id)
                if entry is not None:
                    job = job_from_entry(entry, self.adapter_for(entry.model))
                    self.emit(error_line(item.record_id, job.timeout_error(item.timeout)))

    def close(self) -> None:
        self.watch.close()
        for adapter in self.built:
            adapter.close()


def run_jobs(
    model: Any,
    records: Iterator[Record],
    concurrency: int,
    on_line: Callable[[dict[str, Any]], bool],
    *,
    ledger: JobLedger,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Submit ``records`` as jobs of ``ledger``, at most ``concurrency`` outstanding, and
    hand ``on_line`` each one's output line as it finishes; ``on_line`` returns False to
    stop submitting (outstanding jobs are still waited for). ``stop`` ends the run after
    the current round (the jobs stay in the ledger for a rerun)."""
    adapter, bound = jobs_model(model)
    go = True

    def emit(line: dict[str, Any]) -> None:
        nonlocal go
        if not on_line(line):
            go = False

    run = _Jobs(adapter, bound, ledger, emit, clock)
    more = True
    try:
        with ThreadPoolExecutor(max_workers=min(concurrency, _SUBMITTERS, adapter.max_connections)) as pool:
            while not (stop is not None and stop.is_set()):
                if go and more and len(run.window) < concurrency:
                    more = run.fill(records, concurrency - len(run.window), pool)
                    continue
                if not run.window:
                    break
                run.wait()
    finally:
        run.close()

