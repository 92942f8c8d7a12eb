"""``InvokeEndpointAsync`` for the local endpoint: jobs run in the background against S3.

:class:`S3AsyncBackend` answers like the service (202, ``{"InferenceId"}``, the
``X-Amzn-SageMaker-OutputLocation`` / ``-FailureLocation`` headers), then, after the
job's latency, reads the input (``InputLocation`` from S3, or the inline body),
runs the endpoint's reference container exactly as ``InvokeEndpoint`` would, and
writes ``<output>/<uuid>.out`` (the container's reply body, verbatim) or
``<failures>/<uuid>-error.out`` (the error message). S3 is any S3 API, typically
moto in server mode: :class:`LocalS3` starts one on loopback.

Latency of a job (the time the "model" takes): ``job_latency_ms`` for every job,
or per request the custom attribute ``sm-llm-local-delay-ms=N`` (custom attributes
reach the container verbatim on SageMaker, so this is the container's own knob; the
reply body is unaffected). A latency over ``InvocationTimeoutSeconds`` ends as a
failure object at that timeout; a job that waited for a worker longer than
``RequestTTLSeconds`` expires as a failure too. (``FaultConfig.latency_ms`` and the
injected errors apply to the ``InvokeEndpointAsync`` call itself, before the 202.)

Waiting jobs cost no thread: one scheduler thread keeps them in a heap ordered by due
time and hands due jobs to a small worker pool. :meth:`S3AsyncBackend.close` (called
by ``LocalEndpoint.stop``) drops queued jobs and stops both; the backend restarts on
its next ``submit``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import re
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

from sm_llm.errors import ConfigurationError
from sm_llm.local._containers import (
    ContainerRequest,
    ContainerUnavailable,
    invoke,
    parse_custom_attributes,
)
from sm_llm.local._errors import ServiceError, model_error
from sm_llm.local._routing import Target
from sm_llm.local._state import AsyncAccepted

__all__ = [
    "DEFAULT_FAILURE_PATH",
    "DEFAULT_OUTPUT_PATH",
    "DELAY_ATTRIBUTE",
    "LocalS3",
    "S3AsyncBackend",
]

logger = logging.getLogger("sm_llm.local")

DEFAULT_OUTPUT_PATH = "s3://sm-llm-local/async-output/"
DEFAULT_FAILURE_PATH = "s3://sm-llm-local/async-failures/"
DELAY_ATTRIBUTE = "sm-llm-local-delay-ms"
_S3 = re.compile(r"s3://([^/]+)/?(.*)")  # fullmatch: "$" would accept a final "\n"
_PREFIX = "x-amzn-sagemaker-"
_ASYNC_ONLY = tuple(
    _PREFIX + name
    for name in (
        "inputlocation", "requestttlseconds", "invocationtimeoutseconds",
        "s3outputpathextension", "filename",
    )
)
_MAX_TICK_S = 1.0


def _split(uri: str) -> tuple[str, str]:
    match = _S3.fullmatch(uri)
    if match is None:
        raise ConfigurationError(f"not an s3:// location: {uri!r}")
    return match.group(1), match.group(2)


def _prefix(uri: str) -> tuple[str, str]:
    bucket, key = _split(uri)
    return bucket, (key.rstrip("/") + "/" if key else "")


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    endpoint_name: str = field(compare=False)
    target: Target = field(compare=False)
    request: ContainerRequest = field(compare=False)
    input_location: str | None = field(compare=False)
    output: tuple[str, str] = field(compare=False)
    failure: tuple[str, str] = field(compare=False)
    ttl_s: float = field(compare=False)
    timed_out_after: int | None = field(compare=False)
    inference_id: str = field(compare=False, default="")
    received: str = field(compare=False, default="")


class S3AsyncBackend:
    """Runs ``InvokeEndpointAsync`` jobs of a :class:`LocalEndpoint` against S3.

    ``s3_endpoint_url`` is the S3 API (e.g. ``LocalS3().url``); output and failure
    objects go under ``output_path`` / ``failure_path`` (buckets created if missing).
    """

    def __init__(
        self,
        s3_endpoint_url: str | None,
        *,
        output_path: str = DEFAULT_OUTPUT_PATH,
        failure_path: str = DEFAULT_FAILURE_PATH,
        job_latency_ms: float = 0.0,
        max_workers: int = 8,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        s3_client: Any = None,
        notifications: Any = None,
    ) -> None:
        if job_latency_ms < 0 or max_workers < 1:
            raise ConfigurationError("job_latency_ms must be >= 0 and max_workers >= 1")
        self.output_path, self.failure_path = output_path, failure_path
        self._output, self._failure = _prefix(output_path), _prefix(failure_path)
        self.job_latency_ms = job_latency_ms
        self.region, self.account_id = region, account_id
        self.notifications = notifications
        """A :class:`~sm_llm.local.LocalNotifications` every finished job is published to."""
        self._max_workers = max_workers
        self._client = s3_client if s3_client is not None else _client(s3_endpoint_url, region, max_workers)
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._running = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._futures: set[Future[None]] = set()
        self._buckets: set[str] = set()
        self._bucket_lock = threading.Lock()
        self.completed = 0
        self.failed = 0

    # -- the AsyncBackend protocol -----------------------------------------------------

    def submit(
        self, *, endpoint_name: str, target: Target, request: ContainerRequest, request_id: str
    ) -> AsyncAccepted:
        """Validate and queue one job; the 202 answer."""
        headers = request.headers
        location = headers.get(_PREFIX + "inputlocation")
        if (location is None) == (not request.body):
            raise ServiceError(
                "ValidationError",
                "Exactly one of InputLocation and Body must be provided"
                if location is None
                else "InputLocation and Body are mutually exclusive: provide exactly one of them",
            )
        inference_id = headers.get(_PREFIX + "inference-id") or str(uuid.uuid4())
        name = str(uuid.uuid4())
        filename = headers.get(_PREFIX + "filename")
        extension = headers.get(_PREFIX + "s3outputpathextension", "").strip("/")
        folder = extension + "/" if extension else ""
        output_name = filename or f"{name}.out"
        failure_name = f"{filename.split('.', 1)[0] if filename else name}-error.out"
        output = (self._output[0], self._output[1] + folder + output_name)
        failure = (self._failure[0], self._failure[1] + folder + failure_name)
        self.ensure_buckets()
        ttl = int(headers.get(_PREFIX + "requestttlseconds", 21600))
        timeout = int(headers.get(_PREFIX + "invocationtimeoutseconds", 900))
        delay_s = self._delay_ms(headers) / 1000.0
        forwarded = {k: v for k, v in headers.items() if k not in _ASYNC_ONLY}
        now = time.monotonic()
        job = _Job(
            due=now + min(delay_s, timeout),
            seq=next(self._seq),
            endpoint_name=endpoint_name,
            target=target,
            request=ContainerRequest(request.body, forwarded, request.model, streaming_api=False),
            input_location=location,
            output=output,
            failure=failure,
            ttl_s=ttl,
            timed_out_after=timeout if delay_s > timeout else None,
            inference_id=inference_id,
            received=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        )
        with self._cond:
            self._start_locked()
            heapq.heappush(self._heap, job)
            self._cond.notify_all()
        return AsyncAccepted(
            inference_id=inference_id,
            output_location=f"s3://{output[0]}/{output[1]}",
            failure_location=f"s3://{failure[0]}/{failure[1]}",
        )

    def _delay_ms(self, headers: Any) -> float:
        attributes = parse_custom_attributes(headers.get(_PREFIX + "custom-attributes", ""))
        value = attributes.get(DELAY_ATTRIBUTE)
        if value is None:
            return self.job_latency_ms
        try:
            return max(0.0, float(value))
        except ValueError:
            raise ServiceError(
                "ValidationError", f"custom attribute {DELAY_ATTRIBUTE} must be a number of ms"
            ) from None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return len(self._heap) + self._running

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every accepted job has written its object; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _MAX_TICK_S))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Drop queued jobs, stop the scheduler and the workers (bounded by ``timeout``)."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            thread, pool = self._thread, self._pool
            self._thread = self._pool = None
            self._running -= sum(future.cancel() for future in list(self._futures))
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        if pool is not None:
            pool.shutdown(wait=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start_locked(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="sm-llm-local-async")
        self._thread = threading.Thread(target=self._schedule, name="sm-llm-local-async", daemon=True)
        self._thread.start()

    def _schedule(self) -> None:
        """Hand each job to a worker when it is due; returns when closing."""
        with self._cond:
            while not self._stopping:
                if not self._heap:
                    self._cond.wait(_MAX_TICK_S)
                    continue
                left = self._heap[0].due - time.monotonic()
                if left > 0:
                    self._cond.wait(min(left, _MAX_TICK_S))
                    continue
                job = heapq.heappop(self._heap)
                pool = self._pool
                if pool is None:
                    return
                self._running += 1
                try:
                    future = pool.submit(self._process, job, time.monotonic())
                except RuntimeError:  # shut down meanwhile
                    self._running -= 1
                    return
                self._futures.add(future)
                future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._cond:  # an RLock: may run in _schedule, which holds it
            self._futures.discard(future)

    # -- one job ---------------------------------------------------------------------------

    def _process(self, job: _Job, dispatched: float) -> None:
        ok: bool | None = None
        try:
            if not self._stopping:
                ok = self._run(job, dispatched)
        except Exception:
            log = logger.debug if self._stopping else logger.warning
            log("local async job for %s failed unexpectedly", job.endpoint_name, exc_info=True)
            with contextlib.suppress(Exception):
                self._put(job.failure, b"Internal failure while running the request.", "text/plain")
                ok = False
        finally:
            with self._cond:
                self._running -= 1
                if ok is not None:
                    self.completed += ok
                    self.failed += not ok
                self._cond.notify_all()

    def _run(self, job: _Job, dispatched: float) -> bool:
        """Run one due job and write its object; True when it succeeded."""
        if job.timed_out_after is not None:
            return self._fail(job, f"Inference request timed out after {job.timed_out_after} seconds "
                                   "(InvocationTimeoutSeconds): the model did not answer in time.")
        if dispatched - job.due > job.ttl_s:
            return self._fail(job, f"Request expired: it waited longer than RequestTTLSeconds ({job.ttl_s:g}).")
        body = job.request.body
        if job.input_location is not None:
            data = self._read_input(job)
            if data is None:
                return False
            body = data
        request = ContainerRequest(body, job.request.headers, job.request.model, streaming_api=False)
        try:
            response = invoke(job.target.container, request)
            data = response.body()
            status, content_type = response.status, response.content_type
        except ContainerUnavailable as exc:
            status, data, content_type = 0, str(exc).encode(), "text/plain"
        except Exception as exc:
            status, data, content_type = 0, f"The container closed the connection: {exc}".encode(), "text/plain"
        if 200 <= status < 300:
            self._put(job.output, data, content_type)
            self._notify(job, content_type=content_type)
            return True
        error = model_error(
            endpoint=job.endpoint_name,
            container_name=job.target.container_name,
            status=status,
            body=data.decode("utf-8", "replace"),
            region=self.region,
            account_id=self.account_id,
        )
        return self._fail(job, error.message)

    def _read_input(self, job: _Job) -> bytes | None:
        assert job.input_location is not None
        match = _S3.fullmatch(job.input_location)
        if match is None or not match.group(2):
            self._fail(job, f"ClientError: InputLocation {job.input_location} is not an s3://bucket/key location.")
            return None
        try:
            found = self._client.get_object(Bucket=match.group(1), Key=match.group(2))
            return bytes(found["Body"].read())
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            self._fail(job, f"ClientError: Failed to download the input data from {job.input_location} ({code}).")
            return None

    def _fail(self, job: _Job, message: str) -> bool:
        self._put(job.failure, message.encode("utf-8"), "text/plain")
        self._notify(job, failure_reason=message)
        return False

    def _notify(self, job: _Job, *, content_type: str | None = None, failure_reason: str | None = None) -> None:
        if self.notifications is None:
            return
        self.notifications.publish(
            endpoint_name=job.endpoint_name, inference_id=job.inference_id, received=job.received,
            input_location=job.input_location, output_location=f"s3://{job.output[0]}/{job.output[1]}",
            content_type=content_type, failure_reason=failure_reason,
        )

    def _put(self, where: tuple[str, str], data: bytes, content_type: str) -> None:
        self._client.put_object(Bucket=where[0], Key=where[1], Body=data, ContentType=content_type)

    def ensure_buckets(self) -> None:
        """Create the output and failure buckets if missing (also done at the first job)."""
        with self._bucket_lock:
            for bucket in {self._output[0], self._failure[0]} - self._buckets:
                try:
                    self._client.create_bucket(Bucket=bucket)
                except Exception as exc:
                    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                    if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise ServiceError(
                            "InternalFailure", f"cannot create the local output bucket {bucket}: {exc}"
                        ) from exc
                self._buckets.add(bucket)


def _client(url: str | None, region: str, workers: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 2},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=workers + 4,
        ),
    )


class LocalS3:
    """An S3 API on loopback: moto in server mode, in a background thread.

    >>> with LocalS3() as s3:  # doctest: +SKIP
    ...     os.environ["AWS_ENDPOINT_URL_S3"] = s3.url
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigurationError(f"LocalS3 only binds loopback addresses, not {host!r}")
        self.host, self._port = host, port
        self._server: Any = None

    def start(self) -> Self:
        """Start moto's server (no-op when running)."""
        if self._server is not None:
            return self
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ConfigurationError(
                "the local S3 needs moto's server, which the 'local-s3' extra installs: "
                "pip install '.[local-s3]' in a checkout (see the README's Install section)"
            ) from exc
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
        server = ThreadedMotoServer(ip_address=self.host, port=self._port, verbose=False)
        server.start()
        self._port = int(server.get_host_and_port()[1])
        self._server = server
        return self

    def stop(self) -> None:
        """Stop the server."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` for ``endpoint_url=`` / ``AWS_ENDPOINT_URL_S3``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
