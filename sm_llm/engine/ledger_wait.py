"""Waiting for the jobs of a :class:`~sm_llm.engine.ledger.JobLedger`.

:func:`wait_ledger` waits for every unfinished job of a ledger; :func:`run_campaign`
submits jobs (a window at a time) while waiting for them, so notifications are read
from the first submission on. See :mod:`sm_llm.engine.campaign` for how jobs are
recorded and how each is watched (notifications, S3 checks, resubmission).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._core.notifications import Notification, parse_notification
from sm_llm.engine.campaign import AdapterFor, CampaignStats, job_from_entry
from sm_llm.engine.jobs import MAX_FAILURE_BYTES, InferenceJob
from sm_llm.engine.ledger import FINISHED, JobLedger, LedgerEntry, Outcome
from sm_llm.engine.polling import Progress, ProgressBar, raise_first
from sm_llm.errors import ConfigurationError, RequestValidationError, SageMakerError

__all__ = ["JobWatch", "run_campaign", "wait_ledger"]

_MAX_CHECKERS = 32
_EXPIRY_SLACK_S = 60.0
_IDLE_S = 0.2
_FOLLOW_POLL_S = 1.0


@dataclass(slots=True)
class _Tracked:
    entry: LedgerEntry
    adapter: Any
    config: AsyncInferenceConfig
    next_check: float
    interval: float


class _Waiter:
    """One :func:`wait_ledger`: the unfinished jobs, their schedules, the queues."""

    def __init__(self, ledger: JobLedger, adapter_for: AdapterFor, stats: CampaignStats,
                 clock: Callable[[], float], *, follow: bool = False, adopt_all: bool = True) -> None:
        self.ledger, self.adapter_for, self.stats, self.clock = ledger, adapter_for, stats, clock
        self.follow = follow
        """Jobs are still being added (a campaign submitting): each round adopts the new ones."""
        self.tracked: dict[str, _Tracked] = {}
        self.queues: dict[str, _Tracked] = {}
        self.seen: set[str] = set()
        self.finished = 0
        """Jobs this waiter saw finish (here or elsewhere)."""
        self.latest = 0.0
        """The latest ``clock() + config.timeout`` of the jobs adopted."""
        self.longest = 0.0
        """The largest ``config.timeout`` of the jobs adopted."""
        self.last_news = clock()
        self.stopped = False
        self._lock = threading.Lock()
        for entry in ledger.entries(("submitting", "pending")) if adopt_all else ():
            self.adopt(entry)

    def adopt(self, entry: LedgerEntry) -> _Tracked:
        """Track an unfinished job: its S3 check is due after its first poll interval (with
        notifications: after ``notification_fallback_seconds``), counted from its creation."""
        config = AsyncInferenceConfig(**entry.config)
        now, age = self.clock(), max(0.0, time.time() - entry.created)
        first = config.notification_fallback_seconds if config.notification_queue_url else config.poll_interval
        item = _Tracked(entry, self.adapter_for(entry.model), config, now + max(0.0, first - age), config.poll_interval)
        with self._lock:
            self.tracked[entry.id] = item
            self.seen.add(entry.id)
            self.latest = max(self.latest, now + config.timeout)
            self.longest = max(self.longest, config.timeout)
            if config.notification_queue_url:
                self.queues.setdefault(config.notification_queue_url, item)
        return item

    # -- outcomes -------------------------------------------------------------------------

    def _drop(self, job_id: str, mine: bool) -> None:
        with self._lock:
            if self.tracked.pop(job_id, None) is None:
                return
            self.finished += 1
            if mine:
                self.stats.completed_here += 1
            else:
                self.stats.completed_elsewhere += 1

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _finish(self, item: _Tracked, state: Any, **values: Any) -> None:
        self._drop(item.entry.id, self.ledger.finish(item.entry.id, state, **values))

    def _read(self, item: _Tracked, uri: str | None, limit: int | None = None) -> Any:
        if not uri:
            return None
        config = item.config
        self._count("s3_requests")
        return item.adapter.engine.transport.s3_read(
            uri, owner=config.expected_bucket_owner, endpoint_url=config.s3_endpoint_url, limit=limit
        )

    def _look(self, item: _Tracked) -> bool:
        """The output (then the failure) object; True when one was found and recorded."""
        entry = item.entry
        found = self._read(item, entry.output_location)
        if found is not None:
            self._finish(item, "completed", output=found.body, content_type=found.content_type)
            return True
        failure = self._read(item, entry.failure_location, MAX_FAILURE_BYTES)
        if failure is not None:
            self._finish(item, "failed", error=failure.body.decode("utf-8", "replace"))
            return True
        return False

    def _resubmit(self, item: _Tracked) -> None:
        """Send a ``submitting`` job again, if nothing shows it was accepted."""
        entry, transport = item.entry, item.adapter.engine.transport
        if time.time() - entry.updated < self.ledger.resubmit_after:
            return
        if entry.input_location:
            self._count("s3_requests")
            if not transport.s3_exists(entry.input_location, owner=item.config.expected_bucket_owner,
                                       endpoint_url=item.config.s3_endpoint_url):
                self._finish(item, "failed", error=f"the input {entry.input_location} is missing: "
                             "the job cannot be sent again; submit it anew")
                return
        if not self.ledger.claim_resubmit(entry):
            return  # another process is on it
        params = dict(entry.params)
        if entry.body is not None:
            params["Body"] = entry.body
        engine = item.adapter.engine
        try:
            response, _ = engine.retrying(lambda left: transport.invoke_async(params, timeout=left))
        except (RequestValidationError, ConfigurationError) as exc:
            self._finish(item, "failed", error=f"sent again after a crash, and refused: {exc}")
            return
        self._count("resubmits")
        self.ledger.accepted(entry.id, str(response.get("InferenceId") or entry.inference_id),
                             str(response["OutputLocation"]), response.get("FailureLocation"))

    def check(self, item: _Tracked) -> None:
        """One S3 check of one job (thread-safe: one job, one thread)."""
        try:
            if self._look(item):
                return
            if item.entry.state == "submitting":
                self._resubmit(item)
            elif time.time() - item.entry.created > _expiry(item.config):
                self._finish(item, "expired", error="no output or failure appeared within RequestTTLSeconds "
                             "plus InvocationTimeoutSeconds: SageMaker dropped the job")
        except SageMakerError as exc:
            if not getattr(exc, "is_retryable", False):
                self._finish(item, "failed", error=f"{type(exc).__name__}: {exc}")

    def notified(self, note: Notification, item: _Tracked) -> Outcome | None:
        """The outcome its notification gives a job (reading the output), or ``None`` when
        the output is not there (yet)."""
        if note.status == "failed":
            return Outcome(item.entry.id, "failed", error=note.failure_reason or "failed (no failureReason given)")
        found = self._read(item, note.output_location or item.entry.output_location)
        if found is None:
            return None
        return Outcome(item.entry.id, "completed", output=found.body,
                       content_type=found.content_type or note.content_type)

    # -- rounds ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Drop jobs another process finished; pick up acceptances it recorded (and, when
        following a campaign, the jobs added since the last round)."""
        states = self.ledger.states() if self.follow else self.ledger.states(list(self.tracked))
        for job_id in list(self.tracked):
            state = states.get(job_id)
            if state is None or state in FINISHED:
                self._drop(job_id, False)
            elif state != self.tracked[job_id].entry.state:
                fresh = self.ledger.get(job_id)
                if fresh is not None:
                    self.tracked[job_id].entry = fresh
        if self.follow:
            new = [i for i, state in states.items() if i not in self.seen and state not in FINISHED]
            for entry in self.ledger.entries_by_id(new):
                self.adopt(entry)

    def receive(self, url: str, wait: int, pool: ThreadPoolExecutor) -> None:
        """One long poll of ``url``: settle the jobs named (their output reads in parallel),
        delete what was handled."""
        item = self.queues[url]
        transport = item.adapter.engine.transport
        self.stats.sqs_receives += 1
        messages = transport.sqs_receive(url, wait_seconds=wait, max_messages=10)
        if messages:
            self.last_news = self.clock()
        handled: list[str] = []
        settle: list[tuple[Notification, _Tracked]] = []
        for message in messages:
            note = parse_notification(message.body)
            entries = self.ledger.by_inference_id(note.inference_id) if note is not None else []
            if note is None or not entries:
                if item.config.delete_unknown_notifications:
                    handled.append(message.receipt_handle)
                continue
            self.stats.notifications += 1
            for entry in entries:
                tracked = self.tracked.get(entry.id)
                if tracked is None and not entry.finished:  # another process's job, or added since
                    tracked = self.adopt(entry) if self.follow else _Tracked(
                        entry, self.adapter_for(entry.model), AsyncInferenceConfig(**entry.config), 0.0, 1.0)
                if tracked is not None and all(t.entry.id != entry.id for _, t in settle):
                    settle.append((note, tracked))  # a duplicate in the same batch is read once
            handled.append(message.receipt_handle)  # a duplicate of a finished job too
        outcomes = [o for o in pool.map(lambda pair: self.notified(*pair), settle) if o is not None]
        if outcomes:  # one transaction for the whole batch
            for outcome, mine in zip(outcomes, self.ledger.finish_many(outcomes), strict=True):
                self._drop(outcome.job_id, mine)
        if handled:
            transport.sqs_delete(url, handled)

    def due(self) -> list[_Tracked]:
        """The jobs whose S3 check is due now (all of them after a long silence)."""
        now = self.clock()
        silent = bool(self.queues) and now - self.last_news >= min(
            t.config.notification_fallback_seconds for t in self.queues.values()
        )
        if silent:
            self.last_news = now  # one full check per silence period
        ready = [t for t in self.tracked.values() if silent or t.next_check <= now]
        for item in ready:
            item.next_check = now + item.interval
            item.interval = min(item.interval * item.config.poll_backoff, item.config.max_poll_interval)
        return ready

    def next_due(self) -> float:
        """When the next S3 check is due."""
        return min((t.next_check for t in self.tracked.values()), default=math.inf)


    def round(self, pool: ThreadPoolExecutor, deadline: float, following: bool,
              sleep: Callable[[float], None]) -> None:
        """One round: other processes' outcomes, a long poll of each queue, the S3 checks
        due; then, if nothing finished, a pause until the next check (or ``deadline``).
        ``following``: jobs are still being added (polls are kept short to adopt them)."""
        before = self.finished
        started = self.clock()
        self.refresh()
        for url in list(self.queues):
            if not self.tracked and not following:
                break
            longest = float(self.queues[url].config.notification_wait_seconds)
            if following:  # new jobs are adopted between polls; a failed last submission must not hold a 20 s poll
                longest = min(longest, _FOLLOW_POLL_S)
            until = min(self.next_due(), deadline) - self.clock()
            self.receive(url, int(max(0.0, min(longest, until))), pool)
        list(pool.map(self.check, self.due()))
        if before == self.finished and (self.tracked or following):
            pause_until = min(self.next_due(), deadline)
            if self.queues or following:  # the long poll was the pause; only avoid spinning
                pause_until = min(pause_until, started + _IDLE_S)
            sleep(max(0.0, pause_until - self.clock()))


