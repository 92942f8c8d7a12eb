"""Asynchronous inference jobs (``InvokeEndpointAsync``): submit, poll, resume.

SageMaker takes the request (up to 1 GB through S3, or ≤ 128,000 bytes inline),
answers 202 at once, runs it for up to an hour and writes the container's reply to
an output object, or an error to a failure object. Here that becomes an
:class:`InferenceJob`, which holds the :class:`~sm_llm.engine.Engine` that submitted
it (its transport reads S3; its :class:`Replies` turn the output into what ``invoke``
returns).

Polling starts ``poll_interval`` after submission and backs off by ``poll_backoff``
up to ``max_poll_interval``; every wait ends at its deadline. A poll is a ``GET``
of the output object (a miss costs what a ``HEAD`` costs, a hit brings the body
with it) and, while it is missing, a ranged ``GET`` of the failure object.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._core.request import PreparedRequest
from sm_llm._core.retry import RetryState
from sm_llm._routing import ASYNC, MAX_ASYNC_INLINE_BODY, check_body_size, check_endpoint_name
from sm_llm._validation import parse_s3_uri
from sm_llm.engine.polling import await_one, wait_one
from sm_llm.errors import (
    AsyncInferenceError,
    ConfigurationError,
    JobTimeoutError,
    RequestValidationError,
    SageMakerError,
    snippet,
)
from sm_llm.handlers import list_presets
from sm_llm.transports.base import Transport

__all__ = [
    "MAX_FAILURE_BYTES",
    "Done",
    "InferenceJob",
    "JobHost",
    "JobStatus",
    "Replies",
    "check_location",
    "resolve_config",
    "submit",
]

JobStatus = Literal["pending", "completed", "failed"]
MAX_FAILURE_BYTES = 64 * 1024
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Replies:
    """How an adapter turns a reply body into its generation, and a generation into what
    ``invoke`` returns (``str`` / ``AIMessage``)."""

    generation: Callable[[PreparedRequest, bytes, dict[str, Any]], Any]
    output: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Done:
    """What a finished job left: its generation, or its failure content."""

    generation: Any = None
    failure: str | None = None


def check_location(value: Any, what: str) -> str:
    """A saved job's ``value`` is an ``s3://bucket/key`` location (``ConfigurationError``
    otherwise): nothing else — ``https://``, ``file://`` — is ever read."""
    if isinstance(value, str):
        parsed = parse_s3_uri(value)
        if parsed is not None and parsed[1]:
            return value
    raise ConfigurationError(f"{what}={value!r} is not allowed: expected an s3://bucket/key location")


