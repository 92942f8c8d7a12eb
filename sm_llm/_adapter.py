"""The fields and lifetime all adapters share, and the engine each one owns.

:class:`AdapterBase` holds what every adapter honours (endpoint, handler, connection,
retries, routing) and creates its :class:`~sm_llm.engine.Engine` on first use — never
in a validator. :class:`GenerativeBase` adds what text generation honours (generation
parameters, streaming, asynchronous jobs, sessions) and the stream drivers the LLM and
chat adapters share. Adapters only convert LangChain inputs and outputs.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

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

from sm_llm import config as config_files
from sm_llm._async_config import AsyncInferenceConfig
from sm_llm._core.pipeline import StreamEnd, StreamPiece, StreamStep
from sm_llm._core.request import STANDARD_PARAMETERS, PreparedRequest, RequestSpec, parameters
from sm_llm._core.retry import RetryPolicy
from sm_llm._names import did_you_mean
from sm_llm._routing import (
    ASYNC,
    INVOKE,
    ROUTING_FIELDS,
    Operation,
    Routing,
    check_endpoint_name,
    routing_from_endpoint_kwargs,
)
from sm_llm._validation import check_http_url, first_configuration_error, validation_problems
from sm_llm.engine import Engine, InferenceJob, Replies, Session
from sm_llm.engine.jobs import resolve_config
from sm_llm.engine.polling import await_all, wait_all
from sm_llm.errors import ConfigurationError, SageMakerError
from sm_llm.handlers import ContentHandler
from sm_llm.transports import BotocoreTransport, ClientSettings, Transport

__all__ = ["AdapterBase", "GenerativeBase"]

_Held = tuple[str, Any] | None
"""A chunk waiting for the next (its token, the chunk)."""

# Standard LangChain constructor names SageMaker has no use for, and what to use instead.
_NOT_FIELDS = {
    "api_key": "SageMaker authenticates with AWS credentials (aws_access_key_id, "
    "aws_secret_access_key, credentials_profile_name or the environment), not an API key",
    "model": "a SageMaker endpoint has no model parameter: use endpoint_name, target_model or "
    "inference_component_name (or model_kwargs={'model': ...} for a container's own field)",
}
_NOT_FIELDS["model_name"] = _NOT_FIELDS["model_id"] = _NOT_FIELDS["model"]


class AdapterBase(BaseModel):
    """Fields and plumbing shared by every adapter."""

    # allow_inf_nan=False: timeout=inf would fail at call time as a retryable connection error
    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=(), allow_inf_nan=False
    )

    endpoint_name: str
    """The SageMaker endpoint to invoke."""
    content_handler: str | ContentHandler | dict[str, Any] = "tgi"
    """Preset name, path to a handler YAML file, a mapping, or a ``ContentHandler``."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Parameters sent in the body under the container's own names."""
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
    """A ready ``sagemaker-runtime`` client to use instead of creating one: a boto3 client
    (async calls then run on worker threads) or an aiobotocore one (async calls only)."""
    transport: Any = Field(default=None, exclude=True)
    """A :class:`~sm_llm.transports.Transport` to use instead of botocore (e.g.
    :class:`~sm_llm.transports.FakeTransport` in unit tests)."""

    target_model: str | None = None
    target_variant: str | None = None
    target_container_hostname: str | None = None
    inference_component_name: str | None = None
    custom_attributes: str | dict[str, Any] | None = None
    enable_explanations: str | bool | None = None
    session_id: str | None = None
    inference_id: str | None = None

    _call_kwargs: ClassVar[tuple[str, ...]] = ()
    """Per-call keyword arguments a subclass consumes itself (before the engine prepares)."""

    _handler: ContentHandler = PrivateAttr()
    _engine: Engine | None = PrivateAttr(default=None)
    _engine_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raised = first_configuration_error(exc)
            if raised is not None:
                raise raised from None
            problems = "; ".join(validation_problems(exc))
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

    @field_validator("transport")
    @classmethod
    def _check_transport(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, Transport):
            raise ConfigurationError(
                f"transport must be a sm_llm.transports.Transport, not {type(value).__name__}"
            )
        return value

    def model_post_init(self, context: Any, /) -> None:
        """Resolve the handler and check routing now — no client is created here."""
        super().model_post_init(context)
        check_endpoint_name(self.endpoint_name)
        if self.endpoint_url is not None:
            check_http_url(self.endpoint_url, "endpoint_url")
        if self.transport is not None and self.client is not None:
            raise ConfigurationError("pass client= or transport=, not both (a transport owns its client)")
        self._handler = ContentHandler.resolve(self.content_handler)
        self._routing().to_params(INVOKE, default_attributes=self._handler.custom_attributes)
        parameters(self._spec(), {}, None)  # a handler may refuse a standard field (langchain-aws objects)

    # -- configuration as data ----------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path, name: str | None = None) -> Self:
        """Load this kind of adapter from a YAML file (see :func:`sm_llm.load_config`)."""
        adapter = config_files.load_config(path, name=name)
        if not isinstance(adapter, cls):
            raise ConfigurationError(
                f"{path} defines a {type(adapter).__name__}, not a {cls.__name__} (check kind:)"
            )
        return adapter

    def to_config(self) -> dict[str, Any]:
        """The adapter's non-default fields as a mapping (secrets left out); round-trips."""
        return config_files.to_config(self)

    def to_yaml(self) -> str:
        """:meth:`to_config` as YAML text."""
        import yaml

        return str(yaml.safe_dump(self.to_config(), sort_keys=False, allow_unicode=True))

    # -- the engine -----------------------------------------------------------------------

    @property
    def handler(self) -> ContentHandler:
        """The resolved content handler."""
        return self._handler

    def _settings(self) -> ClientSettings:
        def secret(value: SecretStr | None) -> str | None:
            return value.get_secret_value() if value is not None else None

        return ClientSettings(
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

    def _routing(self) -> Routing:
        return Routing(**{name: getattr(self, name) for name in ROUTING_FIELDS})

    def _spec(self) -> RequestSpec:
        """The request defaults the fields give (generation fields: see ``GenerativeBase``)."""
        return RequestSpec(
            self.endpoint_name, self._handler, self._routing(), dict(self.model_kwargs),
            owner=type(self).__name__, call_kwargs=self._call_kwargs,
        )

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.max_retries, timeout=self.timeout)

    def _replies(self) -> Replies | None:
        """How replies become generations, for asynchronous jobs (none by default)."""
        return None

    @property
    def engine(self) -> Engine:
        """The adapter's :class:`~sm_llm.engine.Engine`, created on first use (cheap: clients
        are created by the transport on the first call)."""
        engine = self._engine
        if engine is None:
            with self._engine_lock:
                engine = self._engine
                if engine is None:
                    transport = self.transport or BotocoreTransport(self._settings(), client=self.client)
                    engine = self._engine = Engine(
                        transport, self._spec(), policy=self._policy(), replies=self._replies(),
                        max_workers=self.max_connections,
                    )
        return engine

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        engine = self.__pydantic_private__.get("_engine") if self.__pydantic_private__ else None
        if engine is not None and name in type(self).model_fields:
            engine.spec, engine.policy = self._spec(), self._policy()  # fields read at call time

    def __copy__(self) -> Self:
        copied = super().__copy__()
        copied._engine, copied._engine_lock = None, threading.Lock()  # a copy may differ: its own engine
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        engine, lock = self._engine, self._engine_lock
        self._engine, self._engine_lock = None, None  # type: ignore[assignment]
        try:
            copied = super().__deepcopy__(memo)
        finally:
            self._engine, self._engine_lock = engine, lock
        copied._engine_lock = threading.Lock()
        return copied

    def close(self) -> None:
        """Release the client, its connection pool and worker threads; all are
        recreated if the adapter is used again."""
        if self._engine is not None:
            self._engine.close()

    async def aclose(self) -> None:
        """Close this event loop's async client, then everything :meth:`close` releases."""
        if self._engine is not None:
            await self._engine.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _model_name(self, given: Mapping[str, Any] | None = None) -> str:
        return self._spec().model_name(given)


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
        import asyncio

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
            "content_handler": self._handler.name,
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
