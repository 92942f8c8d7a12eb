"""The engine: one object between the adapters and a transport.

It owns the transport, the request defaults (handler, routing, generation fields), the
retry policy and a worker pool, and offers the calls every adapter makes — ``call`` /
``acall``, ``stream`` / ``astream``, ``submit`` / ``asubmit``, ``open_session``,
``close`` / ``aclose`` — as public methods. Sync and async paths are thin loops around
the sans-IO :class:`~sm_llm._core.retry.RetryState` and
:class:`~sm_llm._core.pipeline.StreamPipeline`; both bound every attempt by the overall
deadline (``timeout``): the async loop cancels the attempt, the sync loop hands the
remaining time to the transport, which bounds the attempt by it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._core.calllog import StreamOutcome, describe, log_call
from sm_llm._core.pipeline import StreamPipeline, StreamStep
from sm_llm._core.request import PreparedRequest, RequestSpec, prepare, with_attempts
from sm_llm._core.retry import RetryPolicy, RetryState
from sm_llm._routing import INVOKE, Operation
from sm_llm.engine import jobs
from sm_llm.engine.jobs import InferenceJob, Replies
from sm_llm.engine.sessions import CLOSE, OPEN, Session, parse_new_session, session_params
from sm_llm.errors import ConfigurationError, RequestTimeoutError, SageMakerError
from sm_llm.handlers import ParsedOutput
from sm_llm.transports.base import Transport

__all__ = ["Engine", "Reply", "deadline_error"]

T = TypeVar("T")


class Reply(NamedTuple):
    """A whole reply: parsed by the handler, and its metadata (headers, attempts)."""

    parsed: ParsedOutput
    metadata: dict[str, Any]


def deadline_error(state: RetryState) -> RequestTimeoutError:
    """The error for a logical request that ran out of its overall ``timeout``."""
    return RequestTimeoutError(
        f"the request did not complete within timeout={state.policy.timeout}s "
        f"({state.attempt} attempts; retried after {', '.join(state.reasons) or 'nothing'})"
    )


class Engine:
    """Calls, streams, jobs and sessions of one adapter over one :class:`Transport`.

    ``replies`` turns whole reply bodies into the adapter's generations (needed by
    asynchronous jobs); ``max_workers`` sizes the pool that runs blocking work
    (submissions, job polls, session closes) for async callers.
    """

    def __init__(
        self,
        transport: Transport,
        spec: RequestSpec,
        *,
        policy: RetryPolicy | None = None,
        replies: Replies | None = None,
        max_workers: int = 100,
    ) -> None:
        self.transport = transport
        self.spec = spec
        self.policy = policy or RetryPolicy()
        self._replies = replies
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"Engine(endpoint_name={self.spec.endpoint_name!r}, transport={self.transport!r})"

    @property
    def replies(self) -> Replies:
        """How replies become the adapter's generations (a ``ConfigurationError`` without)."""
        if self._replies is None:
            raise ConfigurationError("this engine has no reply converter: asynchronous jobs need one")
        return self._replies

    # -- requests -------------------------------------------------------------------------

    def prepare(
        self,
        *,
        prompt: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        stop: list[str] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        operation: Operation = INVOKE,
        render_extra: dict[str, Any] | None = None,
    ) -> PreparedRequest:
        """Render and validate one request from the engine's defaults (sends nothing)."""
        return prepare(
            self.spec, prompt=prompt, messages=messages, stop=stop, kwargs=kwargs or {},
            operation=operation, render_extra=render_extra,
        )

    def model_name(self, given: Mapping[str, Any] | None = None) -> str:
        """Inference component, target model or endpoint — the most specific wins."""
        return self.spec.model_name(given)

    # -- retries --------------------------------------------------------------------------

    def retrying(
        self, attempt: Callable[[float | None], T], state: RetryState | None = None
    ) -> tuple[T, RetryState]:
        """Run ``attempt(remaining seconds)`` under the retry policy; the transport bounds
        each attempt by the time it is given, so none outlives the deadline."""
        state = state or self.policy.start()
        while True:
            remaining = state.remaining()
            if remaining is not None and remaining <= 0:
                raise deadline_error(state)
            try:
                return attempt(remaining), state
            except SageMakerError as exc:
                delay = state.next_delay(exc)
                if delay is None:
                    raise
                time.sleep(delay)

    async def aretrying(
        self, attempt: Callable[[float | None], Awaitable[T]], state: RetryState | None = None
    ) -> tuple[T, RetryState]:
        """Async :meth:`retrying`: every attempt is also cancelled at the deadline."""
        state = state or self.policy.start()
        while True:
            remaining = state.remaining()
            try:
                if remaining is None:
                    return await attempt(None), state
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        return await attempt(remaining), state
                except TimeoutError:
                    raise deadline_error(state) from None
            except SageMakerError as exc:
                delay = state.next_delay(exc)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    # -- whole replies --------------------------------------------------------------------

    def call(self, request: PreparedRequest) -> Reply:
        """One logical ``InvokeEndpoint`` (retried per policy): parsed output and metadata.
        Each attempt, its body included, must finish within the time left of ``timeout``."""
        state = self.policy.start(describe(request.params))
        try:
            result, _ = self.retrying(lambda t: self.transport.invoke(request.params, timeout=t), state)
        except SageMakerError as exc:
            log_call(INVOKE, request.params, state, error=exc)
            raise
        log_call(INVOKE, request.params, state, status=result.status)
        return Reply(request.handler.parse_response(result.body), with_attempts(result.metadata, state, request))

    async def acall(self, request: PreparedRequest) -> Reply:
        """Async :meth:`call`."""
        state = self.policy.start(describe(request.params))
        try:
            result, _ = await self.aretrying(lambda t: self.transport.ainvoke(request.params, timeout=t), state)
        except SageMakerError as exc:
            log_call(INVOKE, request.params, state, error=exc)
            raise
        log_call(INVOKE, request.params, state, status=result.status)
        return Reply(request.handler.parse_response(result.body), with_attempts(result.metadata, state, request))

    # -- streams --------------------------------------------------------------------------

    def stream(self, request: PreparedRequest) -> Generator[StreamStep, None, None]:
        """The steps of one streamed call, the :class:`StreamEnd` last. Only opening the
        stream is retried; the HTTP stream is closed however iteration ends."""
        state = self.policy.start(describe(request.params))
        outcome = StreamOutcome(request.params, state)
        try:
            result, _ = self.retrying(lambda t: self.transport.invoke_stream(request.params, timeout=t), state)
        except SageMakerError as exc:
            outcome.failed(exc)
            raise
        outcome.status = result.status
        pipeline = StreamPipeline(request.handler, request.stop, metadata=with_attempts(result.metadata, state, request))
        try:
            yield from pipeline.steps(result.parts)
        except SageMakerError as exc:
            outcome.failed(exc)
            raise
        finally:
            result.close()
            outcome.log()
        yield pipeline.end()

    async def astream(self, request: PreparedRequest) -> AsyncGenerator[StreamStep, None]:
        """Async :meth:`stream`."""
        state = self.policy.start(describe(request.params))
        outcome = StreamOutcome(request.params, state)
        try:
            result, _ = await self.aretrying(
                lambda t: self.transport.ainvoke_stream(request.params, timeout=t), state
            )
        except SageMakerError as exc:
            outcome.failed(exc)
            raise
        outcome.status = result.status
        pipeline = StreamPipeline(request.handler, request.stop, metadata=with_attempts(result.metadata, state, request))
        try:
            async for step in pipeline.asteps(result.parts):
                yield step
        except SageMakerError as exc:
            outcome.failed(exc)
            raise
        finally:
            await result.aclose()
            outcome.log()
        yield pipeline.end()

    # -- asynchronous inference -----------------------------------------------------------

    def submit(self, request: PreparedRequest, config: AsyncInferenceConfig, *, adapter: Any = None) -> InferenceJob:
        """Submit ``request`` with ``InvokeEndpointAsync``; the job at once."""
        return jobs.submit(self, request, config, adapter=adapter)

    async def asubmit(
        self, request: PreparedRequest, config: AsyncInferenceConfig, *, adapter: Any = None
    ) -> InferenceJob:
        """Async :meth:`submit` (the blocking calls run on the engine's executor)."""
        return await self.to_thread(lambda: self.submit(request, config, adapter=adapter))

    # -- sessions -------------------------------------------------------------------------

    def open_session(self, bind: Callable[[str], Any], *, adapter: Any = None) -> Session:
        """Open a session (``InvokeEndpoint`` + ``NEW_SESSION``); ``bind(session_id)`` gives
        the runnable the session delegates to."""
        result = self.transport.invoke(session_params(self.spec, OPEN, "NEW_SESSION"))
        session_id, expires = parse_new_session(result.metadata.get("new_session_id"))
        return Session(self, session_id, expires, bind=bind, adapter=adapter)

    def close_session(self, session_id: str) -> str | None:
        """Close a session; the ``ClosedSessionId`` the endpoint reported."""
        result = self.transport.invoke(session_params(self.spec, CLOSE, session_id))
        closed = result.metadata.get("closed_session_id")
        return str(closed) if closed else None

    # -- threads and lifetime -------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="sm-llm")
        return self._pool

    async def to_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` on the engine's executor without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)

    def close(self) -> None:
        """Release the transport's clients and the worker threads; all are recreated if
        the engine is used again."""
        with self._lock:
            pool, self._pool = self._pool, None
        self.transport.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Close this event loop's async resources, then everything :meth:`close` releases."""
        await self.transport.aclose()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
