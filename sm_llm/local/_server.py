"""The HTTP layer: SageMaker Runtime routes, validation, faults and sessions (replies: ``_replies``)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from sm_llm.local._bearer import BearerRejected, verify_authorization
from sm_llm.local._capacity import NO_CAPACITY_MESSAGE
from sm_llm.local._containers import ContainerRequest
from sm_llm.local._errors import ServiceError, injected_error
from sm_llm.local._faults import FaultState
from sm_llm.local._httpserver import LocalHTTPServer
from sm_llm.local._openai_route import (
    OPENAI_CHAT,
    OpenAIRoute,
    RouteError,
    from_service_error,
    parse_route,
)
from sm_llm.local._replies import Abort, ReplyHandler
from sm_llm.local._routing import Target
from sm_llm.local._state import RecordedRequest, ServerState
from sm_llm.local._validation import validate_request

__all__ = ["INVOKE", "INVOKE_ASYNC", "INVOKE_STREAM", "create_server"]

INVOKE = "InvokeEndpoint"
INVOKE_STREAM = "InvokeEndpointWithResponseStream"
INVOKE_ASYNC = "InvokeEndpointAsync"
_ROUTES = {
    "invocations": INVOKE,
    "invocations-response-stream": INVOKE_STREAM,
    "async-invocations": INVOKE_ASYNC,
}
_PATH = re.compile(r"/endpoints/([^/]+)/([a-z-]+)")
_SESSION = "x-amzn-sagemaker-session-id"
_COMPONENT = "x-amzn-sagemaker-inference-component"


def _container_headers(operation: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers SageMaker forwards to the container (API headers only)."""
    out = {k: v for k, v in headers.items() if k.startswith("x-amzn-sagemaker-")}
    content_type = out.pop("x-amzn-sagemaker-content-type", headers.get("content-type"))
    accept = out.pop("x-amzn-sagemaker-accept", headers.get("accept"))
    if content_type is not None:
        out["content-type"] = content_type
    if accept is not None:
        out["accept"] = accept
    out["x-amzn-sagemaker-forwarded-api"] = operation
    return out


def _wants_stream(body: bytes) -> bool:
    """Whether an OpenAI body asks for a stream (``"stream": true``)."""
    if b'"stream"' not in body:
        return False
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("stream") is True


def _request_type(body: bytes) -> str | None:
    """The session-control ``requestType`` of a small JSON body, if any."""
    if len(body) > 4096 or b"requestType" not in body:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    value = payload.get("requestType") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


