"""Configuration of the local endpoint: endpoints, topologies and fault injection.

Everything can be given in Python or loaded from YAML with :meth:`ServerConfig.from_yaml`.
The YAML shape (every key optional; omitting ``endpoints`` keeps the default set)::

    region: us-east-1                 # used in ModelError log links / ARNs
    account_id: "123456789012"
    session_ttl_s: 1200               # stateful-session lifetime (20 min)
    upstream: http://127.0.0.1:9000   # optional: forward every endpoint to this container
    endpoints:
      - name: tgi                     # single variant "AllTraffic"
        container: tgi                # tgi | lmi | openai | jumpstart | jumpstart-chat | text2text
                                      # embeddings: tei | openai-embeddings | jumpstart-embeddings
        model_id: local-echo          # name the container reports
        greeting: "Echo:"             # first token of every reply
      - name: variants
        container: tgi
        variants:                     # TargetVariant / weighted choice
          - {name: blue, weight: 1, greeting: "blue:"}
          - {name: green, weight: 1, greeting: "green:"}
      - name: mme                     # multi-model endpoint: TargetModel required
        container: tgi
        models:
          model-a.tar.gz: {greeting: "A:"}
      - name: multi-container         # direct invocation: TargetContainerHostname required
        containers:
          tgi-c: {container: tgi}
          lmi-c: {container: lmi}
      - name: components              # InferenceComponentName required
        components:
          ic-tgi: {container: tgi}
          ic-cold:                    # scaled to zero: "has no capacity" (400) on both wires
            container: openai
            no_capacity: {requests: 3}  # ...for its first 3 requests; or {seconds: 2.0}
      - name: thinker
        container: openai
        reasoning_field: reasoning    # reasoning (vLLM >= 0.16, default) | reasoning_content
    credentials:                      # the OpenAI route's bearer tokens: access key -> secret
      local: local                    # (default: the dummy pair sm_llm signs with locally)
    faults:                           # see FaultConfig
      latency_ms: 0
      seed: 0
      error_rates: {ThrottlingException: 0.1}
      fail_next: [ServiceUnavailable]
      token_delay_ms: 0
      body_byte_delay_ms: 0           # InvokeEndpoint: the reply body sent one byte at a time
      stream_split_seed: null
      stream_max_part: 0
      stream_omit_trailing_newline: false
      stream_error_after_tokens: null
      stream_error_type: ModelStreamError
      stream_error_code: ModelInvocationTimeExceeded

Entries of ``variants`` / ``models`` / ``containers`` / ``components`` accept the
same ``container``, ``model_id``, ``greeting``, ``require_eula`` and ``reasoning_field``
keys; what they omit is inherited from the endpoint (an MME model reports its own name
as model id). Only ``components`` entries take ``no_capacity`` (see :class:`NoCapacity`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from sm_llm.errors import ConfigurationError

__all__ = [
    "ContainerFormat",
    "EndpointSpec",
    "FaultCode",
    "FaultConfig",
    "ModelSpec",
    "NoCapacity",
    "ReasoningField",
    "ServerConfig",
    "VariantSpec",
    "default_credentials",
    "default_endpoints",
]

ContainerFormat = Literal[
    "tgi", "lmi", "openai", "jumpstart", "jumpstart-chat", "text2text",
    "tei", "openai-embeddings", "jumpstart-embeddings",
]
ErrorCode = Literal[
    "ThrottlingException",
    "ModelNotReadyException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalDependencyException",
    "ModelError",
    "ValidationError",
]
#: ``fail_next`` also accepts transport faults: an abrupt reset, or a reply cut short.
#: (One flat Literal, so that a wrong code gets one message listing every accepted one.)
FaultCode = Literal[ErrorCode, "ConnectionReset", "TruncatedBody"]
#: Where OpenAI-format containers put reasoning: vLLM >= 0.16 ``reasoning``, before ``reasoning_content``.
ReasoningField = Literal["reasoning", "reasoning_content"]

_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FaultConfig(_Model):
    """Fault injection, read live by the server (assign a new one to reset its RNGs/queue).

    ``fail_next`` is consumed in order by the next requests that pass validation and
    routing; ``error_rates`` are per-request probabilities drawn from an RNG seeded
    with ``seed``. Stream controls only affect ``InvokeEndpointWithResponseStream``:
    with ``stream_split_seed`` the body is re-cut into payload parts of 1..``stream_max_part``
    (default 8) random bytes, across records and inside UTF-8 characters; without it a
    positive ``stream_max_part`` cuts parts at that fixed size. ``stream_error_after_tokens``
    lets exactly N token events through, then sends the exception frame.
    """

    latency_ms: float = Field(default=0.0, ge=0)
    seed: int = 0
    error_rates: dict[FaultCode, float] = Field(default_factory=dict)
    fail_next: list[FaultCode] = Field(default_factory=list)
    token_delay_ms: float = Field(default=0.0, ge=0)
    body_byte_delay_ms: float = Field(default=0.0, ge=0)
    """``InvokeEndpoint`` replies: headers at once, then the body one byte every this many ms
    (a reply that trickles in, never tripping a per-read timeout)."""
    stream_split_seed: int | None = None
    stream_max_part: int = Field(default=0, ge=0)
    stream_omit_trailing_newline: bool = False
    stream_error_after_tokens: int | None = Field(default=None, ge=0)
    stream_error_rate: float = Field(default=0.0, ge=0, le=1)
    """Probability that a stream fails mid-way (after 0-5 tokens) — for soak tests."""
    stream_error_type: Literal["ModelStreamError", "InternalStreamFailure"] = "ModelStreamError"
    stream_error_code: Literal["ModelInvocationTimeExceeded", "StreamBroken"] = (
        "ModelInvocationTimeExceeded"
    )

    @field_validator("error_rates")
    @classmethod
    def _check_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        if any(not 0.0 <= rate <= 1.0 for rate in rates.values()):
            raise ValueError("each error rate must be within [0, 1]")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("error rates must add up to at most 1")
        return rates


class NoCapacity(_Model):
    """An inference component scaled to zero (fault injection).

    It answers 400 "Inference Component has no capacity to process this request. ..."
    on both wires until it has "scaled up": after refusing ``requests`` requests, or
    ``seconds`` after the first request reached it (a request is what starts a
    scale-up from zero), whichever comes first. ``LocalEndpoint.reset()`` scales it
    back down.
    """

    requests: int | None = Field(default=None, ge=0)
    seconds: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _either(self) -> Self:
        if self.requests is None and self.seconds is None:
            raise ValueError("no_capacity needs 'requests' or 'seconds'")
        return self


class ModelSpec(_Model):
    """What one model slot serves; unset fields are inherited from the endpoint."""

    container: ContainerFormat | None = None
    model_id: str | None = None
    greeting: str | None = None
    require_eula: bool | None = None
    reasoning_field: ReasoningField | None = None
    no_capacity: NoCapacity | None = None


class VariantSpec(ModelSpec):
    """A production variant and its traffic weight."""

    name: str
    weight: float = Field(default=1.0, ge=0)


def _message(err: Any) -> str:
    """A pydantic error message in this package's words."""
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")


