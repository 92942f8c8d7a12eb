"""The I/O side of asynchronous inference jobs: S3 access and waiting schedules.

:mod:`sm_llm.async_inference` holds the public API; here are the S3 reads and
uploads (errors mapped to :mod:`sm_llm.errors`, a missing object is ``None``), the
backoff schedule every wait follows, and :func:`wait_all` / :func:`await_all`, which
poll many jobs on one shared schedule: each round polls every pending job once
(concurrently), then the whole set sleeps with one backoff; nothing is polled after
all jobs are done or after the deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import re
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from sm_llm import _transport
from sm_llm.errors import ConfigurationError, SageMakerError

if TYPE_CHECKING:
    from sm_llm.async_inference import AsyncInferenceConfig, InferenceJob

__all__ = ["await_all", "check_location", "close_s3_clients", "wait_all"]

Progress = bool | Literal["force"]
_MAX_POLLERS = 32
_MULTIPART = 8 * 1024 * 1024
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?")  # fullmatch: no final "\n"


# -- S3 -------------------------------------------------------------------------------

_S3_LOCK = threading.Lock()
_S3_CLIENTS: dict[tuple[int, str | None], tuple[weakref.ref[Any], Any]] = {}


def _s3(adapter: Any, config: AsyncInferenceConfig) -> Any:
    """The adapter's S3 client for ``config`` (created once, closed with the adapter)."""
    key = (id(adapter), config.s3_endpoint_url)
    with _S3_LOCK:
        entry = _S3_CLIENTS.get(key)
        if entry is not None and entry[0]() is adapter:
            return entry[1]
    settings = dataclasses.replace(adapter._settings(), endpoint_url=config.s3_endpoint_url)
    client = _transport.create_client(settings, "s3")
    with _S3_LOCK:
        entry = _S3_CLIENTS.get(key)
        if entry is not None and entry[0]() is adapter:
            client.close()
            return entry[1]
        _S3_CLIENTS[key] = (weakref.ref(adapter), client)
    weakref.finalize(adapter, _drop, key, client)
    return client


def _drop(key: tuple[int, str | None], client: Any) -> None:
    with _S3_LOCK:
        entry = _S3_CLIENTS.get(key)
        if entry is not None and entry[1] is client:
            del _S3_CLIENTS[key]
    client.close()


def close_s3_clients(adapter: Any) -> None:
    """Close the S3 clients async inference made for ``adapter`` (for ``adapter.close()``)."""
    with _S3_LOCK:
        keys = [k for k, (ref, _) in _S3_CLIENTS.items() if ref() is adapter]
        clients = [_S3_CLIENTS.pop(k)[1] for k in keys]
    for client in clients:
        client.close()


def _split(uri: str) -> tuple[str, str]:
    match = _S3_URI.fullmatch(uri)
    if match is None or not match.group(2):
        raise SageMakerError(f"cannot read {uri!r}: expected an s3://bucket/key location")
    return match.group(1), match.group(2)


def check_location(value: Any, what: str) -> str:
    """A saved job's ``value`` is an ``s3://bucket/key`` location (``ConfigurationError``
    otherwise): nothing else — ``https://``, ``file://`` — is ever read."""
    if isinstance(value, str):
        match = _S3_URI.fullmatch(value)
        if match is not None and match.group(2):
            return value
    raise ConfigurationError(f"{what}={value!r} is not allowed: expected an s3://bucket/key location")


def _s3_error(exc: BaseException, action: str, uri: str) -> SageMakerError:
    error = _transport.map_error(exc, f"S3 {action} {uri}", None)
    if error.status_code == 403:
        error.message += (
            " — grant s3:GetObject on the output and failure prefixes and s3:ListBucket on their "
            "buckets (without ListBucket S3 answers 403 instead of 404 for objects not written yet)"
        )
    return error


def _s3_read(client: Any, op: str, uri: str, owner: str | None, **extra: Any) -> dict[str, Any] | None:
    """``HeadObject`` / ``GetObject`` on ``uri``; ``None`` when the object does not exist (yet)."""
    from botocore.exceptions import ClientError

    bucket, key = _split(uri)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, **extra}
    if owner:
        kwargs["ExpectedBucketOwner"] = owner
    try:
        return cast(dict[str, Any], getattr(client, op)(**kwargs))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 and code in ("404", "NoSuchKey", "NotFound"):
            return None
        if status == 416 and "Range" in extra:  # a ranged GET of an empty object
            return {"Body": io.BytesIO(b""), "ContentType": None}
        raise _s3_error(exc, op, uri) from exc
    except Exception as exc:
        raise _s3_error(exc, op, uri) from exc


def _transient(exc: BaseException) -> bool:
    """A throttle, 5xx or connection error: the next poll is its retry."""
    return bool(getattr(exc, "is_retryable", False))


