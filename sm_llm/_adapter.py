"""The fields and lifetime all adapters share, and the engine each one owns.

:class:`AdapterBase` holds what every adapter honours (endpoint, handler, connection,
retries, routing) and creates its :class:`~sm_llm.engine.Engine` on first use — never
in a validator. :class:`~sm_llm._generative.GenerativeBase` adds what text generation
honours. Adapters only convert LangChain inputs and outputs.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

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

from sm_llm import _lc_aws  # noqa: F401 - registers langchain-aws handler objects with ContentHandler.resolve
from sm_llm import config as config_files
from sm_llm._core.request import RequestSpec, model_name, parameters
from sm_llm._core.retry import RetryPolicy
from sm_llm._names import did_you_mean
from sm_llm._pickling import without_cached
from sm_llm._routing import (
    INVOKE,
    ROUTING_FIELDS,
    Routing,
    check_endpoint_name,
    routing_from_endpoint_kwargs,
)
from sm_llm._validation import check_http_url, first_configuration_error, validation_problems
from sm_llm.engine import Engine, Replies
from sm_llm.errors import ConfigurationError
from sm_llm.handlers import ContentHandler
from sm_llm.transports import BotocoreTransport, ClientSettings, SigV4HttpTransport, Transport

__all__ = ["TRANSPORTS", "AdapterBase"]

TRANSPORTS = ("botocore", "httpx")
"""The built-in transports ``transport=`` names."""

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
    cold_start_timeout: float | None = Field(default=None, gt=0)
    """Seconds a call waits through "has no capacity" (an inference component scaled to
    zero) and ``ModelNotReady`` answers, with backoff, before raising; ``None``: no waiting
    (``NoCapacityError`` at once, ``ModelNotReady`` only ``max_retries`` times)."""
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
    transport: Any = Field(default="botocore", exclude=True, json_schema_extra={"enum": list(TRANSPORTS)})
    """How SageMaker Runtime is called: ``"botocore"`` (boto3, and aiobotocore for native
    async — the default), ``"httpx"`` (:class:`~sm_llm.transports.SigV4HttpTransport`:
    httpx, signed with botocore's SigV4 signer and credential chain; S3 and SQS stay on
    boto3), or a :class:`~sm_llm.transports.Transport` object (e.g.
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
        if value is None:
            return "botocore"
        if isinstance(value, str):
            if value not in TRANSPORTS:
                raise ConfigurationError(
                    f"transport must be one of {', '.join(map(repr, TRANSPORTS))}, not {value!r}"
                    f"{did_you_mean(value, list(TRANSPORTS))}", field="transport",
                )
        elif not isinstance(value, Transport):
            raise ConfigurationError(
                f"transport must be 'botocore', 'httpx' or a sm_llm.transports.Transport, not "
                f"{type(value).__name__}", field="transport",
            )
        return value

    def _given_transport(self) -> Transport | None:
        """The transport object passed as ``transport=`` (``None`` for a name)."""
        return None if isinstance(self.transport, str) else self.transport

    def model_post_init(self, context: Any, /) -> None:
        """Resolve the handler and check routing now — no client is created here."""
        super().model_post_init(context)
        check_endpoint_name(self.endpoint_name)
        self._handler = ContentHandler.resolve(self.content_handler)
        self._check_connection()
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
        return self._private("_handler")  # type: ignore[no-any-return]

    def _private(self, name: str) -> Any:
        """A private attribute, read on the hot path without pydantic's ``__getattr__``
        (reached only after a failed lookup along the whole MRO: ~3 µs per read)."""
        return self.__pydantic_private__[name]  # type: ignore[index]

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
        return RetryPolicy(
            max_retries=self.max_retries, timeout=self.timeout, cold_start_timeout=self.cold_start_timeout
        )

    def _replies(self) -> Replies | None:
        """How replies become generations, for asynchronous jobs (none by default)."""
        return None

    def _check_connection(self) -> None:
        """Refuse connection fields that do not go together (at construction, and when one
        of them is changed on an adapter already in use)."""
        if self.endpoint_url is not None:
            check_http_url(self.endpoint_url, "endpoint_url")
        if self._given_transport() is not None and self.client is not None:
            raise ConfigurationError("pass client= or transport=, not both (a transport owns its client)")
        if self.transport == "httpx" and self.client is not None:
            raise ConfigurationError(
                "client= is a boto3 client, used by transport='botocore' only; leave it out with "
                "transport='httpx' (the connection fields say where and as whom to call)", field="client",
            )

    def _new_transport(self) -> Transport:
        """The transport the fields describe (when none was given): botocore or httpx."""
        if self.transport == "httpx":
            return SigV4HttpTransport(self._settings())
        return BotocoreTransport(self._settings(), client=self.client)

    def _transport_recipe(self) -> tuple[Any, ...]:
        """What the engine's transport is made of: when it changes, the engine gets a new one.
        (``max_retries`` is left out: retries are the engine's, the clients make one attempt.)"""
        given = self._given_transport()
        if given is not None:
            return (given,)
        return (self.transport, self.client, dataclasses.replace(self._settings(), max_retries=0))

    @property
    def engine(self) -> Engine:
        """The adapter's :class:`~sm_llm.engine.Engine`, created on first use (cheap: clients
        are created by the transport on the first call)."""
        engine: Engine | None = self._private("_engine")
        if engine is None:
            with self._engine_lock:
                engine = self._engine
                if engine is None:
                    self._check_connection()  # fields may have been set since construction
                    transport = self._given_transport() or self._new_transport()
                    engine = self._engine = Engine(
                        transport, self._spec(), policy=self._policy(), replies=self._replies(),
                        max_workers=self.max_connections,
                    )
        return engine

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "transport":
            value = self._check_transport(value)
        engine = self.__pydantic_private__.get("_engine") if self.__pydantic_private__ else None
        if engine is None or name not in type(self).model_fields:
            super().__setattr__(name, value)
            return
        before, recipe = getattr(self, name), self._transport_recipe()
        super().__setattr__(name, value)
        transport = None
        if self._transport_recipe() != recipe:  # transport, client, region, URL, credentials...
            try:
                self._check_connection()
            except ConfigurationError:
                super().__setattr__(name, before)  # refused: the adapter stays as it was
                raise
            transport = self._given_transport() or self._new_transport()
        engine.spec, engine.policy = self._spec(), self._policy()  # fields read at call time
        if transport is not None:
            old, engine.transport = engine.transport, transport
            old.close()  # as close() does: the next call uses the new transport's clients

    def __copy__(self) -> Self:
        copied = super().__copy__()
        copied._engine, copied._engine_lock = None, threading.Lock()  # a copy may differ: its own engine
        return copied

    # -- pickling and deep copies: fields travel, runtime state is recreated lazily ---------

    def _state(self) -> dict[str, Any]:
        """The pydantic state without the engine (clients, pools, event-loop state), its
        lock and cached compiled expressions; secrets stay ``SecretStr``."""
        state = without_cached(super().__getstate__(), type(self))
        private = dict(state.get("__pydantic_private__") or {})
        private.update(_engine=None, _engine_lock=None)
        return {**state, "__pydantic_private__": private}

    def __getstate__(self) -> dict[str, Any]:
        """What ``pickle`` sends: the fields and the resolved handler — never a client."""
        if self.client is not None:
            raise ConfigurationError(
                f"a {type(self).__name__} built with client= cannot be pickled: a boto3 client "
                "belongs to its process. Pass the connection fields instead (region_name, "
                "endpoint_url, credentials...) and each process creates its own client"
            )
        return self._state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__pydantic_private__["_engine_lock"] = threading.Lock()  # type: ignore[index]

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        memo = {} if memo is None else memo
        for shared in (self.client, self.transport):  # the copy shares a given client or transport
            if shared is not None:
                memo[id(shared)] = shared
        cls = type(self)
        copied = cls.__new__(cls)
        memo[id(self)] = copied
        copied.__setstate__(copy.deepcopy(self._state(), memo))
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
        return model_name(given, self.inference_component_name, self.target_model, self.endpoint_name)
