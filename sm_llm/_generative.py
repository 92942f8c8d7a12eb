"""What the LLM and chat adapters share on top of :class:`~sm_llm._adapter.AdapterBase`:
generation fields, streaming, asynchronous jobs, sessions, tracing parameters and the
stream drivers (a few lines each around the engine's steps).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

from langchain_core.language_models import LangSmithParams
from pydantic import BaseModel, Field

from sm_llm._adapter import AdapterBase
from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._core.pipeline import StreamEnd, StreamPiece, StreamStep
from sm_llm._core.request import STANDARD_PARAMETERS, PreparedRequest, RequestSpec
from sm_llm._routing import ASYNC, INVOKE, Operation
from sm_llm.engine import InferenceJob, Replies, Session
from sm_llm.engine.jobs import resolve_config
from sm_llm.engine.polling import await_all, wait_all
from sm_llm.errors import SageMakerError
from sm_llm.handlers import ContentHandler

__all__ = ["GenerativeBase"]

_Held = tuple[str, Any] | None
"""A chunk waiting for the next (its token, the chunk)."""

_INSPECTED_PER_CALL = ("_generate", "_agenerate")
"""Methods whose signature langchain-core reads on every call (does it take ``run_manager``?)."""


class _GenerationFields(BaseModel):
    """Generation fields, declared after the first three shared ones so that the fields of
    the LLM and chat adapters keep their documented order (config files, schemas)."""

    endpoint_name: str
    content_handler: str | ContentHandler | dict[str, Any] = "tgi"
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    streaming: bool = False
    """Make ``invoke`` stream and join (tokens reach callbacks as they arrive)."""


class GenerativeBase(AdapterBase, _GenerationFields):
    """What :class:`SageMakerLLM` and :class:`ChatSageMaker` share: generation fields,
    streaming, asynchronous jobs, sessions and the stream drivers."""

    async_inference: AsyncInferenceConfig | None = None
    """When set, every call goes through ``InvokeEndpointAsync`` (S3 or inline) and waits."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # langchain-core calls inspect.signature(self._generate) on every call (~12 µs): a
        # function's __signature__ is what inspect.signature returns, so compute it once.
        super().__init_subclass__(**kwargs)
        for name in _INSPECTED_PER_CALL:
            method = cls.__dict__.get(name)
            if inspect.isfunction(method) and "__signature__" not in vars(method):
                try:
                    method.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
                except Exception:  # e.g. an annotation that cannot be resolved: leave it to inspect
                    continue

    def _spec(self) -> RequestSpec:
        standard = {name: getattr(self, name) for name in STANDARD_PARAMETERS}
        return RequestSpec(
            self.endpoint_name, self._handler, self._routing(), dict(self.model_kwargs), standard,
            list(self.stop) if self.stop else None, owner=type(self).__name__, call_kwargs=self._call_kwargs,
        )

    def _replies(self) -> Replies:
        return Replies(generation=self._from_body, output=self._output)

    # -- conversion (the adapters fill these in) ------------------------------------------

    def _render(self, value: Any, stop: list[str] | None, kwargs: dict[str, Any], operation: Operation) -> PreparedRequest:
        """Render one adapter input (a prompt, or chat messages) for ``operation``."""
        raise NotImplementedError

    def _from_body(self, request: PreparedRequest, body: bytes, metadata: dict[str, Any]) -> Any:
        """A whole reply body → the adapter's generation (``Generation`` / ``ChatGeneration``)."""
        raise NotImplementedError

    def _output(self, generation: Any) -> Any:
        """A generation → what ``invoke`` returns (``str`` / ``AIMessage``)."""
        raise NotImplementedError

    def _chunk(self, piece: StreamPiece) -> Any:
        """One stream step as the adapter's chunk, or ``None`` when there is nothing to emit."""
        raise NotImplementedError

    def _last_chunk(self, request: PreparedRequest, end: StreamEnd) -> Any:
        """The final chunk: held-back text plus finish reason, usage and reply metadata."""
        raise NotImplementedError

    def prepare_request(
        self,
        input: Any,
        *,
        operation: Operation = INVOKE,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> PreparedRequest:
        """The request ``input`` becomes (a prompt, or chat messages), rendered and
        validated — nothing is sent. ``operation``: ``InvokeEndpoint``,
        ``InvokeEndpointWithResponseStream`` or ``InvokeEndpointAsync``."""
        return self._render(input, stop, kwargs, operation)

    # -- asynchronous inference -----------------------------------------------------------

    def submit(
        self,
        input: Any,
        *,
        config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> InferenceJob:
        """Submit a long job with ``InvokeEndpointAsync``; returns an
        :class:`~sm_llm.async_inference.InferenceJob` at once. ``config`` defaults to
        the adapter's ``async_inference``. Everything is validated before the first request."""
        resolved = resolve_config(self.async_inference, config)
        request = self._render(input, stop, kwargs, ASYNC)
        return self.engine.submit(request, resolved, adapter=self)

    async def asubmit(
        self,
        input: Any,
        *,
        config: AsyncInferenceConfig | Mapping[str, Any] | None = None,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> InferenceJob:
        """Async :meth:`submit` (the blocking calls run on the engine's executor)."""
        return await self.engine.to_thread(lambda: self.submit(input, config=config, stop=stop, **kwargs))

    def _through_jobs(self, inputs: list[Any], stop: list[str] | None, kwargs: dict[str, Any]) -> list[Any]:
        """Submit every input, then wait for all: generations in input order."""
        jobs = [self.submit(value, stop=stop, **kwargs) for value in inputs]
        return wait_all(jobs, return_exceptions=False, generations=True)

    async def _athrough_jobs(self, inputs: list[Any], stop: list[str] | None, kwargs: dict[str, Any]) -> list[Any]:
        jobs = await asyncio.gather(*(self.asubmit(value, stop=stop, **kwargs) for value in inputs))
        return await await_all(jobs, return_exceptions=False, generations=True)

    # -- sessions -------------------------------------------------------------------------

    def open_session(self) -> Session:
        """Open a stateful session; returns a :class:`~sm_llm.sessions.Session` to use and close."""
        return self.engine.open_session(lambda session_id: self.bind(session_id=session_id), adapter=self)  # type: ignore[attr-defined]

    async def aopen_session(self) -> Session:
        """Async :meth:`open_session`."""
        return await self.engine.to_thread(self.open_session)

    # -- tracing --------------------------------------------------------------------------

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """What identifies this model's replies — callbacks' ``invocation_params``, tracing and
        cache keys: endpoint, handler, model, routing and generation parameters (never
        credentials, custom attributes or session ids)."""
        params: dict[str, Any] = {
            "endpoint_name": self.endpoint_name,
            "content_handler": self.handler.name,
            "model_name": self._model_name(),
            "target_model": self.target_model,
            "inference_component_name": self.inference_component_name,
            "model_kwargs": self.model_kwargs,
            "streaming": self.streaming,
        }
        optional = ("target_variant", "target_container_hostname", *STANDARD_PARAMETERS)
        params.update({name: value for name in optional if (value := getattr(self, name)) is not None})
        return params

    def _ls_params(
        self, model_type: Literal["llm", "chat"], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> LangSmithParams:
        """LangSmith tracing parameters (never credentials)."""
        params = LangSmithParams(
            ls_provider="amazon_sagemaker",
            ls_model_name=self._model_name(kwargs),
            ls_model_type=model_type,
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- stream drivers: the one loop both adapters stream through ------------------------
    #
    # Each chunk is yielded when the next one is ready (or the stream ends), so the last one
    # can carry the finish reason and usage instead of an empty chunk after it. Only an
    # empty reply streams as one empty chunk, so its metadata still arrives.

    def _held(self, held: _Held, step: StreamStep, request: PreparedRequest) -> tuple[_Held, _Held]:
        """Take one step: (the chunk to emit now with its token, or ``None``; the chunk now held)."""
        if isinstance(step, StreamEnd):
            last = self._last_chunk(request, step)
            return ((step.text, last) if held is None else (held[0] + step.text, held[1] + last)), None
        chunk = self._chunk(step)
        if chunk is None:
            return None, held
        return held, (step.text, chunk)

    def _stream_chunks(self, request: PreparedRequest, run_manager: Any) -> Iterator[Any]:
        """Chunks of one streamed call; the stream is closed at a stop sequence or early exit."""
        steps = self.engine.stream(request)
        held: _Held = None
        try:
            for step in steps:
                if type(step) is StreamPiece:  # the per-token path, _held's first case inlined
                    chunk = self._chunk(step)
                    if chunk is None:
                        continue
                    out, held = held, (step.text, chunk)
                else:
                    out, held = self._held(held, step, request)
                if out is not None:
                    if run_manager:
                        run_manager.on_llm_new_token(out[0], chunk=out[1])
                    yield out[1]
        except SageMakerError:
            if held is not None:  # what StreamError.partial_text says was yielded
                if run_manager:
                    run_manager.on_llm_new_token(held[0], chunk=held[1])
                yield held[1]
            raise
        finally:
            steps.close()

    async def _astream_chunks(self, request: PreparedRequest, run_manager: Any) -> AsyncIterator[Any]:
        """Async :meth:`_stream_chunks` (same steps, async I/O and callbacks)."""
        steps = self.engine.astream(request)
        held: _Held = None
        try:
            async for step in steps:
                if type(step) is StreamPiece:  # as in _stream_chunks
                    chunk = self._chunk(step)
                    if chunk is None:
                        continue
                    out, held = held, (step.text, chunk)
                else:
                    out, held = self._held(held, step, request)
                if out is not None:
                    if run_manager:
                        await run_manager.on_llm_new_token(out[0], chunk=out[1])
                    yield out[1]
        except SageMakerError:
            if held is not None:
                if run_manager:
                    await run_manager.on_llm_new_token(held[0], chunk=held[1])
                yield held[1]
            raise
        finally:
            await steps.aclose()