class JobHost(Protocol):
    """What a job needs of the engine that submits and reads it (:class:`~sm_llm.engine.Engine`
    is one): its transport, its reply converter, its retry loop and its worker pool.
    Jobs depend on this shape, never on the engine module, which imports them."""

    @property
    def transport(self) -> Transport:
        """The transport that calls ``InvokeEndpointAsync`` and reads S3."""
        ...

    @property
    def replies(self) -> Replies:
        """How reply bodies become the adapter's generations."""
        ...

    def retrying(
        self, attempt: Callable[[float | None], T], state: RetryState | None = None
    ) -> tuple[T, RetryState]:
        """Run ``attempt(remaining seconds)`` under the retry policy."""
        ...

    def to_thread(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run blocking ``fn`` on the worker pool without blocking the event loop."""
        ...


# -- jobs -----------------------------------------------------------------------------

class InferenceJob:
    """One ``InvokeEndpointAsync`` request: where its result will appear, and how to get it."""

    def __init__(
        self,
        *,
        engine: JobHost,
        request: PreparedRequest,
        config: AsyncInferenceConfig,
        inference_id: str,
        output_location: str,
        failure_location: str | None,
        input_location: str | None = None,
        submitted_at: datetime | None = None,
        adapter: Any = None,
    ) -> None:
        self.engine = engine
        self.adapter = adapter
        """The adapter that submitted (or resumed) the job, if any."""
        self.request_like = request
        self.config = config
        self.inference_id = inference_id
        self.output_location = output_location
        self.failure_location = failure_location
        self.input_location = input_location
        self.submitted_at = submitted_at or datetime.now(UTC)
        self.ledger_id: str | None = None
        """The job's id in a :class:`~sm_llm.engine.ledger.JobLedger`, when it has one."""
        self._done: Done | None = None

    def __repr__(self) -> str:
        return (
            f"InferenceJob(inference_id={self.inference_id!r}, endpoint={self.endpoint_name!r}, "
            f"output_location={self.output_location!r})"
        )

    @property
    def endpoint_name(self) -> str:
        """The endpoint the job was submitted to."""
        return str(self.request_like.params["EndpointName"])

    @property
    def elapsed(self) -> float:
        """Seconds since submission."""
        return max(0.0, (datetime.now(UTC) - self.submitted_at).total_seconds())

    @property
    def done(self) -> bool:
        """The outcome (output or failure) is known and kept: waiting returns at once."""
        return self._done is not None

    def settle(self, done: Done) -> InferenceJob:
        """Keep an outcome learnt elsewhere (a ledger, a notification); returns the job."""
        self._done = done
        return self

    def to_thread(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run blocking ``fn`` on the engine's executor."""
        return self.engine.to_thread(fn, *args)

    def _s3(self) -> dict[str, Any]:
        return {"owner": self.config.expected_bucket_owner, "endpoint_url": self.config.s3_endpoint_url}

    # -- one look ---------------------------------------------------------------------

    def status(self) -> JobStatus:
        """``HEAD`` the output object, then (when missing) the failure object."""
        if self._done is not None:
            return "failed" if self._done.failure is not None else "completed"
        transport = self.engine.transport
        if transport.s3_exists(self.output_location, **self._s3()):
            return "completed"
        if self.failure_location and transport.s3_exists(self.failure_location, **self._s3()):
            return "failed"
        return "pending"

    async def astatus(self) -> JobStatus:
        """Async :meth:`status`."""
        return cast(JobStatus, await self.to_thread(self.status))

    def _failure(self) -> Done | None:
        """The failure object's first 64 KiB (a ranged ``GET``), if it exists."""
        if not self.failure_location:
            return None
        found = self.engine.transport.s3_read(self.failure_location, limit=MAX_FAILURE_BYTES, **self._s3())
        return None if found is None else Done(failure=found.body.decode("utf-8", "replace"))

    def poll(self) -> bool:
        """One look (at most two requests); True once the outcome is known and kept."""
        if self._done is not None:
            return True
        uri = self.output_location
        found = self.engine.transport.s3_read(uri, **self._s3())
        if found is None:
            self._done = self._failure()
            return self._done is not None
        metadata = {"content_type": found.content_type, "inference_id": self.inference_id, "output_location": uri}
        self._done = Done(generation=self.engine.replies.generation(self.request_like, found.body, metadata))
        return True

    def poll_exists(self) -> bool:
        """Like :meth:`poll` without downloading the output (for ``result_to_file``)."""
        if self.engine.transport.s3_exists(self.output_location, **self._s3()):
            return True
        self._done = self._failure()
        return self._done is not None

    def _download(self, path: Path) -> Path:
        """Stream the output object to ``path`` in 1 MiB chunks, through a new temporary file
        beside it (created exclusively, so a planted ``.part`` symlink is never followed) that
        is renamed over ``path`` when complete and removed on failure."""
        uri = self.output_location
        chunks = self.engine.transport.s3_chunks(uri, **self._s3())
        if chunks is None:
            raise SageMakerError(f"the output object {uri} disappeared before it was read")
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        partial = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return path

    def _value(self, generation: bool = False) -> Any:
        """The kept outcome: the output (or generation), or the failure raised."""
        done = self._done
        assert done is not None
        if done.failure is not None:
            shown = snippet(done.failure.strip()) or "(empty failure object)"
            raise AsyncInferenceError(
                f"async inference job {self.inference_id} on endpoint {self.endpoint_name!r} "
                f"failed ({self.failure_location}): {shown}",
                failure=done.failure,
                job=self,
            )
        return done.generation if generation else self.engine.replies.output(done.generation)

    def timeout_error(self, timeout: float) -> JobTimeoutError:
        """The error for a wait of ``timeout`` seconds that ended before the job did."""
        return JobTimeoutError(
            f"async inference job {self.inference_id} on endpoint {self.endpoint_name!r} did not "
            f"finish within {timeout:g} s (output: {self.output_location}); it may still be "
            "running: wait again with err.job.result(timeout=...), or save job.to_dict() and resume "
            "later with InferenceJob.from_dict(data, llm=llm).result()",
            job=self,
        )

    # -- waiting ----------------------------------------------------------------------

    def generation(self, timeout: float | None = None) -> Any:
        """Wait for the job; its generation (``Generation`` / ``ChatGeneration``)."""
        if self._done is None:
            wait_one(self, timeout, self.poll)
        return self._value(generation=True)

    async def ageneration(self, timeout: float | None = None) -> Any:
        """Async :meth:`generation`."""
        if self._done is None:
            await await_one(self, timeout, self.poll)
        return self._value(generation=True)

    def result(self, timeout: float | None = None) -> Any:
        """Wait (at most ``timeout`` s, default ``config.timeout``) and return what
        ``invoke`` would (``str`` / ``AIMessage``). Raises :class:`AsyncInferenceError`
        if the job failed, :class:`JobTimeoutError` at the deadline."""
        return self.engine.replies.output(self.generation(timeout))

    async def aresult(self, timeout: float | None = None) -> Any:
        """Async :meth:`result`."""
        return self.engine.replies.output(await self.ageneration(timeout))

    def result_to_file(self, path: str | Path, timeout: float | None = None) -> Path:
        """Wait, then stream the raw output object to ``path`` in 1 MiB chunks (memory stays
        bounded whatever its size); returns the path. Raises like :meth:`result`."""
        if self._done is None:
            wait_one(self, timeout, self.poll_exists)
        if self._done is not None and self._done.failure is not None:
            self._value()
        return self._download(Path(path))

    async def aresult_to_file(self, path: str | Path, timeout: float | None = None) -> Path:
        """Async :meth:`result_to_file`."""
        if self._done is None:
            await await_one(self, timeout, self.poll_exists)
        if self._done is not None and self._done.failure is not None:
            self._value()
        return cast(Path, await self.to_thread(self._download, Path(path)))

    # -- persistence ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What :meth:`from_dict` needs to resume this job elsewhere (JSON-serialisable)."""
        handler = self.request_like.handler.name
        return {
            "inference_id": self.inference_id,
            "endpoint_name": self.endpoint_name,
            "input_location": self.input_location,
            "output_location": self.output_location,
            "failure_location": self.failure_location,
            "submitted_at": self.submitted_at.isoformat(),
            "stop": list(self.request_like.stop) if self.request_like.stop else None,
            "content_handler": handler if handler in list_presets() else None,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, llm: Any, config: AsyncInferenceConfig | Mapping[str, Any] | None = None
    ) -> InferenceJob:
        """Resume a job saved with :meth:`to_dict`, parsing its output with ``llm`` (an
        LLM or chat adapter: its ``engine`` reads the job)."""
        try:
            output = str(data["output_location"])
            inference_id = str(data["inference_id"])
            submitted = datetime.fromisoformat(str(data["submitted_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"not a saved InferenceJob (need inference_id, output_location, submitted_at): {exc}") from exc
        check_location(output, "output_location")
        failure, given_input = data.get("failure_location"), data.get("input_location")
        if failure is not None:
            check_location(failure, "failure_location")
        if given_input is not None:
            check_location(given_input, "input_location")
        endpoint_name = str(data.get("endpoint_name") or llm.endpoint_name)
        check_endpoint_name(endpoint_name)
        request = PreparedRequest(
            operation=ASYNC,
            params={"EndpointName": endpoint_name},
            stop=_saved_stop(data.get("stop")),
            handler=llm.handler,
        )
        return cls(
            engine=llm.engine,
            adapter=llm,
            request=request,
            config=resolve_config(llm.async_inference, config, resuming=True),
            inference_id=inference_id,
            output_location=output,
            failure_location=failure,
            input_location=given_input,
            submitted_at=submitted if submitted.tzinfo else submitted.replace(tzinfo=UTC),
        )


def _saved_stop(stop: Any) -> list[str] | None:
    """A saved ``stop``: a list of strings, or one string — one stop sequence, not its letters."""
    if not stop:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        return list(stop)
    raise ConfigurationError(f"stop={stop!r} is not allowed: expected a list of strings")


# -- submitting -----------------------------------------------------------------------

def resolve_config(
    default: AsyncInferenceConfig | Mapping[str, Any] | None,
    config: AsyncInferenceConfig | Mapping[str, Any] | None,
    *,
    resuming: bool = False,
) -> AsyncInferenceConfig:
    """``config``, else the adapter's ``default``, checked (a resumed job needs neither)."""
    resolved = AsyncInferenceConfig.coerce(config if config is not None else default)
    if resolved is None:
        if resuming:  # waiting needs no input location
            return AsyncInferenceConfig(inline_body=True)
        raise ConfigurationError(
            "asynchronous inference is not configured: set async_inference=AsyncInferenceConfig("
            "input_s3_uri='s3://bucket/prefix/') on the adapter, or pass config=..."
        )
    if not resuming:  # model_copy(update=...), the documented per-call route, skips validation
        AsyncInferenceConfig(**resolved.model_dump())
    return resolved


Record = Callable[[dict[str, Any], bytes | None, str | None], None]
"""Called once the input is in place and before ``InvokeEndpointAsync``: the call's
parameters (no ``Body``), the inline body (or ``None``) and the input location."""


def submit(
    engine: JobHost, request: PreparedRequest, config: AsyncInferenceConfig, *, adapter: Any = None,
    name: str | None = None, record: Record | None = None,
) -> InferenceJob:
    """Upload ``request``'s body (or send it inline) and call ``InvokeEndpointAsync``
    under the engine's retry policy; returns at once with the :class:`InferenceJob`.

    ``name`` (a ledger's job id) names everything: the ``InferenceId`` unless one was
    given, the input object ``<name>.json`` and the output object (``Filename``
    ``<name>.out``). ``record`` is called just before ``InvokeEndpointAsync``."""
    params = dict(request.params)
    body: bytes = params.pop("Body")
    inline = config.inline_body and len(body) <= MAX_ASYNC_INLINE_BODY
    if config.inline_body and not inline and config.input_s3_uri is None:
        check_body_size(body, ASYNC)  # raises, suggesting input_s3_uri
    params.setdefault("InferenceId", name or str(uuid.uuid4()))  # every retry of the call reuses it
    if name is not None:
        params["Filename"] = f"{name}.out"
    for option, value in (
        ("RequestTTLSeconds", config.request_ttl_seconds),
        ("InvocationTimeoutSeconds", config.invocation_timeout_seconds),
        ("S3OutputPathExtension", config.s3_output_path_extension),
        ("Filename", config.filename),
    ):
        if value is not None:
            params[option] = value
    transport, s3 = engine.transport, {"owner": config.expected_bucket_owner, "endpoint_url": config.s3_endpoint_url}
    input_location = None
    if inline:
        params["Body"] = body
    else:
        input_location = f"{config.input_s3_uri}{name or uuid.uuid4()}.json"
        content_type = request.handler.content_type
        engine.retrying(lambda _: transport.s3_upload(input_location, body, content_type=content_type, **s3))
        params["InputLocation"] = input_location
    if record is not None:
        record({k: v for k, v in params.items() if k != "Body"}, params.get("Body"), input_location)
    submitted_at = datetime.now(UTC)
    try:  # the engine's retry policy; the same InferenceId
        response, _ = engine.retrying(lambda remaining: transport.invoke_async(params, timeout=remaining))
    except (RequestValidationError, ConfigurationError):
        if input_location:  # refused: nothing will read it
            with contextlib.suppress(Exception):  # the original error matters more
                transport.s3_delete(input_location, **s3)
        raise
    return InferenceJob(
        engine=engine,
        adapter=adapter,
        request=PreparedRequest(ASYNC, {"EndpointName": params["EndpointName"]}, request.stop, request.handler),
        config=config,
        inference_id=str(response.get("InferenceId") or params["InferenceId"]),
        output_location=str(response["OutputLocation"]),
        failure_location=response.get("FailureLocation"),
        input_location=input_location,
        submitted_at=submitted_at,
    )