def _check_name(value: str, what: str) -> str:
    if len(value) > 63 or not _NAME.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: must match [a-zA-Z0-9](-*[a-zA-Z0-9])*")
    return value


class EndpointSpec(_Model):
    """One endpoint and its topology (plain, variants, multi-model, multi-container, components)."""

    name: str
    container: ContainerFormat = "tgi"
    model_id: str = "local-echo"
    greeting: str = "Echo:"
    require_eula: bool | None = None
    reasoning_field: ReasoningField = "reasoning"
    variants: list[VariantSpec] = Field(default_factory=list)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    containers: dict[str, ModelSpec] = Field(default_factory=dict)
    components: dict[str, ModelSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_name(self.name, "endpoint name")
        for variant in self.variants:
            _check_name(variant.name, "variant name")
        for hostname in self.containers:
            _check_name(hostname, "container hostname")
        for component in self.components:
            if len(component) > 63 or not re.fullmatch(r"[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?", component):
                raise ValueError(f"invalid inference component name {component!r}")
        if len({v.name for v in self.variants}) != len(self.variants):
            raise ValueError(f"endpoint {self.name}: duplicate variant names")
        if self.variants and sum(v.weight for v in self.variants) <= 0:
            raise ValueError(f"endpoint {self.name}: variant weights must not all be 0")
        others = [*self.variants, *self.models.values(), *self.containers.values()]
        if any(spec.no_capacity is not None for spec in others):
            raise ValueError(f"endpoint {self.name}: only components take no_capacity")
        if sum(bool(x) for x in (self.models, self.containers, self.components)) > 1:
            raise ValueError(
                f"endpoint {self.name}: models, containers and components are exclusive"
            )
        return self


def default_endpoints() -> list[EndpointSpec]:
    """One endpoint per reference container plus one per routing topology."""
    formats: list[ContainerFormat] = [
        "tgi", "lmi", "openai", "jumpstart", "jumpstart-chat", "text2text",
        "tei", "openai-embeddings", "jumpstart-embeddings",
    ]
    plain = [EndpointSpec(name=f, container=f) for f in formats]
    return [
        *plain,
        EndpointSpec(
            name="mme",
            models={
                "model-a.tar.gz": ModelSpec(greeting="A:"),
                "model-b.tar.gz": ModelSpec(greeting="B:"),
            },
        ),
        EndpointSpec(
            name="variants",
            variants=[
                VariantSpec(name="blue", greeting="blue:"),
                VariantSpec(name="green", greeting="green:"),
            ],
        ),
        EndpointSpec(
            name="multi-container",
            containers={"tgi-c": ModelSpec(container="tgi"), "lmi-c": ModelSpec(container="lmi")},
        ),
        EndpointSpec(
            name="components",
            components={
                "ic-tgi": ModelSpec(container="tgi"),
                "ic-openai": ModelSpec(container="openai"),
                "ic-tei": ModelSpec(container="tei"),
            },
        ),
    ]


def default_credentials() -> dict[str, SecretStr]:
    """The dummy key pair sm_llm signs with on a loopback endpoint (``local`` / ``local``)."""
    return {"local": SecretStr("local")}


class ServerConfig(_Model):
    """The whole local endpoint: its endpoints, account facts, faults and upstream.

    ``credentials`` (access key id -> secret key) are the ones bearer tokens on the
    OpenAI-compatible route must be signed with; ``InvokeEndpoint`` still accepts any
    signature.
    """

    region: str = "us-east-1"
    account_id: str = "123456789012"
    credentials: dict[str, SecretStr] = Field(default_factory=default_credentials)
    session_ttl_s: float = Field(default=1200.0, gt=0)
    upstream: str | None = None
    endpoints: list[EndpointSpec] = Field(default_factory=default_endpoints)
    faults: FaultConfig = Field(default_factory=lambda: FaultConfig())

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("endpoint names must be unique")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> ServerConfig:
        """Load a config file (see the module docstring for its shape). Every problem is
        reported at once, with file, line and key: ``local.yaml:8 faults.fail_next.1: ...``."""
        from pydantic import ValidationError

        from sm_llm._yaml_source import (  # the one home of YAML-with-line-numbers
            Problems,
            YamlSource,
        )

        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read local endpoint config {path}: {exc}") from exc
        source = YamlSource(text, Path(path).name)
        try:
            return cls.model_validate(source.data or {})
        except ValidationError as exc:
            problems = Problems(source)
            for err in exc.errors():
                # pydantic adds tags such as "[key]" or "function-after[...]" to locations
                loc = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in p)
                problems.add(loc, _message(err))
            problems.raise_if_any()
            raise  # pragma: no cover - a ValidationError always has errors

    @classmethod
    def from_dict(cls, data: Any) -> ServerConfig:
        """Validate a mapping, raising :class:`ConfigurationError` on bad input."""
        try:
            return cls.model_validate(data)
        except ValueError as exc:
            raise ConfigurationError(f"invalid local endpoint config: {exc}") from exc
