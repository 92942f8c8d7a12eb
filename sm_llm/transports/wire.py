"""Show a prepared request as it goes on the wire (for ``sm-llm render``).

The parameter → HTTP header names come from botocore's own service model, so
what is printed is what boto3 will send (minus signing headers).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["describe_request", "wire_headers"]

_PATHS = {
    "InvokeEndpoint": "invocations",
    "InvokeEndpointWithResponseStream": "invocations-response-stream",
    "InvokeEndpointAsync": "async-invocations",
}


@lru_cache(maxsize=4)
def _header_names(operation: str) -> dict[str, str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    members = model.operation_model(operation).input_shape.members
    return {
        name: shape.serialization["name"]
        for name, shape in members.items()
        if shape.serialization.get("location") == "header"
    }


def wire_headers(operation: str, params: dict[str, Any]) -> dict[str, str]:
    """The HTTP headers botocore sends for these boto3 parameters."""
    names = _header_names(operation)
    return {names[k]: str(v) for k, v in params.items() if k in names}


def describe_request(operation: str, params: dict[str, Any]) -> str:
    """Operation, path, headers and body, as text."""
    body = params.get("Body", b"")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    lines = [
        f"operation: {operation}",
        f"POST /endpoints/{params['EndpointName']}/{_PATHS[operation]}",
        *(f"{k}: {v}" for k, v in wire_headers(operation, params).items()),
        f"Content-Length: {len(body)}",
        "",
        text,
    ]
    return "\n".join(lines)
