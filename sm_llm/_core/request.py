"""Request preparation and reply metadata, from field values alone (no I/O).

:class:`RequestSpec` is what an adapter's fields say about every request; :func:`prepare`
renders and validates one request from it, the per-call ``stop`` and keyword arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sm_llm._core.retry import RetryState
from sm_llm._names import did_you_mean
from sm_llm._routing import ASYNC, ROUTING_FIELDS, STREAM, Operation, Routing, check_body_size
from sm_llm.errors import ConfigurationError
from sm_llm.handlers import ContentHandler

__all__ = [
    "STANDARD_PARAMETERS",
    "PreparedRequest",
    "RequestSpec",
    "inference_id",
    "model_name",
    "parameters",
    "prepare",
    "reply_metadata",
    "split_kwargs",
    "with_attempts",
]

STANDARD_PARAMETERS = ("max_tokens", "temperature", "top_p")
# Per-call keyword arguments LangChain itself may pass down (never sent to the container).
_LANGCHAIN_CALL_KWARGS = ("stream",)
_NONE: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A validated request, ready for the transport; building it sends nothing."""

    operation: Operation
    params: dict[str, Any]
    stop: list[str] | None
    handler: ContentHandler


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """The defaults every request of one adapter starts from."""

    endpoint_name: str
    handler: ContentHandler
    routing: Routing = field(default_factory=Routing)
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    standard: Mapping[str, Any] = field(default_factory=dict)
    """``max_tokens`` / ``temperature`` / ``top_p`` as the fields set them (``None``: unset)."""
    stop: list[str] | None = None
    owner: str = "the adapter"
    """Who the requests are for, in error messages (the adapter's class name)."""
    call_kwargs: tuple[str, ...] = ()
    """Per-call keyword arguments the adapter consumes itself (chat: ``tools``...)."""
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    """What :func:`prepare` validated and built from these defaults alone, by operation.
    A spec never changes: an adapter whose fields change gets a new one, with an empty memo."""

    def model_name(self, given: Mapping[str, Any] | None = None) -> str:
        """Inference component, target model or endpoint — the most specific wins.

        ``given`` may be per-call kwargs or prepared boto3 parameters.
        """
        return model_name(
            given, self.routing.inference_component_name, self.routing.target_model, self.endpoint_name
        )

    def routing_params(self, operation: Operation, overrides: Mapping[str, Any]) -> dict[str, str]:
        """The validated routing parameters of one request (memoised without overrides)."""
        if overrides:
            return self.routing.merged(overrides).to_params(
                operation, default_attributes=self.handler.custom_attributes
            )
        params: dict[str, str] | None = self._memo.get(operation)
        if params is None:
            params = self._memo[operation] = self.routing.to_params(
                operation, default_attributes=self.handler.custom_attributes
            )
        return params


def model_name(
    given: Mapping[str, Any] | None, inference_component_name: str | None, target_model: str | None,
    endpoint_name: str,
) -> str:
    """The model a request is for: a per-call body ``model`` (e.g. a vLLM LoRA adapter
    name), then the per-call, then the configured inference component or target model,
    then the endpoint."""
    if given:
        chosen = (
            given.get("model")
            or given.get("inference_component_name") or given.get("InferenceComponentName")
            or given.get("target_model") or given.get("TargetModel")
        )
        if chosen:
            return str(chosen)
    return str(inference_component_name or target_model or endpoint_name)


def inference_id() -> str:
    """A new random inference id: ``uuid.uuid4().hex``, built without a ``UUID`` object."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def split_kwargs(spec: RequestSpec, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-call kwargs → (routing overrides, generation parameters); ``kwargs`` is emptied
    of the routing names.

    Per call, only the routing fields, the standard parameters (``max_tokens``,
    ``temperature``, ``top_p``) and ``model_kwargs={...}`` (container names, sent
    as they are) are taken; any other name is refused, never sent or dropped.
    """
    routing = {k: kwargs.pop(k) for k in ROUTING_FIELDS if k in kwargs}
    for key in _LANGCHAIN_CALL_KWARGS:
        kwargs.pop(key, None)
    unknown = [key for key in kwargs if key not in STANDARD_PARAMETERS and key != "model_kwargs"]
    if unknown:
        known = (*STANDARD_PARAMETERS, "model_kwargs", "stop", *ROUTING_FIELDS, *spec.call_kwargs)
        problems = "; ".join(f"{key}{did_you_mean(key, known)}" for key in unknown)
        raise ConfigurationError(
            f"unknown keyword argument{'s' if len(unknown) > 1 else ''} for "
            f"{spec.owner}: {problems}. Per call, pass routing fields, max_tokens, "
            f"temperature, top_p, or container parameters as model_kwargs={{{unknown[0]!r}: ...}}"
        )
    call_model_kwargs = kwargs.get("model_kwargs")
    if call_model_kwargs is not None and not isinstance(call_model_kwargs, Mapping):
        raise ConfigurationError(
            f"model_kwargs must be a mapping, not {type(call_model_kwargs).__name__}"
        )
    return routing, kwargs


