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
up to ``max_poll_interval``; every wait ends at its deadline. A poll is a ``GET``
of the output object (a miss costs what a ``HEAD`` costs, a hit brings the body
with it) and, while it is missing, a ranged ``GET`` of the failure object.
:func:`wait_all` polls many jobs on one shared schedule.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from sm_llm import _transport
from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._base import PreparedRequest
from sm_llm._jobs_wait import (
    Done,
    _discard,
    _s3,
    _upload,
    await_all,
    await_one,
    check,
    check_exists,
    check_location,
    close_s3_clients,
    download,
    job_status,
    wait_all,
    wait_one,
)
from sm_llm._routing import ASYNC, MAX_ASYNC_INLINE_BODY, check_body_size, check_endpoint_name
from sm_llm.errors import (
    AsyncInferenceError,
    ConfigurationError,
    JobTimeoutError,
    RequestValidationError,
    snippet,
)

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

JobStatus = Literal["pending", "completed", "failed"]
_INLINE_BOTOCORE = (1, 43, 29)


# -- jobs -----------------------------------------------------------------------------

class InferenceJob:
    """One ``InvokeEndpointAsync`` request: where its result will appear, and how to get it."""

    def __init__(
        self,
        *,
        adapter: Any,
        request: PreparedRequest,
        config: AsyncInferenceConfig,
        inference_id: str,
        output_location: str,
        failure_location: str | None,
        input_location: str | None = None,
        submitted_at: datetime | None = None,
    ) -> None:
        self.adapter = adapter
        self.request_like = request
        self.config = config
        self.inference_id = inference_id
        self.output_location = output_location
        self.failure_location = failure_location
        self.input_location = input_location
        self.submitted_at = submitted_at or datetime.now(UTC)
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

    def _elapsed(self) -> float:
        return max(0.0, (datetime.now(UTC) - self.submitted_at).total_seconds())

    # -- one look ---------------------------------------------------------------------

    def status(self) -> JobStatus:
        """``HEAD`` the output object, then (when missing) the failure object."""
        if self._done is not None:
            return "failed" if self._done.failure is not None else "completed"
        return cast(JobStatus, job_status(self))

    async def astatus(self) -> JobStatus:
        """Async :meth:`status`."""
        return cast(JobStatus, await self.adapter._in_thread(self.status))

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
        return done.generation if generation else self.adapter._output(done.generation)

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
            wait_one(self, timeout, check)
        return self._value(generation=True)

    async def ageneration(self, timeout: float | None = None) -> Any:
        """Async :meth:`generation`."""
        if self._done is None:
            await await_one(self, timeout, check)
        return self._value(generation=True)

    def result(self, timeout: float | None = None) -> Any:
        """Wait (at most ``timeout`` s, default ``config.timeout``) and return what
        ``invoke`` would (``str`` / ``AIMessage``). Raises :class:`AsyncInferenceError`
        if the job failed, :class:`JobTimeoutError` at the deadline."""
        return self.adapter._output(self.generation(timeout))

    async def aresult(self, timeout: float | None = None) -> Any:
        """Async :meth:`result`."""
        return self.adapter._output(await self.ageneration(timeout))

    def result_to_file(self, path: str | Path, timeout: float | None = None) -> Path:
        """Wait, then stream the raw output object to ``path`` in 1 MiB chunks (memory stays
        bounded whatever its size); returns the path. Raises like :meth:`result`."""
        if self._done is None:
            wait_one(self, timeout, check_exists)
        if self._done is not None and self._done.failure is not None:
            self._value()
        return download(self, Path(path))

    async def aresult_to_file(self, path: str | Path, timeout: float | None = None) -> Path:
        """Async :meth:`result_to_file`."""
        if self._done is None:
            await await_one(self, timeout, check_exists)
        if self._done is not None and self._done.failure is not None:
            self._value()
        return cast(Path, await self.adapter._in_thread(download, self, Path(path)))

    # -- persistence ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What :meth:`from_dict` needs to resume this job elsewhere (JSON-serialisable)."""
        from sm_llm.handlers import list_presets

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
        """Resume a job saved with :meth:`to_dict`, parsing its output with ``llm``."""
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
            adapter=llm,
            request=request,
            config=_resolve(llm, config, resuming=True),
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

