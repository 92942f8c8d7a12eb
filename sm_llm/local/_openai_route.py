"""SageMaker's OpenAI-compatible route: its paths and its OpenAI-envelope errors.

``POST /endpoints/{EndpointName}/openai/v1/chat/completions`` and
``POST /endpoints/{EndpointName}/inference-components/{ComponentName}/openai/v1/chat/completions``
carry an OpenAI Chat Completions body to the container as is. Errors are OpenAI's
``{"error": {"message", "type", "param", "code"}}``: the service's own refusals with
``code`` in snake case (``validation_error``, ``throttling_exception``), a container's
non-2xx reply quoted in a ``model_error`` with the container's status, as the real
front door answers them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from sm_llm.local._errors import ServiceError

__all__ = ["OPENAI_CHAT", "OpenAIRoute", "RouteError", "envelope", "from_service_error", "parse_route"]

OPENAI_CHAT = "OpenAIChatCompletions"
_PATH = re.compile(r"/endpoints/([^/]+)(?:/inference-components/([^/]+))?/openai/v1(/.*)?")
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True)
class OpenAIRoute:
    """A request path on the route: endpoint, component (or None), what follows ``/openai/v1``."""

    endpoint: str
    component: str | None
    operation: str


@dataclass
class RouteError(Exception):
    """A refusal on the route, answered in OpenAI's envelope."""

    status: int
    message: str
    code: str
    kind: str | None = None

    def body(self) -> bytes:
        """The JSON error body."""
        return envelope(self.status, self.message, self.code, self.kind)


def parse_route(path: str) -> OpenAIRoute | None:
    """The route a request path names, or None when it is not under ``.../openai/v1``."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    component = match.group(2)
    return OpenAIRoute(
        unquote(match.group(1)),
        None if component is None else unquote(component),
        (match.group(3) or "").strip("/"),
    )


def _snake(code: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", code).lower()


def envelope(status: int, message: str, code: str, kind: str | None = None) -> bytes:
    """OpenAI's error body (``kind``, its ``type``, follows ``status`` unless given)."""
    kind = kind or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body: dict[str, Any] = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": body}).encode("utf-8")


def from_service_error(error: ServiceError) -> RouteError:
    """The route's answer for what ``InvokeEndpoint`` answers with ``error``."""
    if error.code == "ModelError":
        original = error.members.get("OriginalStatusCode")
        status = original if isinstance(original, int) and 400 <= original <= 599 else 424
        return RouteError(status, error.message, "model_error", "server_error")
    return RouteError(error.status, error.message, _snake(error.code))
