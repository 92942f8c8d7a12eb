"""A SageMaker-Runtime-compatible server on loopback.

It serves ``InvokeEndpoint``, ``InvokeEndpointWithResponseStream`` (AWS event-stream
framing) and ``InvokeEndpointAsync`` at their real paths with the real status codes,
error shapes and headers, backed by reference containers that speak each preset's
wire format (TGI, LMI, OpenAI/vLLM, JumpStart, text2text) around a deterministic
echo model; or it forwards to a real container (``upstream=``). It also serves
SageMaker's OpenAI-compatible route (``/endpoints/{name}/openai/v1/chat/completions``)
behind bearer-token verification (:meth:`LocalEndpoint.openai_base_url`). Fault injection
(latency, error codes, stream splitting and mid-stream errors) is configured with
:class:`FaultConfig`; endpoints and topologies with :class:`ServerConfig` (YAML
shape documented in :mod:`sm_llm.local._config`).

>>> from sm_llm.local import LocalEndpoint
>>> with LocalEndpoint() as ep:  # doctest: +SKIP
...     client = boto3.client("sagemaker-runtime", endpoint_url=ep.url, region_name="us-east-1")
"""

from sm_llm.local._async import LocalS3, S3AsyncBackend
from sm_llm.local._config import (
    EndpointSpec,
    FaultConfig,
    ModelSpec,
    NoCapacity,
    ServerConfig,
    VariantSpec,
)
from sm_llm.local._endpoint import LocalEndpoint, serve
from sm_llm.local._model import Generation, generate
from sm_llm.local._notifications import LocalNotifications
from sm_llm.local._state import AsyncAccepted, AsyncBackend, RecordedRequest

__all__ = [
    "AsyncAccepted",
    "AsyncBackend",
    "EndpointSpec",
    "FaultConfig",
    "Generation",
    "LocalEndpoint",
    "LocalNotifications",
    "LocalS3",
    "ModelSpec",
    "NoCapacity",
    "RecordedRequest",
    "S3AsyncBackend",
    "ServerConfig",
    "VariantSpec",
    "generate",
    "serve",
]