def _resolve(adapter: Any, config: Any, *, resuming: bool = False) -> AsyncInferenceConfig:
    resolved = AsyncInferenceConfig.coerce(config if config is not None else getattr(adapter, "async_inference", None))
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


def _check_inline_support() -> None:
    import botocore

    version = tuple(int(p) for p in re.findall(r"\d+", botocore.__version__)[:3])
    if version < _INLINE_BOTOCORE:
        raise ConfigurationError(
            f"inline async bodies need botocore>=1.43.29 (installed: {botocore.__version__}); "
            "upgrade boto3/botocore or set input_s3_uri to upload inputs to S3"
        )


def submit(
    adapter: Any, input: Any, *, config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
    stop: list[str] | None = None, **kwargs: Any,
) -> InferenceJob:
    """Render ``input`` with ``adapter``, upload it (or send it inline) and call
    ``InvokeEndpointAsync``; returns at once with the :class:`InferenceJob`.
    ``config`` defaults to ``adapter.async_inference``. Everything is validated
    before the first request."""
    config = _resolve(adapter, config)
    request = adapter._prepare_input(input, stop, kwargs, ASYNC)
    params = dict(request.params)
    body: bytes = params.pop("Body")
    inline = config.inline_body and len(body) <= MAX_ASYNC_INLINE_BODY
    if config.inline_body and not inline and config.input_s3_uri is None:
        check_body_size(body, ASYNC)  # raises, suggesting input_s3_uri
    if inline:
        _check_inline_support()
    params.setdefault("InferenceId", str(uuid.uuid4()))  # every retry of the call reuses it
    for name, value in (
        ("RequestTTLSeconds", config.request_ttl_seconds),
        ("InvocationTimeoutSeconds", config.invocation_timeout_seconds),
        ("S3OutputPathExtension", config.s3_output_path_extension),
        ("Filename", config.filename),
    ):
        if value is not None:
            params[name] = value
    runtime = adapter._get_client()
    input_location = None
    if inline:
        params["Body"] = body
    else:
        input_location = f"{config.input_s3_uri}{uuid.uuid4()}.json"
        s3, content_type = _s3(adapter, config), request.handler.content_type
        adapter._retrying(lambda: _upload(s3, body, input_location, content_type, config))
        params["InputLocation"] = input_location

    def call() -> dict[str, Any]:
        try:
            return cast(dict[str, Any], runtime.invoke_endpoint_async(**params))
        except Exception as exc:
            raise _transport.map_error(exc, "InvokeEndpointAsync", params["EndpointName"]) from exc

    submitted_at = datetime.now(UTC)
    try:
        response, _ = adapter._retrying(call)  # the adapter's retry policy; the same InferenceId
    except (RequestValidationError, ConfigurationError):
        if input_location:
            _discard(_s3(adapter, config), input_location, config)  # refused: nothing will read it
        raise
    return InferenceJob(
        adapter=adapter,
        request=PreparedRequest(ASYNC, {"EndpointName": params["EndpointName"]}, request.stop, request.handler),
        config=config,
        inference_id=str(response.get("InferenceId") or params["InferenceId"]),
        output_location=str(response["OutputLocation"]),
        failure_location=response.get("FailureLocation"),
        input_location=input_location,
        submitted_at=submitted_at,
    )


async def asubmit(
    adapter: Any, input: Any, *, config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
    stop: list[str] | None = None, **kwargs: Any,
) -> InferenceJob:
    """Async :func:`submit` (the blocking calls run on the adapter's executor)."""
    return cast(
        InferenceJob,
        await adapter._in_thread(lambda: submit(adapter, input, config=config, stop=stop, **kwargs)),
    )