def _discard(client: Any, uri: str, config: AsyncInferenceConfig) -> None:
    """Best-effort delete of an uploaded input nobody will read."""
    bucket, key = _split(uri)
    extra = {"ExpectedBucketOwner": config.expected_bucket_owner} if config.expected_bucket_owner else {}
    try:
        client.delete_object(Bucket=bucket, Key=key, **extra)
    except Exception:  # the original error matters more
        return


def _waits(
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


def _upload(client: Any, body: bytes, uri: str, content_type: str | None, config: AsyncInferenceConfig) -> None:
    """Upload with the transfer manager: multipart (in parallel parts) above 8 MiB."""
    from boto3.s3.transfer import TransferConfig

    bucket, key = _split(uri)
    extra: dict[str, Any] = {}
    if content_type:
        extra["ContentType"] = content_type
    if config.expected_bucket_owner:
        extra["ExpectedBucketOwner"] = config.expected_bucket_owner
    transfer = TransferConfig(
        multipart_threshold=_MULTIPART, multipart_chunksize=_MULTIPART, max_concurrency=8,
        use_threads=len(body) > _MULTIPART,
    )
    try:
        client.upload_fileobj(io.BytesIO(body), bucket, key, ExtraArgs=extra, Config=transfer)
    except Exception as exc:
        from botocore.exceptions import ClientError

        cause = exc.__cause__ or exc.__context__  # boto3 wraps it in S3UploadFailedError
        raise _s3_error(cause if isinstance(cause, ClientError) else exc, "upload", uri) from exc


# -- one job --------------------------------------------------------------------------

MAX_FAILURE_BYTES = 64 * 1024
_CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    """What a finished job left: its generation, or its failure content."""

    generation: Any = None
    failure: str | None = None


def _job_s3(job: InferenceJob) -> Any:
    return _s3(job.adapter, job.config)


def job_status(job: InferenceJob) -> str:
    """``HEAD`` the output object, then (when missing) the failure object."""
    client, owner = _job_s3(job), job.config.expected_bucket_owner
    if _s3_read(client, "head_object", job.output_location, owner) is not None:
        return "completed"
    if job.failure_location and _s3_read(client, "head_object", job.failure_location, owner):
        return "failed"
    return "pending"


def _failure(job: InferenceJob) -> Done | None:
    """The failure object's first 64 KiB (a ranged ``GET``), if it exists."""
    if not job.failure_location:
        return None
    found = _s3_read(
        _job_s3(job), "get_object", job.failure_location, job.config.expected_bucket_owner,
        Range=f"bytes=0-{MAX_FAILURE_BYTES - 1}",
    )
    if found is None:
        return None
    try:
        data = found["Body"].read(MAX_FAILURE_BYTES)
    except Exception as exc:
        raise _s3_error(exc, "get_object", job.failure_location) from exc
    return Done(failure=data.decode("utf-8", "replace"))


def check(job: InferenceJob) -> bool:
    """One poll (at most two requests); True once the outcome is known and kept in the job."""
    if job._done is not None:
        return True
    uri = job.output_location
    found = _s3_read(_job_s3(job), "get_object", uri, job.config.expected_bucket_owner)
    if found is None:
        job._done = _failure(job)
        return job._done is not None
    try:
        body = found["Body"].read()
    except Exception as exc:
        raise _s3_error(exc, "get_object", uri) from exc
    metadata = {"content_type": found.get("ContentType"), "inference_id": job.inference_id, "output_location": uri}
    job._done = Done(generation=job.adapter._from_body(job.request_like, body, metadata))
    return True


def check_exists(job: InferenceJob) -> bool:
    """Like :func:`check` without downloading the output (for ``result_to_file``)."""
    owner = job.config.expected_bucket_owner
    if _s3_read(_job_s3(job), "head_object", job.output_location, owner) is not None:
        return True
    job._done = _failure(job)
    return job._done is not None


def download(job: InferenceJob, path: Path) -> Path:
    """Stream the output object to ``path`` in 1 MiB chunks, through a new temporary file
    beside it (created exclusively, so a planted ``.part`` symlink is never followed) that
    is renamed over ``path`` when complete and removed on failure."""
    uri = job.output_location
    found = _s3_read(_job_s3(job), "get_object", uri, job.config.expected_bucket_owner)
    if found is None:
        raise SageMakerError(f"the output object {uri} disappeared before it was read")

    def chunks() -> Iterator[bytes]:
        try:
            yield from found["Body"].iter_chunks(_CHUNK)
        except Exception as exc:
            raise _s3_error(exc, "get_object", uri) from exc

    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks():
                handle.write(chunk)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _limit(job: InferenceJob, timeout: float | None) -> float:
    return job.config.timeout if timeout is None else float(timeout)


def wait_one(job: InferenceJob, timeout: float | None, poll: Callable[[InferenceJob], bool]) -> None:
    """Poll ``job`` on its schedule until ``poll`` says done; :class:`JobTimeoutError` at the
    deadline. Transient errors (already retried by botocore) only cost a round."""
    limit, last = _limit(job, timeout), None
    for pause in _waits(job.config, limit, job._elapsed()):
        time.sleep(pause)
        try:
            if poll(job):
                return
        except SageMakerError as exc:
            if not _transient(exc):
                raise
            last = exc
    raise job.timeout_error(limit) from last


async def await_one(job: InferenceJob, timeout: float | None, poll: Callable[[InferenceJob], bool]) -> None:
    """Async :func:`wait_one`: polls on the adapter's executor, ``asyncio.sleep`` between."""
    limit, last = _limit(job, timeout), None
    for pause in _waits(job.config, limit, job._elapsed()):
        await asyncio.sleep(pause)
        try:
            if await job.adapter._in_thread(poll, job):
                return
        except SageMakerError as exc:
            if not _transient(exc):
                raise
            last = exc
    raise job.timeout_error(limit) from last


# -- many jobs ------------------------------------------------------------------------


class _Bar:
    """A progress bar on stderr: tqdm when installed, else one self-rewriting line.

    ``progress=True`` shows it only on a terminal; ``"force"`` always.
    """

    def __init__(self, total: int, progress: Progress) -> None:
        self.enabled = bool(progress) and (progress == "force" or sys.stderr.isatty())
        self.total, self.done, self.failed = total, 0, 0
        self._tqdm: Any = None
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self._line()
            return
        self._tqdm = tqdm(total=total, file=sys.stderr, unit="job", desc="async jobs", dynamic_ncols=True)

    def _line(self) -> None:
        failed = f", {self.failed} failed" if self.failed else ""
        sys.stderr.write(f"\rasync jobs: {self.done}/{self.total} done{failed}")
        sys.stderr.flush()

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
        else:
            self._line()

    def close(self) -> None:
        """Finish the bar (and its line); idempotent."""
        if not self.enabled:
            return
        self.enabled = False
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _schedule(jobs: Sequence[InferenceJob], timeout: float | None) -> tuple[AsyncInferenceConfig, float, float]:
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
    return shared, limit, min(job._elapsed() for job in jobs)


def _poll(job: InferenceJob) -> tuple[bool, BaseException | None]:
    """One poll of one job: (finished, error). A transient error leaves it pending."""
    try:
        return check(job), None
    except SageMakerError as exc:
        return not _transient(exc), exc
    except Exception as exc:  # e.g. a parse error: this job is over, the others go on
        return True, exc


def _settle(
    jobs: Sequence[InferenceJob], slots: list[Any], index: int, error: BaseException | None, generations: bool
) -> bool:
    """Fill slot ``index`` from a finished job; True when it holds an error."""
    if error is None:
        try:
            slots[index] = jobs[index]._value(generation=generations)
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
        self, jobs: Iterable[InferenceJob], timeout: float | None, progress: Progress, generations: bool
    ) -> None:
        self.jobs = list(jobs)
        self.slots: list[Any] = [None] * len(self.jobs)
        self.pending: dict[int, BaseException | None] = {}
        self.generations = generations
        self.order: list[int] = []
        self.limit = 0.0
        self.schedule: tuple[AsyncInferenceConfig, float, float] | None = None
        if not self.jobs:
            self.bar = _Bar(0, False)
            return
        self.schedule = _schedule(self.jobs, timeout)
        self.limit = self.schedule[1]
        self.bar = _Bar(len(self.jobs), progress)
        for index, job in enumerate(self.jobs):
            if job._done is not None:
                self.bar.advance(1, _settle(self.jobs, self.slots, index, None, generations))
            else:
                self.pending[index] = None

    def waits(self) -> Iterator[float]:
        """Pauses before each polling round, while jobs are pending and time remains."""
        if not self.pending or self.schedule is None:
            return
        for pause in _waits(*self.schedule):
            if not self.pending:
                return
            yield pause

    def due(self) -> list[InferenceJob]:
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
            for slot in self.slots:
                if isinstance(slot, BaseException):
                    raise slot
        return self.slots


def wait_all(
    jobs: Iterable[InferenceJob],
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
    jobs: Iterable[InferenceJob],
    timeout: float | None = None,
    progress: Progress = False,
    return_exceptions: bool = True,
    *,
    generations: bool = False,
) -> list[Any]:
    """Async :func:`wait_all`: polls run on the jobs' adapter executors, waits use
    ``asyncio.sleep``."""
    state = _Round(jobs, timeout, progress, generations)
    try:
        for pause in state.waits():
            await asyncio.sleep(pause)
            state.record(await asyncio.gather(*(job.adapter._in_thread(_poll, job) for job in state.due())))
    finally:
        state.bar.close()
    return state.finish(return_exceptions)