def parameters(spec: RequestSpec, call_params: Mapping[str, Any], stop: list[str] | None) -> dict[str, Any]:
    """The container parameters of one request: the fields' values, then the call's."""
    if not call_params and stop == spec.stop:  # the defaults alone: built once per spec
        built: dict[str, Any] | None = spec._memo.get("parameters")
        if built is None:
            built = spec._memo["parameters"] = _parameters(spec, call_params, stop)
        return dict(built)  # a handler may keep or change what it is given
    return _parameters(spec, call_params, stop)


def _parameters(spec: RequestSpec, call_params: Mapping[str, Any], stop: list[str] | None) -> dict[str, Any]:
    standard: dict[str, Any] = {k: spec.standard.get(k) for k in STANDARD_PARAMETERS}
    extra = {**spec.model_kwargs, **(call_params.get("model_kwargs") or {})}
    for key in STANDARD_PARAMETERS:
        if key in call_params:
            standard[key] = call_params[key]
    standard["stop"] = stop or None
    return spec.handler.build_parameters(standard, extra)


def prepare(
    spec: RequestSpec,
    *,
    prompt: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
    operation: Operation,
    render_extra: dict[str, Any] | None = None,
) -> PreparedRequest:
    """Render and validate one request (sends nothing).

    For ``InvokeEndpointAsync`` the body size is checked when the job is submitted,
    which uploads large bodies to S3 instead of sending them inline.
    """
    overrides, call_params = split_kwargs(spec, dict(kwargs)) if kwargs else (_NONE, _NONE)
    stop = list(stop) if stop is not None else (list(spec.stop) if spec.stop else None)
    stream = operation == STREAM
    handler = spec.handler
    if stream and handler.stream is None:
        raise ConfigurationError(f"content handler {handler.name!r} does not stream")
    routing = spec.routing_params(operation, overrides)
    body = handler.render_request(
        prompt,
        messages=messages,
        parameters=parameters(spec, call_params, stop),
        stream=stream,
        **(render_extra or {}),
    )
    if operation != ASYNC:
        check_body_size(body, operation)
    params: dict[str, Any] = {
        "EndpointName": spec.endpoint_name,
        "Body": body,
        "ContentType": handler.content_type,
        "Accept": handler.accept,
        **routing,
    }
    # One id per logical request, so every retry of it is the same request in the
    # endpoint's logs and data capture.
    params.setdefault("InferenceId", inference_id())
    return PreparedRequest(operation=operation, params=params, stop=stop, handler=handler)


def reply_metadata(
    metadata: dict[str, Any],
    *,
    finish_reason: str | None,
    usage: dict[str, int] | None,
    model_name: str | None,
) -> dict[str, Any]:
    """What came back with a reply: variant, custom attributes, sessions, finish, usage."""
    info: dict[str, Any] = {k: v for k, v in metadata.items() if k != "content_type"}
    info["finish_reason"] = finish_reason
    if usage:
        info["usage"] = usage
    if model_name:
        info["model_name"] = model_name
    return info


def with_attempts(metadata: dict[str, Any], state: RetryState, request: PreparedRequest) -> dict[str, Any]:
    """Reply metadata plus the request's inference id and, after retries, the attempts (and
    ``cold_start_seconds`` after waiting through a cold start)."""
    metadata = {**metadata, "inference_id": request.params.get("InferenceId")}
    if state.attempt > 1:
        metadata.update(attempts=state.attempt, retry_reasons=list(state.reasons))
    if state.cold_attempts:
        metadata["cold_start_seconds"] = round(state.cold_start_seconds(), 3)
    return metadata
