"""Waiting for asynchronous inference jobs: the backoff schedule every wait follows, one
job's wait, and :func:`wait_all` / :func:`await_all`, which poll many jobs on one shared
schedule: each round polls every pending job once (concurrently), then the whole set
sleeps with one backoff; nothing is polled after all jobs are done or after the deadline.

Jobs are anything with the :class:`Pollable` shape (:class:`~sm_llm.engine.jobs.InferenceJob`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Protocol

from sm_llm._async_config import AsyncInferenceConfig
from sm_llm.errors import JobTimeoutError, SageMakerError

__all__ = [
    "Pollable", "Progress", "ProgressBar", "await_all", "await_one", "poll_waits", "raise_first", "wait_all", "wait_one",
]

Progress = bool | Literal["force"]
_MAX_POLLERS = 32


class Pollable(Protocol):
    """What waiting needs of a job."""

    config: AsyncInferenceConfig

    @property
    def done(self) -> bool:
        """The outcome is known and kept."""
        ...

    @property
    def elapsed(self) -> float:
        """Seconds since submission."""
        ...

    def poll(self) -> bool:
        """One look; True once the outcome is known."""
        ...

    def generation(self, timeout: float | None = None) -> Any:
        """The kept generation (or its failure raised)."""
        ...

    def result(self, timeout: float | None = None) -> Any:
        """The kept result (or its failure raised)."""
        ...

    def timeout_error(self, timeout: float) -> JobTimeoutError:
        """The error for a wait that ended before the job did."""
        ...

    def to_thread(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run blocking ``fn`` on the job's engine executor."""
        ...


def _transient(exc: BaseException) -> bool:
    """A throttle, 5xx or connection error: the next poll is its retry."""
    return bool(getattr(exc, "is_retryable", False))


def poll_waits(
    config: AsyncInferenceConfig, timeout: float, elapsed: float, clock: Callable[[], float] = time.monotonic
) -> Iterator[float]:
    """Seconds to sleep before each poll: the first ``poll_interval`` after submission,
    then growing by ``poll_backoff`` up to ``max_poll_interval``. The last poll happens at
    the deadline; the iterator ends after it, so every wait terminates."""
    deadline = clock() + max(0.0, timeout)
    pause, step = max(0.0, config.poll_interval - elapsed), config.poll_interval
    while True:
        yield max(0.0, min(pause, deadline - clock()))
        if clock() >= deadline:
            return
        step = min(step * config.poll_backoff, config.max_poll_interval)
        pause = step


def _limit(job: Pollable, timeout: float | None) -> float:
    return job.config.timeout if timeout is None else float(timeout)


def wait_one(job: Pollable, timeout: float | None, poll: Callable[[], bool]) -> None:
    """Poll ``job`` on its schedule until ``poll`` says done; :class:`JobTimeoutError` at the
    deadline. Transient errors (already retried by botocore) only cost a round."""
    limit, last = _limit(job, timeout), None
    for pause in poll_waits(job.config, limit, job.elapsed):
        time.sleep(pause)
        try:
            if poll():
                return
        except SageMakerError as exc:
            if not _transient(exc):
                raise
            last = exc
    raise job.timeout_error(limit) from last


async def await_one(job: Pollable, timeout: float | None, poll: Callable[[], bool]) -> None:
    """Async :func:`wait_one`: polls on the engine's executor, ``asyncio.sleep`` between."""
    limit, last = _limit(job, timeout), None
    for pause in poll_waits(job.config, limit, job.elapsed):
        await asyncio.sleep(pause)
        try:
            if await job.to_thread(poll):
                return
        except SageMakerError as exc:
            if not _transient(exc):
                raise
            last = exc
    raise job.timeout_error(limit) from last


# -- many jobs ------------------------------------------------------------------------


class ProgressBar:
    """A progress bar on stderr: tqdm (rate and ETA) when installed, else one
    self-rewriting line (at most every ``0.2`` s, with the rate).

    ``progress=True`` shows it only on a terminal; ``"force"`` always. ``desc`` and
    ``unit`` name what is counted (async jobs, batch records).
    """

    def __init__(self, total: int, progress: Progress, *, desc: str = "async jobs", unit: str = "job") -> None:
        self.enabled = bool(progress) and (progress == "force" or sys.stderr.isatty())
        self.total, self.done, self.failed = total, 0, 0
        self.desc = desc
        self._tqdm: Any = None
        self._started = self._shown = time.monotonic()
        self._shown_done = -1
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self._line()
            return
        self._tqdm = tqdm(total=total, file=sys.stderr, unit=unit, desc=desc, dynamic_ncols=True)

    def _line(self) -> None:
        failed = f", {self.failed} failed" if self.failed else ""
        elapsed = time.monotonic() - self._started
        rate = f", {self.done / elapsed:.1f}/s" if elapsed > 0 and self.done else ""
        sys.stderr.write(f"\r{self.desc}: {self.done}/{self.total} done{failed}{rate}")
        sys.stderr.flush()
        self._shown, self._shown_done = time.monotonic(), self.done

    def advance(self, finished: int, failed: int) -> None:
        """Count ``finished`` more jobs, ``failed`` of them failed."""
        self.done += finished
        self.failed += failed
        if not self.enabled or not finished:
            return
        if self._tqdm is not None:
            if failed:
                self._tqdm.set_postfix(failed=self.failed, refresh=False)
            self._tqdm.update(finished)
        elif self.done >= self.total or time.monotonic() - self._shown >= 0.2:
            self._line()

    def close(self) -> None:
        """Finish the bar (and its line); idempotent."""
        if not self.enabled:
            return
        self.enabled = False
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            if self._shown_done != self.done:  # the last count was throttled away
                self._line()
            sys.stderr.write("\n")
            sys.stderr.flush()


