"""``SageMakerEmbeddings``: LangChain embeddings served by a SageMaker endpoint.

The texts are sent in batches of ``batch_size``, up to ``max_concurrency`` batches
at a time, through the same engine (client, retries, routing, typed errors) as
:class:`~sm_llm.SageMakerLLM`. Only the fields embeddings honour are accepted:
generation fields (``temperature``, ``stop``, ``streaming``, ``async_inference``...)
are a :class:`~sm_llm.errors.ConfigurationError` at construction.

Content handlers for embeddings follow one convention (the ``tei``,
``openai-embeddings`` and ``jumpstart-embeddings`` presets, and your own YAML):

* ``input: texts`` — the request template receives a batch as ``messages``,
  one ``{"role": "user", "content": text}`` per text, in order (``input: messages``,
  the earlier spelling, is accepted too);
* ``parameters`` are ``model_kwargs`` (after ``default_parameters``);
* ``response.text`` is the JMESPath that selects the vectors: an array holding one
  array of numbers per input text, in input order. It is evaluated here on the
  parsed JSON reply (never stringified); ``response.error`` is honoured as usual.

A batch whose body exceeds the 6 MiB real-time limit raises
:class:`~sm_llm.errors.ConfigurationError` before anything is sent — lower
``batch_size``. Batches are not split automatically.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import Field

from sm_llm._adapter import AdapterBase
from sm_llm._core.request import PreparedRequest
from sm_llm._expr import Getter, compile_expression
from sm_llm._registry import register
from sm_llm._routing import INVOKE
from sm_llm.errors import ConfigurationError, ResponseParseError, snippet
from sm_llm.handlers import ContentHandler, ParsedOutput

__all__ = ["SageMakerEmbeddings"]

# Batches are parsed with a copy of the handler whose text is this constant: the
# vectors are then neither stringified nor selected by an expression that may raise.
_NO_TEXT = '`""`'


@register("embeddings")
class SageMakerEmbeddings(AdapterBase, Embeddings):
    """Text embeddings from a SageMaker endpoint.

    Example:
        .. code-block:: python

            from sm_llm import SageMakerEmbeddings

            embeddings = SageMakerEmbeddings(endpoint_name="my-tei", content_handler="tei",
                                             region_name="us-east-1")
            vectors = embeddings.embed_documents(["first text", "second text"])
            query = embeddings.embed_query("what is in the second text?")

    Routing (``target_model``, ``inference_component_name``, ``custom_attributes``...)
    is per instance: the embeddings interface has no per-call options.
    """

    content_handler: str | ContentHandler | dict[str, Any] = "tei"
    """Preset (``tei``, ``openai-embeddings``, ``jumpstart-embeddings``), YAML path,
    mapping or ``ContentHandler`` following the embeddings convention (module docstring)."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per request (TEI refuses more than 32 by default)."""
    max_concurrency: int = Field(default=8, gt=0)
    """Batches in flight at once."""

    def model_post_init(self, context: Any, /) -> None:
        """Resolve and check the handler (as the base does), and that it takes a batch."""
        super().model_post_init(context)
        from sm_llm._lc_aws import LangChainAwsHandler

        if isinstance(self.handler, LangChainAwsHandler):
            raise ConfigurationError(
                f"content handler {self.handler.name!r}: langchain-aws handler objects work with "
                "SageMakerLLM and ChatSageMaker; for embeddings use a preset (tei, "
                "openai-embeddings, jumpstart-embeddings) or a YAML handler"
            )
        if self.handler.input not in ("texts", "messages"):
            raise ConfigurationError(
                f"content handler {self.handler.name!r} takes a prompt, not a batch of texts: "
                "embedding handlers declare input: texts (presets: tei, openai-embeddings, "
                "jumpstart-embeddings)"
            )
        self._vectors_getter  # noqa: B018 - compiles the expression now

    @cached_property
    def _vectors_getter(self) -> Getter:
        return compile_expression(self.handler.response.text)

    @cached_property
    def _reply_handler(self) -> ContentHandler:
        response = self.handler.response.model_copy(update={"text": _NO_TEXT})
        return self.handler.model_copy(update={"response": response})

    # -- requests -----------------------------------------------------------------

    def _requests(self, texts: list[str]) -> list[tuple[PreparedRequest, int]]:
        """Every batch rendered and validated (sizes included) before any is sent."""
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ConfigurationError(
                    f"texts[{index}] is {type(text).__name__}; embeddings take strings"
                )
        size = self.batch_size
        requests = []
        for start in range(0, len(texts), size):
            batch = texts[start : start + size]
            messages = [{"role": "user", "content": text} for text in batch]
            request = self.engine.prepare(messages=messages, operation=INVOKE)
            requests.append((replace(request, handler=self._reply_handler), len(batch)))
        return requests

    def _vectors(self, parsed: ParsedOutput, expected: int) -> list[list[float]]:
        """The reply's vectors, checked: one non-empty array of numbers per input."""
        data = parsed.raw
        expression = self.handler.response.text
        try:
            vectors = self._vectors_getter(data)
        except Exception as exc:  # a JMESPath function on the wrong types (sort_by...)
            raise self._parse_error(
                f"cannot select the vectors at {expression!r}: {exc}", data
            ) from exc
        if not isinstance(vectors, list):
            raise self._parse_error(f"reply has no array of vectors at {expression!r}", data)
        if len(vectors) != expected:
            raise self._parse_error(
                f"reply has {len(vectors)} vectors for {expected} input texts", data
            )
        return [self._vector(vector, index, data) for index, vector in enumerate(vectors)]

    def _vector(self, vector: Any, index: int, data: Any) -> list[float]:
        if isinstance(vector, list) and vector and all(type(x) is float for x in vector):
            return vector
        if (
            not isinstance(vector, list)
            or not vector
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector)
        ):
            raise self._parse_error(f"vector {index} is not a non-empty array of numbers", data)
        return [float(x) for x in vector]

    def _parse_error(self, message: str, data: Any) -> ResponseParseError:
        try:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else json.dumps(data)
        except (TypeError, ValueError):
            text = repr(data)
        return ResponseParseError(
            f"{message} (handler {self.handler.name!r})", body_snippet=snippet(text)
        )

    def _embed_batch(self, request: PreparedRequest, expected: int) -> list[list[float]]:
        parsed, _ = self.engine.call(request)
        return self._vectors(parsed, expected)

    async def _aembed_batch(self, request: PreparedRequest, expected: int) -> list[list[float]]:
        parsed, _ = await self.engine.acall(request)
        return self._vectors(parsed, expected)

    # -- LangChain Embeddings ---------------------------------------------------------

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts``: batches run concurrently on threads; vectors in input order.

        The first failure is raised once the batches in flight have finished; batches
        not started by then are never sent.
        """
        requests = self._requests(list(texts))
        if len(requests) <= 1:
            return [v for request, n in requests for v in self._embed_batch(request, n)]
        failed = threading.Event()

        def run(request: PreparedRequest, expected: int) -> list[list[float]] | None:
            if failed.is_set():
                return None  # skipped: an earlier batch failed, its error is raised
            try:
                return self._embed_batch(request, expected)
            except BaseException:
                failed.set()
                raise

        workers = min(len(requests), self.max_concurrency)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sm-llm-embed")
        try:
            futures = [pool.submit(run, request, n) for request, n in requests]
            batches = [future.result() for future in futures]  # raises the first failure
        finally:
            failed.set()
            pool.shutdown(wait=True, cancel_futures=True)
        return [vector for batch in batches if batch is not None for vector in batch]

    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`: at most ``max_concurrency`` batches in flight.

        The first failure cancels the other batches and is raised as is.
        """
        requests = self._requests(list(texts))
        if not requests:
            return []
        limit = asyncio.Semaphore(self.max_concurrency)
        failed = False

        async def one(request: PreparedRequest, expected: int) -> list[list[float]] | None:
            nonlocal failed
            async with limit:
                if failed:  # woken by the release of a batch that just failed: not sent
                    return None
                try:
                    return await self._aembed_batch(request, expected)
                except BaseException:
                    failed = True
                    raise

        tasks = [asyncio.ensure_future(one(request, n)) for request, n in requests]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [vector for batch in results if batch is not None for vector in batch]

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self.aembed_documents([text]))[0]