class JobWatch:
    """Waits for the jobs it is given, one round at a time — the window of a batch
    (:func:`wait_ledger` waits for a whole ledger). The same schedule, notifications,
    reconciliation of ``submitting`` jobs and ledger writes as :func:`wait_ledger`."""

    def __init__(self, ledger: JobLedger, adapter_for: AdapterFor, *, stats: CampaignStats | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.stats = stats if stats is not None else CampaignStats()
        self._waiter = _Waiter(ledger, adapter_for, self.stats, clock, adopt_all=False)
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=_MAX_CHECKERS)

    def __len__(self) -> int:
        return len(self._waiter.tracked)

    def add(self, entry: LedgerEntry) -> None:
        """Wait for this unfinished job too."""
        self._waiter.adopt(entry)

    def discard(self, job_id: str) -> None:
        """Stop waiting for a job (it stays in the ledger as it is)."""
        self._waiter.tracked.pop(job_id, None)

    def step(self, deadline: float) -> set[str]:
        """One round (pausing until ``deadline`` at most when nothing finished); the ids
        of the jobs that finished — their outcome is in the ledger."""
        before = set(self._waiter.tracked)
        self._waiter.round(self._pool, deadline, False, self._sleep)
        return before - set(self._waiter.tracked)

    def close(self) -> None:
        """Stop the S3 checkers."""
        self._pool.shutdown()

    def __enter__(self) -> JobWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _expiry(config: AsyncInferenceConfig) -> float:
    return (config.request_ttl_seconds or 21600) + (config.invocation_timeout_seconds or 900) + _EXPIRY_SLACK_S