def _schedule(jobs: Sequence[Pollable], timeout: float | None) -> tuple[AsyncInferenceConfig, float, float]:
    """One config for the shared schedule (the most eager of the jobs'), the timeout and
    the time since the most recent submission."""
    configs = [job.config for job in jobs]
    shared = configs[0].model_copy(
        update={
            "poll_interval": min(c.poll_interval for c in configs),
            "max_poll_interval": min(c.max_poll_interval for c in configs),
        }
    )
    limit = max(c.timeout for c in configs) if timeout is None else float(timeout)
    return shared, limit, min(job.elapsed for job in jobs)


def _poll(job: Pollable) -> tuple[bool, BaseException | None]:
    """One poll of one job: (finished, error). A transient error leaves it pending."""
    try:
        return job.poll(), None
    except SageMakerError as exc:
        return not _transient(exc), exc
    except Exception as exc:  # e.g. a parse error: this job is over, the others go on
        return True, exc


def _settle(
    jobs: Sequence[Pollable], slots: list[Any], index: int, error: BaseException | None, generations: bool
) -> bool:
    """Fill slot ``index`` from a finished job; True when it holds an error."""
    if error is None:
        try:
            job = jobs[index]
            slots[index] = job.generation() if generations else job.result()
            return False
        except Exception as exc:
            error = exc
    slots[index] = error
    return True


class _Round:
    """Sans-IO state of one ``wait_all``: which jobs are pending, their slots, the bar.

    The sync and async loops differ only in how they sleep and poll.
    """

    def __init__(
        self, jobs: Iterable[Pollable], timeout: float | None, progress: Progress, generations: bool
    ) -> None:
        self.jobs = list(jobs)
        self.slots: list[Any] = [None] * len(self.jobs)
        self.pending: dict[int, BaseException | None] = {}
        self.generations = generations
        self.order: list[int] = []
        self.limit = 0.0
        self.schedule: tuple[AsyncInferenceConfig, float, float] | None = None
        if not self.jobs:
            self.bar = ProgressBar(0, False)
            return
        self.schedule = _schedule(self.jobs, timeout)
        self.limit = self.schedule[1]
        self.bar = ProgressBar(len(self.jobs), progress)
        for index, job in enumerate(self.jobs):
            if job.done:
                self.bar.advance(1, _settle(self.jobs, self.slots, index, None, generations))
            else:
                self.pending[index] = None

    def waits(self) -> Iterator[float]:
        """Pauses before each polling round, while jobs are pending and time remains."""
        if not self.pending or self.schedule is None:
            return
        for pause in poll_waits(*self.schedule):
            if not self.pending:
                return
            yield pause

    def due(self) -> list[Pollable]:
        """The jobs to poll this round (in :attr:`order`)."""
        self.order = list(self.pending)
        return [self.jobs[i] for i in self.order]

    def record(self, outcomes: Iterable[tuple[bool, BaseException | None]]) -> None:
        """Take one round's poll outcomes, in :meth:`due` order."""
        finished = failed = 0
        for index, (done, error) in zip(self.order, outcomes, strict=True):
            if not done:
                self.pending[index] = error
                continue
            del self.pending[index]
            finished += 1
            failed += _settle(self.jobs, self.slots, index, error, self.generations)
        self.bar.advance(finished, failed)

    def finish(self, return_exceptions: bool) -> list[Any]:
        """Slots in input order; jobs still pending get a :class:`JobTimeoutError`."""
        for index, last in self.pending.items():
            error = self.jobs[index].timeout_error(self.limit)
            error.__cause__ = last
            self.slots[index] = error
        if not return_exceptions:
            raise_first(self.slots)
        return self.slots


def raise_first(slots: list[Any]) -> None:
    """Raise the first error among ``slots`` (results or errors, in input order), if any."""
    for slot in slots:
        if isinstance(slot, BaseException):
            raise slot


def wait_all(
    jobs: Iterable[Pollable],
    timeout: float | None = None,
    progress: Progress = False,
    return_exceptions: bool = True,
    *,
    generations: bool = False,
) -> list[Any]:
    """Wait for every job on one polling schedule; results in input order.

    Each slot holds the job's result (``generations=True``: its generation) or, with
    ``return_exceptions``, its error: :class:`AsyncInferenceError` for a failure object,
    :class:`JobTimeoutError` when the deadline (``timeout``, default the jobs' largest
    ``config.timeout``) came first. Without ``return_exceptions`` the first error (in
    input order) is raised once every job has finished or timed out.
    """
    state = _Round(jobs, timeout, progress, generations)
    try:
        with ThreadPoolExecutor(max_workers=min(_MAX_POLLERS, max(1, len(state.pending)))) as pool:
            for pause in state.waits():
                time.sleep(pause)
                state.record(pool.map(_poll, state.due()))
    finally:
        state.bar.close()
    return state.finish(return_exceptions)


async def await_all(
    jobs: Iterable[Pollable],
    timeout: float | None = None,
    progress: Progress = False,
    return_exceptions: bool = True,
    *,
    generations: bool = False,
) -> list[Any]:
    """Async :func:`wait_all`: polls run on the jobs' engine executors, waits use
    ``asyncio.sleep``."""
    state = _Round(jobs, timeout, progress, generations)
    try:
        for pause in state.waits():
            await asyncio.sleep(pause)
            state.record(await asyncio.gather(*(job.to_thread(_poll, job) for job in state.due())))
    finally:
        state.bar.close()
    return state.finish(return_exceptions)
