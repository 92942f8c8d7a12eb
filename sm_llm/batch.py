"""Offline batches over JSONL: one model, many records, an output file that survives crashes.

>>> report = run_batch(llm, "prompts.jsonl", "out.jsonl", concurrency=64)   # doctest: +SKIP
>>> print(report.summary())                                                 # doctest: +SKIP

Input: one JSON object per line, ``{"id": ..., "prompt": "..."}`` or ``{"id": ...,
"messages": [{"role": ..., "content": ...}, ...]}``; any other key is a per-call argument
of the model (``target_model``, ``inference_component_name``, ``max_tokens``,
``temperature``, ``top_p``, ``stop``, ``model_kwargs``...). Ids are strings or integers.

Output: one line per record **in the order the calls finish**, each written whole
(one ``write`` of one line, no buffering) —
``{"id", "output", "usage", "finish_reason", "metadata"}`` or
``{"id", "error": {"type", "message", "retryable", "status_code"}}``. Retryable errors
(throttling, 5xx, connection) are retried by the model's own policy first.

Resume (the default): ids already in the output are skipped, so a crash, ``kill -9`` or
Ctrl-C loses at most the calls in flight (at most ``concurrency``), never a written line; a
torn last line is cut off before resuming. Error lines count as done: delete them to retry.

Before anything is sent the input is read once, streaming, to refuse duplicate or missing
ids and malformed lines. Memory is bounded: neither file is loaded; the ids seen are kept
as 8-byte hashes (about 16 bytes per record for input and output together: ~16 MB for
1,000,000 records), colliding hashes confirmed by re-reading the input.

``async_inference=True``: each record becomes an ``InvokeEndpointAsync`` job of a
:class:`~sm_llm.async_inference.JobLedger` (default ``<output>.jobs.db``), ``concurrency``
jobs outstanding; the same lines and resume, and a rerun submits no job the ledger holds
(see :mod:`sm_llm._batch_jobs`).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseLLM

from sm_llm._adapter import AdapterBase
from sm_llm._batch_files import (
    INPUTS,
    LineWriter,
    Record,
    Records,
    check_input,
    check_shape,
    error_line,
    id_hash,
    model_input,
    read_done,
    record_key,
    reply_line,
    success_line,
)
from sm_llm._batch_jobs import jobs_model, run_jobs
from sm_llm._core.request import reply_metadata
from sm_llm._stop import truncate_at_stop
from sm_llm.engine.ledger import JobLedger
from sm_llm.engine.polling import Progress, ProgressBar
from sm_llm.errors import ConfigurationError
from sm_llm.llms import SageMakerLLM

__all__ = [
    "BatchReport", "arun_batch", "arun_record", "default_ledger", "error_line", "run_batch", "run_window",
]



@dataclass
class BatchReport:
    """What a batch did: records done (answered), failed (an error line), skipped (already
    in the output), tokens in and out (as the container reported them), wall time, and
    whether ``max_errors`` stopped it early."""

    output: str
    done: int = 0
    failed: int = 0
    skipped: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    wall_time: float = 0.0
    stopped: bool = False

    def summary(self) -> str:
        """One line for a log or a terminal."""
        head = f"stopped early after {self.failed} errors: " if self.stopped else ""
        return (
            f"{head}{self.done} done, {self.failed} failed, {self.skipped} skipped; tokens in/out "
            f"{self.tokens_in}/{self.tokens_out}; {self.wall_time:.1f} s → {self.output}"
        )


# -- one record -------------------------------------------------------------------------


def _direct(model: Any) -> bool:
    """A plain ``SageMakerLLM`` with nothing LangChain's ``agenerate`` would add (callbacks,
    rate limiter, cache, async jobs): call its engine directly — the same request, retries
    and parsing, without the per-call callback machinery."""
    return (
        isinstance(model, SageMakerLLM) and not model.callbacks and model.rate_limiter is None
        and model.cache is None and model.async_inference is None and not model.streaming
    )


async def _call_engine(model: Any, record_id: Any, prompt: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    stop = kwargs.pop("stop", None)
    request = model.prepare_request(prompt, stop=stop, **kwargs)
    parsed, metadata = await model.engine.acall(request)
    text, stopped = truncate_at_stop(parsed.text, request.stop)
    info = reply_metadata(
        metadata, finish_reason="stop" if stopped else parsed.finish_reason, usage=parsed.usage,
        model_name=parsed.model_name,
    )
    return success_line(record_id, text, info, None)


async def arun_record(model: Any, record: Record) -> dict[str, Any]:
    """Call ``model`` for one record; its output line (an error line if the call failed)."""
    record_id = record.get("id")
    kwargs = {k: v for k, v in record.items() if k not in ("id", *INPUTS)}
    try:
        if isinstance(model, BaseLLM):  # generate: the reply's metadata, not only its text
            prompt = model_input(model, record)
            if _direct(model):
                return await _call_engine(model, record_id, prompt, kwargs)
            result = await model.agenerate([prompt], **kwargs)
            generation = result.generations[0][0]
            return success_line(record_id, generation.text, generation.generation_info or {}, None)
        reply = await model.ainvoke(record.get("prompt", record.get("messages")), **kwargs)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return error_line(record_id, exc)
    return reply_line(record_id, reply)


# -- the window -------------------------------------------------------------------------


def _adapter(model: Any) -> AdapterBase | None:
    while not isinstance(model, AdapterBase) and hasattr(model, "bound"):
        model = model.bound
    return model if isinstance(model, AdapterBase) else None


def _sized(model: Any, concurrency: int) -> Any:
    """``model``, or a copy whose connection pool holds ``concurrency`` connections."""
    adapter = _adapter(model)
    if adapter is None or adapter.max_connections >= concurrency:
        return model
    bigger = adapter.model_copy(update={"max_connections": concurrency})
    if adapter is model:
        return bigger
    return model.model_copy(update={"bound": _sized(model.bound, concurrency)})


async def run_window(
    model: Any, records: Iterable[Record], concurrency: int, on_line: Callable[[dict[str, Any]], bool]
) -> None:
    """Keep ``concurrency`` calls in flight over ``records``; ``on_line`` gets each output
    line as its call finishes and returns False to stop starting new calls."""
    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    go = True

    async def one(record: Record) -> None:
        nonlocal go
        try:
            line = await arun_record(model, record)
            if not on_line(line):
                go = False
        finally:
            slots.release()

    try:
        for record in records:
            await slots.acquire()
            if not go:
                slots.release()
                break
            task = asyncio.create_task(one(record))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()


class _Run:
    """One batch's files, report and progress bar: :meth:`pending` yields the records still
    to do, :meth:`on_line` writes an output line (False: stop starting new records)."""

    def __init__(
        self, records: str | os.PathLike[str] | Iterable[Record], output: str | os.PathLike[str], *,
        resume: bool, progress: Progress, max_errors: int | None,
    ) -> None:
        self.started = time.monotonic()
        self.max_errors = max_errors
        path, self.source = Path(output), Records(records)
        self.done = read_done(path) if resume else None
        total, skipped = check_input(self.source, self.done) if self.source.reiterable else (0, 0)
        self.report = BatchReport(output=str(path), skipped=skipped)
        self.writer = LineWriter(path, append=resume)
        self.bar = ProgressBar(total - skipped, progress, desc="batch", unit="rec")
        # a one-shot iterator is checked as it is read: its ids as 8-byte ints, in a set
        self.seen: set[int] | None = None if self.source.reiterable else set()

    def pending(self) -> Iterator[Record]:
        seen, done = self.seen, self.done
        if seen is None and not done:  # checked already, nothing to skip: every record goes
            for _, record in self.source:
                yield record
            return
        for where, record in self.source:
            key = check_shape(record, where) if seen is not None else record_key(record, where)
            if seen is not None:
                if id_hash(key) in seen:
                    raise ConfigurationError(f"duplicate id {key} at {where}; ids must be unique")
                seen.add(id_hash(key))
            if done is not None and key in done:
                self.report.skipped += seen is not None
                continue
            yield record

    def on_line(self, line: dict[str, Any]) -> bool:
        report = self.report
        self.writer.write(line)
        failed = "error" in line
        if failed:
            report.failed += 1
        else:
            report.done += 1
            usage = line.get("usage") or {}
            report.tokens_in += usage.get("input_tokens", 0)
            report.tokens_out += usage.get("output_tokens", 0)
        self.bar.advance(1, int(failed))
        if self.max_errors is not None and report.failed >= self.max_errors:
            report.stopped = True
        return not report.stopped

    def close(self) -> BatchReport:
        self.bar.close()
        self.writer.close()
        self.report.wall_time = time.monotonic() - self.started
        return self.report


def _check(concurrency: int, max_errors: int | None, async_inference: bool, ledger: Any,
           resubmit_after: float | None) -> None:
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
    if max_errors is not None and max_errors < 1:
        raise ConfigurationError(f"max_errors must be at least 1, got {max_errors}")
    if ledger is not None and not async_inference:
        raise ConfigurationError("a job ledger is for async_inference=True (--async-inference) only")
    if resubmit_after is not None and (not async_inference or isinstance(ledger, JobLedger)):
        raise ConfigurationError(
            "resubmit_after is for async_inference=True with a ledger path (a JobLedger has its own)"
        )


def default_ledger(output: str | os.PathLike[str]) -> Path:
    """The job ledger of an ``async_inference`` batch writing ``output``: ``<output>.jobs.db``."""
    return Path(f"{os.fspath(output)}.jobs.db")


def _run_jobs(
    model: Any, records: str | os.PathLike[str] | Iterable[Record], output: str | os.PathLike[str], *,
    concurrency: int, resume: bool, progress: Progress, max_errors: int | None,
    ledger: str | os.PathLike[str] | JobLedger | None, resubmit_after: float | None,
    stop: threading.Event | None = None,
) -> BatchReport:
    """The ``async_inference`` batch (blocking): every record a job of the ledger."""
    jobs_model(model)  # before a file is touched
    run = _Run(records, output, resume=resume, progress=progress, max_errors=max_errors)
    try:
        if isinstance(ledger, JobLedger):
            run_jobs(model, run.pending(), concurrency, run.on_line, ledger=ledger, stop=stop)
            return run.report
        path = Path(ledger) if ledger is not None else default_ledger(output)
        if ledger is None and not resume:  # the output starts afresh: so does its own ledger
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)
        settings = {} if resubmit_after is None else {"resubmit_after": resubmit_after}
        with JobLedger(path, **settings) as opened:
            run_jobs(model, run.pending(), concurrency, run.on_line, ledger=opened, stop=stop)
        return run.report
    finally:
        run.close()


async def arun_batch(
    model: Any,
    records: str | os.PathLike[str] | Iterable[Record],
    output: str | os.PathLike[str],
    *,
    concurrency: int = 64,
    resume: bool = True,
    progress: Progress = True,
    max_errors: int | None = None,
    async_inference: bool = False,
    ledger: str | os.PathLike[str] | JobLedger | None = None,
    resubmit_after: float | None = None,
) -> BatchReport:
    """Async :func:`run_batch` on the running event loop (``async_inference``: on a
    worker thread, which stops after its current round when the task is cancelled)."""
    _check(concurrency, max_errors, async_inference, ledger, resubmit_after)
    if async_inference:
        stop = threading.Event()
        try:
            return await asyncio.to_thread(
                _run_jobs, model, records, output, concurrency=concurrency, resume=resume, progress=progress,
                max_errors=max_errors, ledger=ledger, resubmit_after=resubmit_after, stop=stop,
            )
        except asyncio.CancelledError:
            stop.set()
            raise
    run = _Run(records, output, resume=resume, progress=progress, max_errors=max_errors)
    try:
        await run_window(_sized(model, concurrency), run.pending(), concurrency, run.on_line)
    finally:
        run.close()
    return run.report


def run_batch(
    model: Any,
    records: str | os.PathLike[str] | Iterable[Record],
    output: str | os.PathLike[str],
    *,
    concurrency: int = 64,
    resume: bool = True,
    progress: Progress = True,
    max_errors: int | None = None,
    async_inference: bool = False,
    ledger: str | os.PathLike[str] | JobLedger | None = None,
    resubmit_after: float | None = None,
) -> BatchReport:
    """Run ``model`` (an sm_llm adapter, a bound one, or any LangChain runnable) over
    ``records`` — a JSONL path, or an iterable of mappings — appending one line per
    record to ``output`` as calls finish, ``concurrency`` calls in flight.

    ``resume``: skip ids already in ``output`` (else it is overwritten). ``progress``: a
    bar on stderr (tqdm with rate and ETA if installed) on a terminal, ``"force"``
    always. ``max_errors``: stop starting calls once that many records failed (calls in
    flight still finish and are written); ``report.stopped`` tells. See the module
    docstring for the formats and guarantees.

    ``async_inference``: submit each record through ``InvokeEndpointAsync`` as a job of
    ``ledger`` (a :class:`~sm_llm.async_inference.JobLedger` or its path; default
    ``<output>.jobs.db``), with the model's ``async_inference`` config; ``concurrency`` is
    then the number of jobs outstanding (submitted, not yet written). A rerun sends no job
    the ledger already holds; ``resume=False`` also starts the default ledger afresh.
    ``resubmit_after``: the ledger's (a path's) wait before a job a crash left unsent is
    looked for in S3 and sent again (default 120 s).
    """
    _check(concurrency, max_errors, async_inference, ledger, resubmit_after)
    if async_inference:
        return _run_jobs(model, records, output, concurrency=concurrency, resume=resume, progress=progress,
                         max_errors=max_errors, ledger=ledger, resubmit_after=resubmit_after)

    async def main() -> BatchReport:
        sized = _sized(model, concurrency)
        try:
            return await arun_batch(
                sized, records, output, concurrency=concurrency, resume=resume,
                progress=progress, max_errors=max_errors,
            )
        finally:
            adapter = _adapter(sized)
            if adapter is not None:  # this loop's async clients end with it
                await adapter.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as thread:  # called from async code (a notebook)
        return thread.submit(asyncio.run, main()).result()