def wait_ledger(
    ledger: JobLedger,
    adapter_for: AdapterFor,
    *,
    timeout: float | None = None,
    progress: Progress = False,
    return_exceptions: bool = True,
    generations: bool = False,
    stats: CampaignStats | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Any]:
    """Wait for every unfinished job of ``ledger``; every job's result (or error), in
    submission order. ``timeout``: at most this many seconds (default: the largest
    ``config.timeout`` of the unfinished jobs)."""
    waiter = _Waiter(ledger, adapter_for, stats if stats is not None else CampaignStats(), clock)
    total = len(ledger)
    bar = ProgressBar(total, progress if waiter.tracked else False)
    bar.advance(total - len(waiter.tracked), 0)
    try:
        limit = _rounds(waiter, timeout, bar, None, sleep)
    finally:
        bar.close()
    return _results(ledger.entries(), adapter_for, limit, return_exceptions, generations)


def run_campaign(
    submit_one: Callable[[int], InferenceJob],
    count: int,
    ledger: JobLedger,
    adapter_for: AdapterFor,
    *,
    concurrency: int = 8,
    timeout: float | None = None,
    progress: Progress = False,
    return_exceptions: bool = True,
    generations: bool = False,
    stats: CampaignStats | None = None,
) -> list[Any]:
    """Submit ``count`` jobs (``submit_one(i)``, ``concurrency`` at a time) while waiting
    for them: the waiter reads notifications (and adopts each new job) from the first
    submission on, so finished jobs never pile up unread while later ones are still being
    sent. Also waits for the ledger's other unfinished jobs; returns the results (or
    errors, a refused submission's included) of these ``count`` jobs, in input order.
    ``timeout``: at most this many seconds in all (default: until the largest
    ``config.timeout`` after the last job was adopted)."""
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, not {concurrency}")
    waiter = _Waiter(ledger, adapter_for, stats if stats is not None else CampaignStats(), time.monotonic,
                     follow=True)
    slots: list[Any] = [None] * count
    submitting = threading.Event()
    submitting.set()
    bar = ProgressBar(count + len(waiter.tracked), progress)
    limits: list[float] = []
    failure: list[BaseException] = []

    def wait() -> None:
        try:
            limits.append(_rounds(waiter, timeout, bar, submitting.is_set, time.sleep))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    def one(i: int) -> None:
        try:
            slots[i] = submit_one(i)
        except SageMakerError as exc:  # refused or unreachable: that job's slot, the others go on
            slots[i] = exc

    thread = threading.Thread(target=wait, name="sm-llm-campaign-wait", daemon=True)
    thread.start()
    try:
        with ThreadPoolExecutor(max_workers=min(concurrency, max(1, count))) as pool:
            list(pool.map(one, range(count)))
    except BaseException:
        waiter.stopped = True
        raise
    finally:
        submitting.clear()
        thread.join()
        bar.close()
    if failure:
        raise failure[0]
    ids = [job.ledger_id for job in slots if isinstance(job, InferenceJob) and job.ledger_id]
    results = iter(_results(ledger.entries_by_id(ids), adapter_for, limits[0] if limits else 0.0, True, generations))
    slots = [next(results) if isinstance(slot, InferenceJob) and slot.ledger_id else slot for slot in slots]
    if not return_exceptions:
        raise_first(slots)
    return slots


