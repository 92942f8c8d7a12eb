"""What the LLM and chat adapters share: fields, the client, request preparation
and the sync/async I/O loops. The adapters only convert LangChain inputs and
outputs; everything between the handler and the transport lives here once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
)
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal, TypeVar

from langchain_core.language_models import LangSmithParams
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sm_llm import _aio, _transport
from sm_llm._assembly import (
    PreparedRequest,
    StreamAssembler,
    reply_metadata,
    stream_parser,
    with_partial,
)
from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._calllog import log_call
from sm_llm._names import did_you_mean
from sm_llm._retry import RetryPolicy, RetryState
from sm_llm._routing import (
    ASYNC,
    INVOKE,
    ROUTING_FIELDS,
    STREAM,
    Operation,
    Routing,
    check_body_size,
    check_endpoint_name,
    routing_from_endpoint_kwargs,
)
from sm_llm.errors import ConfigurationError, RequestTimeoutError, SageMakerError
from sm_llm.handlers import ContentHandler, ParsedOutput, StreamDelta

__all__ = ["PreparedRequest", "SageMakerBase", "StreamAssembler", "reply_metadata"]  # re-exported

T = TypeVar("T")

_STANDARD = ("max_tokens", "temperature", "top_p")
# Per-call keyword arguments LangChain itself may pass down (never sent to the container).
_LANGCHAIN_CALL_KWARGS = ("stream",)
# Standard LangChain constructor names SageMaker has no use for, and what to use instead.
_NOT_FIELDS = {
    "api_key": "SageMaker authenticates with AWS credentials (aws_access_key_id, "
    "aws_secret_access_key, credentials_profile_name or the environment), not an API key",
    "model": "a SageMaker endpoint has no model parameter: use endpoint_name, target_model or "
    "inference_component_name (or model_kwargs={'model': ...} for a container's own field)",
}
_NOT_FIELDS["model_name"] = _NOT_FIELDS["model_id"] = _NOT_FIELDS["model"]


class SageMakerBase(BaseModel):
    """Fields and plumbing shared by :class:`SageMakerLLM` and :class:`ChatSageMaker`."""

    # allow_inf_nan=False: timeout=inf would fail at call time as a retryable connection error
    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=(), allow_inf_nan=False
    )

    endpoint_name: str
    """The SageMaker endpoint to invoke."""
    content_handler: str | ContentHandler | dict[str, Any] = "tgi"
    """Preset name, path to a handler YAML file, a mapping, or a ``ContentHandler``."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Generation parameters sent in the body under the container's own names."""
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    streaming: bool = False
    """Make ``invoke`` stream and join (tokens reach callbacks as they arrive)."""
    timeout: float | None = Field(default=None, gt=0)
    """Per-request timeout in seconds (connect and read); overrides both below."""
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=70.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    max_connections: int = Field(default=100, gt=0)
    """Size of the HTTP connection pool, and the concurrency of ``batch``."""

    region_name: str | None = None
    credentials_profile_name: str | None = None
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    endpoint_url: str | None = Field(default=None, alias="base_url")
    config: Any = Field(default=None, exclude=True)
    """A botocore ``Config`` merged over ours."""
    client: Any = Field(default=None, exclude=True)
    """A ready boto3 ``sagemaker-runtime`` client to use instead of creating one."""

    target_model: str | None = None
    target_variant: str | None = None
    target_container_hostname: str | None = None
    inference_component_name: str | None = None
    custom_attributes: str | dict[str, Any] | None = None
    enable_explanations: str | bool | None = None
    session_id: str | None = None
    inference_id: str | None = None
    async_inference: AsyncInferenceConfig | None = None
    """When set, every call goes through ``InvokeEndpointAsync`` (S3 or inline) and waits."""

    _call_kwargs: ClassVar[tuple[str, ...]] = ()
    """Per-call keyword arguments a subclass consumes itself (before :meth:`_prepare`)."""

    _handler: ContentHandler = PrivateAttr()
    _client: Any = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = PrivateAttr(default=None)
    _aclients: _aio.AsyncClients = PrivateAttr(default_factory=_aio.AsyncClients)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            for err in exc.errors():
                original = (err.get("ctx") or {}).get("error")
                if isinstance(original, ConfigurationError):
                    raise original from None
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"invalid {type(self).__name__}: {problems}") from exc

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        """Refuse unknown (misspelt) fields instead of dropping them, and map
        langchain-aws's ``endpoint_kwargs`` onto the routing fields."""
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        known.update(f.alias for f in cls.model_fields.values() if f.alias)
        unknown = [str(key) for key in data if key not in known and key != "endpoint_kwargs"]
        if unknown:
            problems = "; ".join(
                f"{key} ({_NOT_FIELDS[key]})" if key in _NOT_FIELDS
                else f"{key}{did_you_mean(key, sorted(known))}"
                for key in unknown
            )
            raise ConfigurationError(
                f"{cls.__name__} got unknown field{'s' if len(unknown) > 1 else ''}: {problems}. "
                "Container parameters go in model_kwargs={...}"
            )
        if "endpoint_kwargs" in data:
            data = dict(data)
            for name, value in routing_from_endpoint_kwargs(data.pop("endpoint_kwargs")).items():
                if data.get(name) is not None and data[name] != value:
                    raise ConfigurationError(
                        f"{name} is given twice, as {name}={data[name]!r} and in endpoint_kwargs "
                        f"as {value!r}; keep one"
                    )
                data[name] = value
        return data

    @field_validator("content_handler", mode="before")
    @classmethod
    def _langchain_aws_handler(cls, value: Any) -> Any:
        """A langchain-aws handler object becomes a :class:`ContentHandler` that calls it."""
        if isinstance(value, (str, dict, ContentHandler)):
            return value
        return ContentHandler.resolve(value)

    def model_post_init(self, context: Any, /) -> None:
        """Resolve the handler and check routing now — no client is created here."""
        super().model_post_init(context)
        check_endpoint_name(self.endpoint_name)
        if self.endpoint_url is not None:
            _transport.check_http_url(self.endpoint_url, "endpoint_url")
        self._handler = ContentHandler.resolve(self.content_handler)
        self._routing().to_params(INVOKE, default_attributes=self._handler.custom_attributes)
        self._parameters({}, None)  # a handler may refuse a standard field (langchain-aws objects)

    # -- configuration as data ------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Any, name: str | None = None) -> Any:
        """Load this kind of adapter from a YAML file (see :func:`sm_llm.load_config`)."""
        from sm_llm.config import load_config

        adapter = load_config(path, name=name)
        if not isinstance(adapter, cls):
            raise ConfigurationError(
                f"{path} defines a {type(adapter).__name__}, not a {cls.__name__} (check kind:)"
            )
        return adapter

    def to_config(self) -> dict[str, Any]:
        """The adapter's non-default fields as a mapping (secrets left out); round-trips."""
        from sm_llm.config import to_config

        return to_config(self)

    def to_yaml(self) -> str:
        """:meth:`to_config` as YAML text."""
        import yaml

        return str(yaml.safe_dump(self.to_config(), sort_keys=False, allow_unicode=True))

    # -- connection ---------------------------------------------------------------

    @property
    def handler(self) -> ContentHandler:
        """The resolved content handler."""
        return self._handler

    def _settings(self) -> _transport.ClientSettings:
        def secret(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value is not None else None

        return _transport.ClientSettings(
            region_name=self.region_name,
            profile_name=self.credentials_profile_name,
            aws_access_key_id=secret(self.aws_access_key_id),
            aws_secret_access_key=secret(self.aws_secret_access_key),
            aws_session_token=secret(self.aws_session_token),
            endpoint_url=self.endpoint_url,
            connect_timeout=self.timeout or self.connect_timeout,
            read_timeout=self.timeout or self.read_timeout,
            max_retries=self.max_retries,
            max_connections=self.max_connections,
            config=self.config,
        )

    def _get_client(self) -> Any:
        """The boto3 client, created on first use and cached (thread-safe)."""
        if self.client is not None:
            return self.client
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = _transport.create_client(self._settings())
        return self._client

    def _executor(self) -> ThreadPoolExecutor:
        """Worker threads for async calls without aiobotocore, as many as the pool has
        connections (asyncio's default executor has only ``cpu_count + 4``)."""
        if self._pool is None:
            with self._client_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self.max_connections, thread_name_prefix="sm-llm"
                    )
        return self._pool

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` on the adapter's executor without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor(), fn, *args)

    # -- asynchronous inference ------------------------------------------------------

    def submit(self, input: Any, *, stop: list[str] | None = None, **kwargs: Any) -> Any:
        """Submit a long job with ``InvokeEndpointAsync``; returns an
        :class:`sm_llm.async_inference.InferenceJob` at once (see ``async_inference``)."""
        from sm_llm.async_inference import submit

        return submit(self, input, stop=stop, **kwargs)

    async def asubmit(self, input: Any, *, stop: list[str] | None = None, **kwargs: Any) -> Any:
        """Async :meth:`submit`."""
        from sm_llm.async_inference import asubmit

        return await asubmit(self, input, stop=stop, **kwargs)

    def _through_jobs(self, inputs: list[Any], stop: list[str] | None, kwargs: dict[str, Any]) -> list[Any]:
        """Submit every input, then wait for all: generations in input order."""
        from sm_llm.async_inference import wait_all

        jobs = [self.submit(value, stop=stop, **kwargs) for value in inputs]
        return wait_all(jobs, return_exceptions=False, generations=True)

    async def _athrough_jobs(
        self, inputs: list[Any], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> list[Any]:
        from sm_llm.async_inference import await_all

        jobs = await asyncio.gather(*(self.asubmit(value, stop=stop, **kwargs) for value in inputs))
        return await await_all(jobs, return_exceptions=False, generations=True)

    def open_session(self) -> Any:
        """Open a stateful session; returns a :class:`sm_llm.sessions.Session` to use and close."""
        from sm_llm.sessions import open_session

        return open_session(self)

    async def aopen_session(self) -> Any:
        """Async :meth:`open_session`."""
        return await self._in_thread(self.open_session)

    def close(self) -> None:
        """Release the client, its connection pool and worker threads; all are
        recreated if the adapter is used again."""
        with self._client_lock:
            client, self._client = self._client, None
            pool, self._pool = self._pool, None
        if client is not None:
            client.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if self.async_inference is not None:
            from sm_llm.async_inference import close_s3_clients

            close_s3_clients(self)

    async def aclose(self) -> None:
        """Close this event loop's async client, then everything :meth:`close` releases."""
        await self._aclients.aclose()
        self.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _native_async(self) -> bool:
        """aiobotocore is installed and no ready-made (sync) boto3 client was given."""
        return self.client is None and _AIO_AVAILABLE

    def _model_name(self, routing: Mapping[str, Any] | None = None) -> str:
        """Inference component, target model or endpoint — the most specific wins.

        ``routing`` may be per-call kwargs or prepared boto3 parameters.
        """
        given = routing or {}
        return str(
            given.get("model")  # a per-call body "model" (e.g. a vLLM LoRA adapter name)
            or given.get("inference_component_name") or given.get("InferenceComponentName")
            or given.get("target_model") or given.get("TargetModel")
            or self.inference_component_name or self.target_model or self.endpoint_name
        )

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """What identifies this model's replies — callbacks' ``invocation_params``, tracing and
        cache keys: endpoint, handler, model, routing and generation parameters (never
        credentials, custom attributes or session ids)."""
        params: dict[str, Any] = {
            "endpoint_name": self.endpoint_name,
            "content_handler": self._handler.name,
            "model_name": self._model_name(),
            "target_model": self.target_model,
            "inference_component_name": self.inference_component_name,
            "model_kwargs": self.model_kwargs,
            "streaming": self.streaming,
        }
        optional = ("target_variant", "target_container_hostname", *_STANDARD)
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

    # -- requests -----------------------------------------------------------------

    def _routing(self, overrides: Mapping[str, Any] | None = None) -> Routing:
        base = Routing(**{name: getattr(self, name) for name in ROUTING_FIELDS})
        return base.merged(overrides) if overrides else base

    def _split_kwargs(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Per-call kwargs → (routing overrides, generation parameters).

        Per call, only the routing fields, the standard parameters (``max_tokens``,
        ``temperature``, ``top_p``) and ``model_kwargs={...}`` (container names, sent
        as they are) are taken; any other name is refused, never sent or dropped.
        """
        routing = {k: kwargs.pop(k) for k in ROUTING_FIELDS if k in kwargs}
        for key in _LANGCHAIN_CALL_KWARGS:
            kwargs.pop(key, None)
        unknown = [key for key in kwargs if key not in _STANDARD and key != "model_kwargs"]
        if unknown:
            known = (*_STANDARD, "model_kwargs", "stop", *ROUTING_FIELDS, *self._call_kwargs)
            problems = "; ".join(f"{key}{did_you_mean(key, known)}" for key in unknown)
            raise ConfigurationError(
                f"unknown keyword argument{'s' if len(unknown) > 1 else ''} for "
                f"{type(self).__name__}: {problems}. Per call, pass routing fields, max_tokens, "
                f"temperature, top_p, or container parameters as model_kwargs={{{unknown[0]!r}: ...}}"
            )
        call_model_kwargs = kwargs.get("model_kwargs")
        if call_model_kwargs is not None and not isinstance(call_model_kwargs, Mapping):
            raise ConfigurationError(
                f"model_kwargs must be a mapping, not {type(call_model_kwargs).__name__}"
            )
        return routing, kwargs

    def _parameters(self, call_params: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
        standard: dict[str, Any] = {k: getattr(self, k) for k in _STANDARD}
        extra = {**self.model_kwargs, **(call_params.get("model_kwargs") or {})}
        for key in _STANDARD:
            if key in call_params:
                standard[key] = call_params[key]
        standard["stop"] = stop or None
        return self._handler.build_parameters(standard, extra)

    def _prepare(
        self,
        *,
        prompt: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        stop: list[str] | None,
        kwargs: dict[str, Any],
        operation: Operation,
        render_extra: dict[str, Any] | None = None,
    ) -> PreparedRequest:
        """Render and validate one request (sends nothing).

        For ``InvokeEndpointAsync`` the body size is checked by the async path,
        which uploads large bodies to S3 instead of sending them inline.
        """
        kwargs = dict(kwargs)
        overrides, call_params = self._split_kwargs(kwargs)
        stop = list(stop) if stop is not None else (list(self.stop) if self.stop else None)
        stream = operation == STREAM
        handler = self._handler
        if stream and handler.stream is None:
            raise ConfigurationError(f"content handler {handler.name!r} does not stream")
        routing = self._routing(overrides).to_params(
            operation, default_attributes=handler.custom_attributes
        )
        body = handler.render_request(
            prompt,
            messages=messages,
            parameters=self._parameters(call_params, stop),
            stream=stream,
            **(render_extra or {}),
        )
        if operation != ASYNC:
            check_body_size(body, operation)
        params: dict[str, Any] = {
            "EndpointName": self.endpoint_name,
            "Body": body,
            "ContentType": handler.content_type,
            "Accept": handler.accept,
            **routing,
        }
        # One id per logical request, so every retry of it is the same request in the
        # endpoint's logs and data capture.
        params.setdefault("InferenceId", uuid.uuid4().hex)
        return PreparedRequest(operation=operation, params=params, stop=stop, handler=handler)

    def _prepare_input(
        self, value: Any, stop: list[str] | None, kwargs: dict[str, Any], operation: Operation
    ) -> PreparedRequest:
        """Render one adapter input (a prompt, or chat messages) for ``operation``."""
        raise NotImplementedError

    def _from_body(self, request: PreparedRequest, body: bytes, metadata: dict[str, Any]) -> Any:
        """A whole reply body → the adapter's generation (LLM ``Generation`` / chat ``ChatGeneration``)."""
        raise NotImplementedError

    def _output(self, generation: Any) -> Any:
        """A generation → what ``invoke`` returns (``str`` / ``AIMessage``)."""
        raise NotImplementedError

    # -- attempts -------------------------------------------------------------------

    def _retry_state(self) -> RetryState:
        """A fresh retry state for one logical request (policy and overall ``timeout``)."""
        return RetryPolicy(max_retries=self.max_retries, timeout=self.timeout).start()

    def _retrying(self, attempt: Callable[[], T], state: RetryState | None = None) -> tuple[T, RetryState]:
        """Run ``attempt`` under the retry policy and the overall ``timeout``."""
        state = state or self._retry_state()
        while True:
            try:
                remaining = state.remaining()
                if state.attempt == 1 or remaining is None:
                    return attempt(), state
                # A retry must not outlive the deadline: wait for it at most that long (in its
                # own thread: the shared executor may be the one waiting here).
                return _bounded(attempt, max(remaining, 0.0), state), state
            except SageMakerError as exc:
                delay = state.next_delay(exc)
                if delay is None:
                    raise
                time.sleep(delay)

    async def _aretrying(
        self, attempt: Callable[[], Awaitable[T]], state: RetryState | None = None
    ) -> tuple[T, RetryState]:
        """Async :meth:`_retrying`: every attempt is cancelled at the deadline."""
        state = state or self._retry_state()
        while True:
            try:
                remaining = state.remaining()
                if remaining is None:
                    return await attempt(), state
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        return await attempt(), state
                except TimeoutError:
                    raise _deadline(state) from None
            except SageMakerError as exc:
                delay = state.next_delay(exc)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    def _call(self, request: PreparedRequest) -> tuple[ParsedOutput, dict[str, Any]]:
        """One logical ``InvokeEndpoint`` (retried per policy): parsed output and metadata."""
        client = self._get_client()
        state = self._retry_state()
        try:
            # Each attempt reads its body within the time left of the overall timeout.
            result, _ = self._retrying(
                lambda: _transport.invoke(client, request.params, state.remaining()), state
            )
        except SageMakerError as exc:
            log_call("InvokeEndpoint", request.params, state, error=exc)
            raise
        log_call("InvokeEndpoint", request.params, state, status=result.status)
        return request.handler.parse_response(result.body), _with_attempts(result.metadata, state, request)

    async def _acall(self, request: PreparedRequest) -> tuple[ParsedOutput, dict[str, Any]]:
        """Async :meth:`_call`: aiobotocore when installed, else a worker thread."""
        if not self._native_async():
            return await self._in_thread(self._call, request)
        client = await self._aclients.get(self._settings())
        state = self._retry_state()
        try:
            result, _ = await self._aretrying(lambda: _aio.ainvoke(client, request.params), state)
        except SageMakerError as exc:
            log_call("InvokeEndpoint", request.params, state, error=exc)
            raise
        log_call("InvokeEndpoint", request.params, state, status=result.status)
        return request.handler.parse_response(result.body), _with_attempts(result.metadata, state, request)

    def _stream_records(
        self, request: PreparedRequest, assembler: StreamAssembler
    ) -> Generator[StreamDelta, None, None]:
        """Deltas of one streamed call; the HTTP stream is closed however iteration ends."""
        client = self._get_client()
        state = self._retry_state()
        outcome = _StreamOutcome(request.params, state)
        try:
            # Only opening the stream is retried: nothing is retried once bytes have flowed.
            result, _ = self._retrying(lambda: _transport.invoke_stream(client, request.params), state)
        except SageMakerError as exc:
            outcome.failed(exc)
            raise
        outcome.status = result.status
        assembler.metadata = _with_attempts(result.metadata, state, request)
        decoder, parse = stream_parser(request)
        try:
            for part in result.parts:
                yield from map(parse, decoder.feed(part))
                if decoder.done or assembler.stopped:
                    return
            yield from map(parse, decoder.close())
        except SageMakerError as exc:
            raise outcome.failed(with_partial(exc, assembler)) from exc.__cause__ or exc
        finally:
            result.close()
            outcome.log()

    # -- stream drivers: the one loop both adapters stream through ----------------------

    def _chunk(self, piece: str, delta: StreamDelta) -> Any:
        """One stream step as the adapter's chunk, or ``None`` when there is nothing to emit."""
        raise NotImplementedError

    def _last_chunk(self, request: PreparedRequest, assembler: StreamAssembler, tail: str) -> Any:
        """The final chunk: held-back text plus finish reason, usage and reply metadata."""
        raise NotImplementedError

    def _final_chunk(
        self, request: PreparedRequest, assembler: StreamAssembler, held: tuple[str, Any] | None
    ) -> tuple[str, Any]:
        """The held-back chunk merged with the stream's end (held-back stop text, finish
        reason, usage, metadata): no empty chunk trails a stream. Only an empty reply
        streams as one empty chunk, so its metadata still arrives."""
        tail = assembler.finish()
        last = self._last_chunk(request, assembler, tail)
        return (tail, last) if held is None else (held[0] + tail, held[1] + last)

    def _stream_chunks(self, request: PreparedRequest, run_manager: Any) -> Iterator[Any]:
        """Chunks of one streamed call; the stream is closed at a stop sequence or early exit.

        Each chunk is yielded when the next one is ready (or the stream ends), so the last
        one can carry the finish reason and usage instead of an empty chunk after it.
        """
        assembler = StreamAssembler(request.stop)
        records = self._stream_records(request, assembler)
        held: tuple[str, Any] | None = None
        try:
            for delta in records:
                piece = assembler.add(delta)
                if (item := self._chunk(piece, delta)) is not None:
                    if held is not None:
                        if run_manager:
                            run_manager.on_llm_new_token(held[0], chunk=held[1])
                        yield held[1]
                    held = (piece, item)
                if assembler.stopped:
                    break
        except SageMakerError:
            if held is not None:  # what StreamError.partial_text says was yielded
                if run_manager:
                    run_manager.on_llm_new_token(held[0], chunk=held[1])
                yield held[1]
            raise
        finally:
            records.close()
        token, last = self._final_chunk(request, assembler, held)
        if run_manager:
            run_manager.on_llm_new_token(token, chunk=last)
        yield last

    async def _astream_chunks(self, request: PreparedRequest, run_manager: Any) -> AsyncIterator[Any]:
        """Async twin of :meth:`_stream_chunks` (same assembly, async I/O and callbacks)."""
        assembler = StreamAssembler(request.stop)
        records = self._astream_records(request, assembler)
        held: tuple[str, Any] | None = None
        try:
            async for delta in records:
                piece = assembler.add(delta)
                if (item := self._chunk(piece, delta)) is not None:
                    if held is not None:
                        if run_manager:
                            await run_manager.on_llm_new_token(held[0], chunk=held[1])
                        yield held[1]
                    held = (piece, item)
                if assembler.stopped:
                    break
        except SageMakerError:
            if held is not None:
                if run_manager:
                    await run_manager.on_llm_new_token(held[0], chunk=held[1])
                yield held[1]
            raise
        finally:
            await records.aclose()
        token, last = self._final_chunk(request, assembler, held)
        if run_manager:
            await run_manager.on_llm_new_token(token, chunk=last)
        yield last

    async def _astream_records(
        self, request: PreparedRequest, assembler: StreamAssembler
    ) -> AsyncGenerator[StreamDelta, None]:
        """Async twin of :meth:`_stream_records`: aiobotocore, or worker threads without it."""
        parts: AsyncIterator[bytes]
        state = self._retry_state()
        outcome = _StreamOutcome(request.params, state)
        try:
            if self._native_async():
                client = await self._aclients.get(self._settings())
                result: Any
                result, _ = await self._aretrying(lambda: _aio.ainvoke_stream(client, request.params), state)
                parts = result.parts
            else:
                client = await self._in_thread(self._get_client)
                result, _ = await self._in_thread(
                    self._retrying, lambda: _transport.invoke_stream(client, request.params), state
                )
                parts = self._threaded_parts(result)
        except SageMakerError as exc:
            outcome.failed(exc)
            raise
        outcome.status = result.status
        assembler.metadata = _with_attempts(result.metadata, state, request)
        decoder, parse = stream_parser(request)
        try:
            async for part in parts:
                for record in decoder.feed(part):
                    yield parse(record)
                if decoder.done or assembler.stopped:
                    return
            for record in decoder.close():
                yield parse(record)
        except SageMakerError as exc:
            raise outcome.failed(with_partial(exc, assembler)) from exc.__cause__ or exc
        finally:
            result.close()
            outcome.log()

    async def _threaded_parts(self, result: _transport.StreamResult) -> AsyncIterator[bytes]:
        """PayloadPart bytes of a sync stream, each read in a worker thread."""
        sentinel: Any = object()
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                pending = asyncio.ensure_future(self._in_thread(next, result.parts, sentinel))
                part = await pending
                pending = None
                if part is sentinel:
                    return
                yield part
        finally:
            if pending is not None:
                # Cancelled mid-read: closing the response unblocks the worker thread.
                result.close()
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved, so asyncio does not log it


_AIO_AVAILABLE = _aio.aio_available()  # a find_spec probe: aiobotocore is imported on first use


def _bounded(attempt: Callable[[], T], seconds: float, state: RetryState) -> T:
    """``attempt()`` in a daemon thread, abandoned (and a timeout raised) after ``seconds``."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, attempt()))
        except BaseException as exc:
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="sm-llm-retry", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise _deadline(state)
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


class _StreamOutcome:
    """How one streamed call ended, logged once (:func:`log_call`) when it is over."""

    _OPERATION = "InvokeEndpointWithResponseStream"

    def __init__(self, params: dict[str, Any], state: RetryState) -> None:
        self.params, self.state = params, state
        self.status: int | None = None
        self.error: BaseException | None = None

    def failed(self, error: SageMakerError) -> SageMakerError:
        """Record ``error``; log it now if the stream never opened. Returns it."""
        self.error = error
        if self.status is None:
            self.log()
        return error

    def log(self) -> None:
        """Log the call: ``ok`` (also when the reader stopped early) or the error."""
        log_call(self._OPERATION, self.params, self.state, status=self.status, error=self.error)


def _with_attempts(metadata: dict[str, Any], state: RetryState, request: PreparedRequest) -> dict[str, Any]:
    """Reply metadata plus the request's inference id and, after retries, the attempts."""
    metadata = {**metadata, "inference_id": request.params.get("InferenceId")}
    if state.attempt > 1:
        metadata.update(attempts=state.attempt, retry_reasons=list(state.reasons))
    return metadata


def _deadline(state: RetryState) -> RequestTimeoutError:
    return RequestTimeoutError(
        f"the request did not complete within timeout={state.policy.timeout}s "
        f"({state.attempt} attempts; retried after {', '.join(state.reasons) or 'nothing'})"
    )