class _Handler(ReplyHandler):
    # -- routes -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        route = parse_route(path)
        if route is not None:
            self._openai(route)
        elif path == "/ping":
            self._safely(lambda: self._send_body(200, {"Content-Type": "text/plain"}, b""))
        else:
            self._unknown()

    def do_POST(self) -> None:
        route = parse_route(urlsplit(self.path).path)
        if route is not None:
            self._openai(route)
            return
        match = _PATH.fullmatch(urlsplit(self.path).path)
        operation = _ROUTES.get(match.group(2)) if match else None
        if match is None or operation is None:
            self._read_body()
            self._unknown()
            return
        self._invocation(operation, unquote(match.group(1)))

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _unknown(self) -> None:
        error = ServiceError(
            "UnknownOperationException", f"Unknown operation: {self.command} {self.path}"
        )
        self._safely(lambda: self._send_error(error, str(uuid.uuid4())))

    # -- invocations ------------------------------------------------------------------------

    def _invocation(self, operation: str, endpoint_name: str) -> None:
        body, length = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = RecordedRequest(operation, endpoint_name, headers, body, str(uuid.uuid4()))

        def refuse(error: ServiceError) -> None:
            record.status, record.error_code = error.status, error.code
            self._send_error(error, record.request_id)

        self._handle(record, lambda: self._serve(record, length), (ServiceError,), refuse)

    def _handle(
        self,
        record: RecordedRequest,
        serve: Callable[[], None],
        errors: tuple[type[Exception], ...],
        refuse: Callable[[Any], None],
    ) -> None:
        """One request's life on either wire: recorded, counted in flight while ``serve``
        runs, an expected error answered by ``refuse`` in the wire's own shape, and a
        client that went away noted rather than raised."""
        state = self.server.state
        state.requests.append(record)
        state.enter()
        try:
            serve()
        except errors as error:
            try:
                refuse(error)
            except Abort:
                record.client_disconnected = True
        except Abort:
            record.client_disconnected = True
            if record.stream_completed is not None:
                record.stream_completed = False
        finally:
            state.leave()

    def _serve(self, record: RecordedRequest, length: int) -> None:
        state = self.server.state
        faults = state.faults  # one snapshot per request, even if reassigned meanwhile
        if state.wait(faults.config.latency_ms / 1000.0):
            raise ServiceError("ServiceUnavailable", "The local endpoint is shutting down.")
        target = self._admit(record, length, faults)
        self._check_capacity(record, target)
        fault = self._fault(record, faults)
        if fault == "ConnectionReset":
            return
        truncate = fault is not None
        request = ContainerRequest(
            record.body,
            _container_headers(record.operation, record.headers),
            target.model,
            streaming_api=record.operation == INVOKE_STREAM,
        )
        if record.operation == INVOKE_ASYNC:
            self._async(record, target, request)
            return
        if record.operation == INVOKE and self._session_control(record, target):
            return
        response = self._call(target, request, record.endpoint_name)
        if record.operation == INVOKE_STREAM:
            self._stream(record, target, response, faults, truncate)
            return
        extra = {}
        if record.headers.get(_SESSION) == "NEW_SESSION":
            extra["X-Amzn-SageMaker-New-Session-Id"] = state.sessions.open(record.endpoint_name)
        self._whole(record, target, response, faults, extra, truncate)

    def _check_capacity(self, record: RecordedRequest, target: Target) -> None:
        """Refuse a request to an inference component scaled to zero (``no_capacity``)."""
        spec, component = target.no_capacity, target.component
        if spec is None or component is None:
            return
        if not self.server.state.capacity.admit(record.endpoint_name, component, spec):
            raise ServiceError("ValidationError", NO_CAPACITY_MESSAGE)

    def _fault(self, record: RecordedRequest, faults: FaultState) -> str | None:
        """Draw the injected fault: reset the connection, raise the error, or return
        ``"TruncatedBody"`` / ``"ConnectionReset"`` (already done) / None."""
        fault = faults.next_fault()
        if fault == "ConnectionReset":
            self._reset(record)
            return fault
        if fault is not None and fault != "TruncatedBody":
            config = self.server.state.config
            raise injected_error(
                fault, endpoint=record.endpoint_name, region=config.region, account_id=config.account_id
            )
        record.error_code = fault
        return fault

    def _admit(self, record: RecordedRequest, length: int, faults: FaultState) -> Target:
        """Validate the request, resolve its target and check its session."""
        state = self.server.state
        name, headers = record.endpoint_name, record.headers
        problem = validate_request(record.operation, name, headers, length)
        if problem is not None:
            raise ServiceError("ValidationError", problem)
        target = state.router.resolve(name, headers, faults)
        record.invoked_variant = target.variant
        session = headers.get(_SESSION)
        if session not in (None, "NEW_SESSION") and not state.sessions.is_open(name, session):
            raise ServiceError(
                "ValidationError",
                f"Session {session} is not valid: it does not exist, has expired or was closed.",
            )
        return target

    # -- the OpenAI-compatible route ---------------------------------------------------------

    def _openai(self, route: OpenAIRoute) -> None:
        body, length = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        authorization = headers.get("authorization")
        if authorization is not None:  # tokens are not kept, not even in memory
            headers["authorization"] = authorization.strip().partition(" ")[0] + " <redacted>"
        record = RecordedRequest(
            OPENAI_CHAT, route.endpoint, headers, body, str(uuid.uuid4()), component=route.component
        )

        def refuse(exc: RouteError | BearerRejected | ServiceError) -> None:
            error = from_service_error(exc) if isinstance(exc, ServiceError) else exc
            if isinstance(error, BearerRejected):
                error = RouteError(error.status, error.message, error.code)
            record.status, record.error_code = error.status, error.code
            response_headers = {"Content-Type": "application/json", "x-amzn-RequestId": record.request_id}
            self._send_body(error.status, response_headers, error.body())

        self._handle(
            record, lambda: self._serve_openai(record, route, authorization, length),
            (RouteError, BearerRejected, ServiceError), refuse,
        )

    def _serve_openai(
        self, record: RecordedRequest, route: OpenAIRoute, authorization: str | None, length: int
    ) -> None:
        state = self.server.state
        if self.command != "POST" or route.operation != "chat/completions":
            raise RouteError(
                404,
                f"Unknown operation: {self.command} {urlsplit(self.path).path}. The "
                "OpenAI-compatible route serves POST .../openai/v1/chat/completions only.",
                "unknown_operation",
            )
        faults = state.faults
        if state.wait(faults.config.latency_ms / 1000.0):
            raise ServiceError("ServiceUnavailable", "The local endpoint is shutting down.")
        verify_authorization(authorization, credentials=state.credentials, region=state.config.region)
        if _COMPONENT in record.headers:
            raise RouteError(
                400,
                "The X-Amzn-SageMaker-Inference-Component header is not accepted on the "
                "OpenAI-compatible route: name the component in the path "
                f"(/endpoints/{route.endpoint}/inference-components/<name>/openai/v1/chat/completions).",
                "validation_error",
            )
        routing = {} if route.component is None else {_COMPONENT: route.component}
        problem = validate_request(INVOKE, route.endpoint, routing, length)
        if problem is not None:
            raise ServiceError("ValidationError", problem)
        target = state.router.resolve(route.endpoint, routing, faults)
        record.invoked_variant = target.variant
        self._check_capacity(record, target)
        fault = self._fault(record, faults)
        if fault == "ConnectionReset":
            return
        request = ContainerRequest(
            record.body,
            {
                "content-type": record.headers.get("content-type", "application/json"),
                "accept": record.headers.get("accept", "application/json"),
                "x-amzn-sagemaker-forwarded-api": OPENAI_CHAT,
            },
            target.model,
            streaming_api=_wants_stream(record.body),
            openai_route=True,
        )
        response = self._call(target, request, record.endpoint_name)
        if response.content_type.split(";")[0].strip() == "text/event-stream":
            self._sse(record, target, response, faults, truncate=fault is not None)
        else:
            self._whole(record, target, response, faults, {}, truncate=fault is not None)

    def _session_control(self, record: RecordedRequest, target: Target) -> bool:
        """Answer a ``requestType`` NEW_SESSION / CLOSE body; False when it is not one."""
        sessions = self.server.state.sessions
        session = record.headers.get(_SESSION)
        request_type = _request_type(record.body)
        if session == "NEW_SESSION" and request_type == "NEW_SESSION":
            opened = sessions.open(record.endpoint_name)
            ack = {"result": "session created", "sessionId": opened.split(";")[0]}
            self._reply_json(record, target, ack, {"X-Amzn-SageMaker-New-Session-Id": opened})
            return True
        if session not in (None, "NEW_SESSION") and request_type == "CLOSE":
            sessions.close(record.endpoint_name, session)
            ack = {"result": "session closed", "sessionId": session}
            self._reply_json(record, target, ack, {"X-Amzn-SageMaker-Closed-Session-Id": session})
            return True
        return False

    def _async(self, record: RecordedRequest, target: Target, request: ContainerRequest) -> None:
        backend = self.server.state.async_backend
        if backend is None:
            raise ServiceError(
                "ValidationError",
                "async inference is not configured on this local endpoint: start it with "
                "'sm-llm local serve --with-s3' (or give LocalEndpoint an async_backend)",
            )
        accepted = backend.submit(
            endpoint_name=record.endpoint_name,
            target=target,
            request=request,
            request_id=record.request_id,
        )
        headers = {
            "Content-Type": "application/json",
            "x-amzn-RequestId": record.request_id,
            "X-Amzn-SageMaker-OutputLocation": accepted.output_location,
        }
        if accepted.failure_location is not None:
            headers["X-Amzn-SageMaker-FailureLocation"] = accepted.failure_location
        record.status = 202
        self._send_body(202, headers, json.dumps({"InferenceId": accepted.inference_id}).encode())


def create_server(address: tuple[str, int], state: ServerState) -> LocalHTTPServer:
    """Bind a server for ``state`` at ``address`` (not yet serving)."""
    return LocalHTTPServer(address, state, _Handler)