def _rounds(
    waiter: _Waiter, timeout: float | None, bar: ProgressBar, more: Callable[[], bool] | None,
    sleep: Callable[[float], None],
) -> float:
    """Wait until the waiter tracks nothing (and ``more()`` says no job will be added) or
    the deadline; returns the wait's limit in seconds (for timeout errors)."""
    clock = waiter.clock
    start = clock()

    def deadline() -> float:
        if timeout is not None:
            return start + float(timeout)
        return math.inf if more is not None and more() else waiter.latest

    def following() -> bool:
        return more is not None and more()

    last_look = more is None
    with ThreadPoolExecutor(max_workers=_MAX_CHECKERS) as pool:
        while not waiter.stopped:
            if not last_look and not following():  # the submissions are over: adopt the last ones
                waiter.refresh()
                last_look = True
            if not (waiter.tracked or following()) or clock() >= deadline():
                break
            before = waiter.finished
            waiter.round(pool, deadline(), following(), sleep)
            bar.advance(waiter.finished - before, 0)
    return float(timeout) if timeout is not None else waiter.longest


def _results(
    entries: list[LedgerEntry], adapter_for: AdapterFor, limit: float, return_exceptions: bool, generations: bool
) -> list[Any]:
    slots: list[Any] = []
    for entry in entries:
        job = job_from_entry(entry, adapter_for(entry.model))
        if not entry.finished:
            slots.append(job.timeout_error(limit))
            continue
        try:
            slots.append(job.generation() if generations else job.result())
        except SageMakerError as exc:
            slots.append(exc)
    if not return_exceptions:
        raise_first(slots)
    return slots
