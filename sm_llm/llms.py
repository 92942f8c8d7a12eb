"""``SageMakerLLM``: a LangChain text-completion model on a SageMaker endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM, LangSmithParams, LanguageModelInput
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import get_config_list
from pydantic import Field

from sm_llm._core.pipeline import StreamEnd, StreamPiece
from sm_llm._core.request import PreparedRequest, reply_metadata
from sm_llm._generative import GenerativeBase
from sm_llm._registry import register
from sm_llm._routing import INVOKE, STREAM, Operation
from sm_llm._stop import truncate_at_stop
from sm_llm._tokens import token_ids
from sm_llm.handlers import ParsedOutput

__all__ = ["SageMakerLLM"]


@register("llm")
class SageMakerLLM(GenerativeBase, BaseLLM):
    """A text-completion model served by a SageMaker endpoint.

    Example:
        .. code-block:: python

            from sm_llm import SageMakerLLM

            llm = SageMakerLLM(endpoint_name="my-tgi", content_handler="tgi",
                               region_name="us-east-1", max_tokens=128)
            llm.invoke("Tell me a joke")
            llm.invoke("...", target_model="model-b.tar.gz")   # per-call routing
    """

    rate_limiter: BaseRateLimiter | None = Field(default=None, exclude=True)
    """LangChain rate limiter, acquired once per request (chat models have it built in)."""

    @property
    def _llm_type(self) -> str:
        return "amazon_sagemaker"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._ls_params("llm", stop, kwargs)

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` (so ``get_num_tokens``) from ``custom_get_token_ids``;
        without it a ``ConfigurationError`` — never LangChain's GPT-2 guess."""
        return token_ids(text, custom=self.custom_get_token_ids, tokenizer=None, owner="SageMakerLLM")

    # -- batches ------------------------------------------------------------------

    def _sliding(self, config: RunnableConfig | list[RunnableConfig] | None, count: int) -> bool:
        """``max_concurrency`` given: keep that many requests in flight (a sliding window)
        rather than langchain-core's waves, each of which waits for its slowest request."""
        configs = get_config_list(config, count)
        return bool(count) and configs[0].get("max_concurrency") is not None and self.async_inference is None

    def _per_item(
        self, config: RunnableConfig | list[RunnableConfig] | None, count: int
    ) -> list[RunnableConfig]:
        """Configs for one call per input (``return_exceptions=True``): langchain-core's
        ``BaseLLM.batch`` would give every input the first failure. ``max_concurrency``
        defaults to ``max_connections``, as a whole batch's concurrency does."""
        configs = get_config_list(config, count)
        if configs and configs[0].get("max_concurrency") is None:
            configs = [{**c, "max_concurrency": self.max_connections} for c in configs]
        return configs

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        """Like ``BaseLLM.batch``; with ``max_concurrency`` a window of that many calls.
        With ``return_exceptions=True`` a failing input fails only its own item."""
        if self._sliding(config, len(inputs)):
            return Runnable.batch(self, inputs, config, return_exceptions=return_exceptions, **kwargs)
        if return_exceptions and len(inputs) > 1:
            configs = self._per_item(config, len(inputs))
            return Runnable.batch(self, inputs, configs, return_exceptions=True, **kwargs)
        return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        """Like ``BaseLLM.abatch``; with ``max_concurrency`` a window of that many calls.
        With ``return_exceptions=True`` a failing input fails only its own item."""
        if self._sliding(config, len(inputs)):
            return await Runnable.abatch(self, inputs, config, return_exceptions=return_exceptions, **kwargs)
        if return_exceptions and len(inputs) > 1:
            configs = self._per_item(config, len(inputs))
            return await Runnable.abatch(self, inputs, configs, return_exceptions=True, **kwargs)
        return await super().abatch(inputs, config, return_exceptions=return_exceptions, **kwargs)

    # -- whole replies ------------------------------------------------------------

    def _render(
        self, value: Any, stop: list[str] | None, kwargs: dict[str, Any], operation: Operation
    ) -> PreparedRequest:
        return self.engine.prepare(prompt=str(value), stop=stop, kwargs=kwargs, operation=operation)

    def _from_body(self, request: PreparedRequest, body: bytes, metadata: dict[str, Any]) -> Generation:
        return self._to_generation(request.handler.parse_response(body), metadata, request)

    def _output(self, generation: Any) -> str:
        return str(generation.text)

    def _to_generation(self, parsed: ParsedOutput, metadata: dict[str, Any], request: PreparedRequest) -> Generation:
        text, stopped = truncate_at_stop(parsed.text, request.stop)
        return Generation(
            text=text,
            generation_info=reply_metadata(
                metadata,
                finish_reason="stop" if stopped else parsed.finish_reason,
                usage=parsed.usage,
                model_name=parsed.model_name,
            ),
        )

    def _one(self, prompt: str, stop: list[str] | None, kwargs: dict[str, Any]) -> Generation:
        request = self._render(prompt, stop, kwargs, INVOKE)
        if self.rate_limiter:
            self.rate_limiter.acquire(blocking=True)
        parsed, metadata = self.engine.call(request)
        return self._to_generation(parsed, metadata, request)

    async def _aone(self, prompt: str, stop: list[str] | None, kwargs: dict[str, Any]) -> Generation:
        request = self._render(prompt, stop, kwargs, INVOKE)
        if self.rate_limiter:
            await self.rate_limiter.aacquire(blocking=True)
        parsed, metadata = await self.engine.acall(request)
        return self._to_generation(parsed, metadata, request)

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        if self.async_inference is not None:
            return self._result([[g] for g in self._through_jobs(prompts, stop, kwargs)])
        if self.streaming and len(prompts) == 1:
            generation: GenerationChunk | None = None
            for chunk in self._stream(prompts[0], stop=stop, run_manager=run_manager, **kwargs):
                generation = chunk if generation is None else generation + chunk
            return self._result([[generation or Generation(text="")]])
        if len(prompts) == 1:
            return self._result([[self._one(prompts[0], stop, kwargs)]])
        # langchain-core hands a whole batch to one _generate call: run it concurrently.
        workers = min(len(prompts), self.max_connections)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sm-llm") as pool:
            futures = [pool.submit(self._one, p, stop, kwargs) for p in prompts]
            return self._result([[f.result()] for f in futures])

    def _result(self, generations: list[list[Generation]]) -> LLMResult:
        return LLMResult(
            generations=generations,
            llm_output={"endpoint_name": self.endpoint_name, "model_name": self._model_name()},
        )

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        import asyncio

        if self.async_inference is not None:
            return self._result([[g] for g in await self._athrough_jobs(prompts, stop, kwargs)])
        if self.streaming and len(prompts) == 1:
            generation: GenerationChunk | None = None
            async for chunk in self._astream(prompts[0], stop=stop, run_manager=run_manager, **kwargs):
                generation = chunk if generation is None else generation + chunk
            return self._result([[generation or Generation(text="")]])
        results = await asyncio.gather(*(self._aone(p, stop, kwargs) for p in prompts))
        return self._result([[g] for g in results])

    # -- streams ------------------------------------------------------------------

    def _chunk(self, piece: StreamPiece) -> GenerationChunk | None:
        return GenerationChunk(text=piece.text) if piece.text else None

    def _last_chunk(self, request: PreparedRequest, end: StreamEnd) -> GenerationChunk:
        return GenerationChunk(
            text=end.text,
            generation_info=reply_metadata(
                end.metadata, finish_reason=end.finish_reason, usage=end.usage, model_name=end.model_name
            ),
        )

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        request = self._render(prompt, stop, kwargs, STREAM)
        if self.rate_limiter:
            self.rate_limiter.acquire(blocking=True)
        yield from self._stream_chunks(request, run_manager)

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        request = self._render(prompt, stop, kwargs, STREAM)
        if self.rate_limiter:
            await self.rate_limiter.aacquire(blocking=True)
        async for chunk in self._astream_chunks(request, run_manager):
            yield chunk
