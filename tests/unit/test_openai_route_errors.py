"""The OpenAI route's error replies and httpx's failures, as typed sm_llm errors (no network)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sm_llm import errors as e
from sm_llm.transports.http import http_errors
from sm_llm.transports.openai_route import route_error

NO_CAPACITY = "Inference Component has no capacity to process this request. ApplicationAutoScaling may be in-progress"


def _envelope(message: str, code: str | None, kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected", "retryable"),
    [
        (400, _envelope(NO_CAPACITY, "validation_error"), e.NoCapacityError, True),
        (400, _envelope("Endpoint x of account 1 not found.", "validation_error"), e.EndpointNotFoundError, False),
        (400, _envelope("bad body", "validation_error"), e.RequestValidationError, False),
        (400, _envelope("temperature out of range", "model_error", "server_error"), e.ModelError, False),
        (401, _envelope("The bearer token expired", "expired_api_key", "authentication_error"), e.AuthenticationError, False),
        (403, _envelope("not allowed", "access_denied", "permission_error"), e.AuthenticationError, False),
        (404, _envelope("no such path", "unknown_operation", "not_found_error"), e.EndpointNotFoundError, False),
        (408, b"", e.RequestTimeoutError, True),
        (413, b"too large", e.RequestValidationError, False),
        (422, json.dumps({"object": "error", "message": "bad schema", "code": 422}).encode(), e.RequestValidationError, False),
        (424, _envelope("container failed", None), e.ModelError, False),
        (429, _envelope("Rate exceeded", "throttling_exception", "rate_limit_error"), e.ThrottlingError, True),
        (500, b"<html>oops</html>", e.InternalFailureError, True),
        (503, _envelope("unavailable", "service_unavailable", "server_error"), e.ServiceUnavailableError, True),
        (530, b"", e.InternalDependencyError, False),
    ],
)
def test_status_and_envelope_to_typed_error(status: int, body: bytes, expected: type, retryable: bool) -> None:
    error = route_error(status, body, {"x-amzn-requestid": "rid"}, "OpenAI route on endpoint 'ep'")
    assert type(error) is expected
    assert error.is_retryable is retryable
    assert (error.status_code, error.request_id) == (status, "rid")
    assert str(error).startswith("OpenAI route on endpoint 'ep': ")


def test_model_error_keeps_the_containers_status_and_message() -> None:
    error = route_error(400, _envelope("x" * 5000, "model_error", "server_error"), {}, "where")
    assert isinstance(error, e.ModelError)
    assert error.original_status_code == 400 and error.original_message == "x" * 5000
    assert len(str(error)) < 1100  # the message quotes a bounded part


@pytest.mark.parametrize(
    ("raised", "expected", "in_stream"),
    [
        (httpx.ConnectError("refused"), e.EndpointUnreachableError, False),
        (httpx.ReadTimeout("slow"), e.RequestTimeoutError, False),
        (httpx.ConnectTimeout("slow"), e.RequestTimeoutError, False),
        (httpx.UnsupportedProtocol("ftp"), e.ConfigurationError, False),
        (httpx.RemoteProtocolError("closed"), e.EndpointUnreachableError, False),
        (httpx.ReadError("reset"), e.StreamError, True),
        (httpx.ReadTimeout("stalled"), e.StreamError, True),
    ],
)
def test_httpx_failures_to_typed_errors(raised: Exception, expected: type, in_stream: bool) -> None:
    with pytest.raises(expected) as info, http_errors("where", in_stream=in_stream):
        raise raised
    assert info.value.__cause__ is raised


def test_typed_errors_pass_through() -> None:
    original: Any = e.ThrottlingError("t")
    with pytest.raises(e.ThrottlingError) as info, http_errors("where"):
        raise original
    assert info.value is original
