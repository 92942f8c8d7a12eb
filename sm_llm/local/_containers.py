"""What a container is to the local endpoint, plus helpers the reference containers share.

A container is a callable ``(ContainerRequest) -> ContainerResponse``, mirroring the
SageMaker container contract (``POST /invocations``): it sees the raw body and the
forwarded headers and answers a status, a content type, extra headers and a body
produced piece by piece (one piece per generated token when it streams), so the
server can pace, re-chunk or cut the stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "CUSTOM_ATTRIBUTES",
    "Container",
    "ContainerError",
    "ContainerRequest",
    "ContainerResponse",
    "ContainerUnavailable",
    "ModelInfo",
    "Piece",
    "compact_json",
    "invoke",
    "json_response",
    "parse_custom_attributes",
    "parse_json_body",
]

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"


@dataclass(frozen=True)
class ModelInfo:
    """The model a container serves: its reported name, its echo greeting, and the
    field its OpenAI-format replies carry reasoning in."""

    model_id: str = "local-echo"
    greeting: str = "Echo:"
    require_eula: bool | None = None
    reasoning_field: str = "reasoning"


@dataclass(frozen=True)
class ContainerRequest:
    """One ``POST /invocations``: raw body, forwarded headers (lower-case keys), model.

    ``openai_route``: it came in on the OpenAI-compatible route (``/openai/v1/chat/completions``),
    whose streams are server-sent events whatever the container's ``/invocations`` streams.
    """

    body: bytes
    headers: Mapping[str, str]
    model: ModelInfo = field(default_factory=ModelInfo)
    streaming_api: bool = False
    openai_route: bool = False


class Piece(NamedTuple):
    """A slice of a container's reply body; ``token`` marks a generated-token event."""

    data: bytes
    token: bool = True


@dataclass
class ContainerResponse:
    """A container's reply. ``pieces`` may be lazy (generated while being sent)."""

    status: int
    content_type: str
    pieces: Iterable[Piece]
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        """Consume ``pieces`` and return the whole body."""
        return b"".join(piece.data for piece in self.pieces)


Container = Callable[[ContainerRequest], ContainerResponse]


class ContainerUnavailable(Exception):
    """The container could not be reached or did not answer (no HTTP status)."""


class ContainerError(Exception):
    """Raised inside a reference container to answer an error ``status`` with ``payload``."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status, payload)
        self.status = status
        self.payload = payload


def compact_json(obj: Any) -> bytes:
    """JSON without spaces, the way Rust (serde) and pydantic servers write it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(status: int, obj: Any, *, compact: bool = True) -> ContainerResponse:
    """A whole-body JSON reply."""
    data = (
        compact_json(obj) if compact else json.dumps(obj, ensure_ascii=False).encode("utf-8")
    )
    return ContainerResponse(status, "application/json", [Piece(data)])


def parse_json_body(body: bytes, error: Callable[[str], ContainerError]) -> Any:
    """Decode a JSON request body or raise ``error(message)``."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"Failed to deserialize the JSON body into the target type: {exc}") from exc


def parse_custom_attributes(value: str) -> dict[str, str]:
    """``k1=v1;k2=v2`` pairs as JumpStart reads them (last duplicate wins)."""
    pairs: dict[str, str] = {}
    for item in value.split(";"):
        key, sep, val = item.partition("=")
        if sep and key.strip():
            pairs[key.strip()] = val.strip()
    return pairs


def invoke(container: Container, request: ContainerRequest) -> ContainerResponse:
    """Call ``container``, turning a :class:`ContainerError` into its JSON error reply.

    Reference containers echo the request's custom attributes back verbatim, which
    is what SageMaker then returns as ``CustomAttributes``.
    """
    try:
        response = container(request)
    except ContainerError as exc:
        response = json_response(exc.status, exc.payload)
    attributes = request.headers.get(CUSTOM_ATTRIBUTES)
    if attributes is not None and CUSTOM_ATTRIBUTES not in response.headers:
        response.headers[CUSTOM_ATTRIBUTES] = attributes
    return response
