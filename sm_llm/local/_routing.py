"""Endpoint topologies: which container and model answer a request, and why not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sm_llm.local._config import ContainerFormat, EndpointSpec, ModelSpec, NoCapacity, ServerConfig
from sm_llm.local._containers import Container, ModelInfo
from sm_llm.local._embeddings import (
    jumpstart_embeddings_container,
    openai_embeddings_container,
    tei_container,
)
from sm_llm.local._errors import ServiceError
from sm_llm.local._faults import FaultState
from sm_llm.local._jumpstart import (
    jumpstart_chat_container,
    jumpstart_container,
    text2text_container,
)
from sm_llm.local._lmi import lmi_container
from sm_llm.local._openai import openai_container
from sm_llm.local._tgi import tgi_container

__all__ = ["CONTAINERS", "Router", "Target"]

CONTAINERS: dict[ContainerFormat, Container] = {
    "tgi": tgi_container,
    "lmi": lmi_container,
    "openai": openai_container,
    "jumpstart": jumpstart_container,
    "jumpstart-chat": jumpstart_chat_container,
    "text2text": text2text_container,
    "tei": tei_container,
    "openai-embeddings": openai_embeddings_container,
    "jumpstart-embeddings": jumpstart_embeddings_container,
}

_TARGET_MODEL = "x-amzn-sagemaker-target-model"
_TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
_HOSTNAME = "x-amzn-sagemaker-target-container-hostname"
_COMPONENT = "x-amzn-sagemaker-inference-component"


@dataclass(frozen=True)
class Target:
    """The resolved destination of one request (``component``: its inference component)."""

    variant: str
    container: Container
    model: ModelInfo
    container_name: str = "primary"
    component: str | None = None
    no_capacity: NoCapacity | None = None


def _validation(message: str) -> ServiceError:
    return ServiceError("ValidationError", message)


class Router:
    """Resolves endpoint names and routing headers to a :class:`Target`.

    With ``upstream`` set, every target uses that container and any valid
    endpoint name is served (unknown names as plain ``AllTraffic`` endpoints).
    """

    def __init__(self, config: ServerConfig, upstream: Container | None = None) -> None:
        self.config = config
        self.upstream = upstream
        self._endpoints = {spec.name: spec for spec in config.endpoints}

    @property
    def endpoint_names(self) -> list[str]:
        """Configured endpoint names, in configuration order."""
        return list(self._endpoints)

    def _model(self, endpoint: EndpointSpec, spec: ModelSpec | None, model_id: str | None = None) -> tuple[Container, ModelInfo]:
        spec = spec or ModelSpec()
        fmt = spec.container or endpoint.container
        info = ModelInfo(
            model_id=spec.model_id or model_id or endpoint.model_id,
            greeting=endpoint.greeting if spec.greeting is None else spec.greeting,
            require_eula=endpoint.require_eula if spec.require_eula is None else spec.require_eula,
            reasoning_field=spec.reasoning_field or endpoint.reasoning_field,
        )
        return self.upstream or CONTAINERS[fmt], info

    def resolve(
        self, endpoint_name: str, headers: Mapping[str, str], faults: FaultState
    ) -> Target:
        """Pick variant, container and model, or raise the service's ValidationError."""
        endpoint = self._endpoints.get(endpoint_name)
        if endpoint is None:
            if self.upstream is None:
                raise _validation(
                    f"Endpoint {endpoint_name} of account {self.config.account_id} not found."
                )
            endpoint = EndpointSpec(name=endpoint_name)
        variant_spec: ModelSpec | None = None
        variant = "AllTraffic"
        if endpoint.variants:
            wanted = headers.get(_TARGET_VARIANT)
            by_name = {v.name: v for v in endpoint.variants}
            if wanted is not None:
                if wanted not in by_name:
                    raise _validation(
                        f"The variant {wanted} is not present in endpoint {endpoint_name}."
                    )
                variant = wanted
            else:
                variant = faults.choose_variant(
                    list(by_name), [v.weight for v in endpoint.variants]
                )
            variant_spec = by_name[variant]
        elif _TARGET_VARIANT in headers and headers[_TARGET_VARIANT] != variant:
            raise _validation(
                f"The variant {headers[_TARGET_VARIANT]} is not present in endpoint {endpoint_name}."
            )
        return self._slot(endpoint, variant, variant_spec, headers)

    def _slot(
        self,
        endpoint: EndpointSpec,
        variant: str,
        variant_spec: ModelSpec | None,
        headers: Mapping[str, str],
    ) -> Target:
        name = endpoint.name
        model_name = headers.get(_TARGET_MODEL)
        hostname = headers.get(_HOSTNAME)
        component = headers.get(_COMPONENT)
        if model_name is not None and not endpoint.models:
            raise _validation(
                f"Endpoint {name} is not a multi-model endpoint and does not support target model header."
            )
        if hostname is not None and not endpoint.containers:
            raise _validation(
                f"Endpoint {name} is not a multi-container endpoint with Direct invocation mode, "
                "TargetContainerHostname is not supported."
            )
        if component is not None and not endpoint.components:
            raise _validation(f"Inference Component {component} not found on endpoint {name}.")
        if endpoint.models:
            if model_name is None:
                raise _validation(
                    f"Endpoint {name} is a multi-model endpoint: TargetModel is required."
                )
            spec = endpoint.models.get(model_name)
            if spec is None:
                raise _validation(
                    f"Failed to load model {model_name}: could not find the model artifact "
                    f"under the ModelDataUrl of endpoint {name}."
                )
            return Target(variant, *self._model(endpoint, spec, model_id=model_name))
        if endpoint.containers:
            if hostname is None:
                raise _validation(
                    f"Endpoint {name} is a multi-container endpoint in Direct invocation mode: "
                    "TargetContainerHostname is required."
                )
            spec = endpoint.containers.get(hostname)
            if spec is None:
                raise _validation(
                    f"Container hostname {hostname} is not present in endpoint {name}."
                )
            return Target(variant, *self._model(endpoint, spec), container_name=hostname)
        if endpoint.components:
            if component is None:
                raise _validation(
                    f"Inference Component Name header is required for endpoint {name} "
                    "that has inference components."
                )
            spec = endpoint.components.get(component)
            if spec is None:
                raise _validation(f"Inference Component {component} not found on endpoint {name}.")
            return Target(
                variant, *self._model(endpoint, spec), component=component, no_capacity=spec.no_capacity
            )
        return Target(variant, *self._model(endpoint, variant_spec))
