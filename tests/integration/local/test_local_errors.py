"""Validation, routing errors, container errors and injected faults, as botocore sees them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import botocore.exceptions
import pytest
import urllib3

from sm_llm.local import FaultConfig, LocalEndpoint

BODY = json.dumps({"inputs": "x"})
LOG_GROUP = "/aws/sagemaker/Endpoints/"


def _validation(client: Any, call: Any) -> str:
    with pytest.raises(client.exceptions.ValidationError) as info:
        call()
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ValidationError"
    return str(error["Error"]["Message"])


def test_unknown_endpoint(runtime_client: Any) -> None:
    message = _validation(
        runtime_client, lambda: runtime_client.invoke_endpoint(EndpointName="missing", Body=BODY)
    )
    assert message == "Endpoint missing of account 123456789012 not found."
    message = _validation(
        runtime_client,
        lambda: runtime_client.invoke_endpoint_with_response_stream(EndpointName="missing", Body=BODY),
    )
    assert message == "Endpoint missing of account 123456789012 not found."


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"TargetVariant": "bad_name"},
            "1 validation error detected: Value 'bad_name' at 'targetVariant' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*",
        ),
        (
            {"CustomAttributes": "x" * 1025},
            "1 validation error detected: Value at 'customAttributes' failed to satisfy "
            "constraint: Member must have length less than or equal to 1024",
        ),
        (
            {"TargetContainerHostname": "h" * 64},
            "1 validation error detected: Value '" + "h" * 64 + "' at 'targetContainerHostname' "
            "failed to satisfy constraint: Member must have length less than or equal to 63",
        ),
        (
            {"InferenceComponentName": "ic-"},
            "1 validation error detected: Value 'ic-' at 'inferenceComponentName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?$",
        ),
        (
            {"TargetModel": "tab\tmodel"},
            "1 validation error detected: Value 'tab\tmodel' at 'targetModel' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: \\A\\S[\\p{Print}]*\\z",
        ),
        (
            {"InferenceId": "i" * 65},
            "1 validation error detected: Value '" + "i" * 65 + "' at 'inferenceId' failed to "
            "satisfy constraint: Member must have length less than or equal to 64",
        ),
        (
            {"EnableExplanations": "e" * 65},
            "1 validation error detected: Value '" + "e" * 65 + "' at 'enableExplanations' "
            "failed to satisfy constraint: Member must have length less than or equal to 64",
        ),
        (
            {"SessionId": "s" * 257},
            "1 validation error detected: Value '" + "s" * 257 + "' at 'sessionId' failed to "
            "satisfy constraint: Member must have length less than or equal to 256",
        ),
    ],
)
def test_header_constraints(runtime_client: Any, kwargs: dict[str, str], expected: str) -> None:
    message = _validation(
        runtime_client,
        lambda: runtime_client.invoke_endpoint(EndpointName="tgi", Body=BODY, **kwargs),
    )
    assert message == expected


def test_body_limit(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    limit = 6_291_456
    message = _validation(
        runtime_client,
        lambda: runtime_client.invoke_endpoint(EndpointName="tgi", Body=b" " * (limit + 1)),
    )
    assert message == (
        "1 validation error detected: Value at 'body' failed to satisfy constraint: "
        "Member must have length less than or equal to 6291456"
    )
    padded = json.dumps({"inputs": "x"}).encode().ljust(limit, b" ")
    response = runtime_client.invoke_endpoint(EndpointName="tgi", Body=padded)
    assert json.loads(response["Body"].read()) == [{"generated_text": "Echo: x"}]


def test_new_session_not_allowed_on_stream(runtime_client: Any) -> None:
    message = _validation(
        runtime_client,
        lambda: runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="tgi", Body=BODY, SessionId="NEW_SESSION"
        ),
    )
    assert "'sessionId'" in message and "regular expression pattern" in message


@pytest.mark.parametrize(
    ("endpoint", "kwargs", "fragment"),
    [
        ("mme", {}, "TargetModel is required"),
        ("mme", {"TargetModel": "model-z.tar.gz"}, "could not find"),
        ("tgi", {"TargetModel": "model-a.tar.gz"}, "not a multi-model endpoint"),
        ("variants", {"TargetVariant": "red"}, "The variant red is not present"),
        ("tgi", {"TargetVariant": "blue"}, "The variant blue is not present"),
        ("multi-container", {}, "TargetContainerHostname is required"),
        ("multi-container", {"TargetContainerHostname": "nope"}, "nope is not present"),
        ("tgi", {"TargetContainerHostname": "tgi-c"}, "not a multi-container endpoint"),
        ("components", {}, "Inference Component Name header is required"),
        ("components", {"InferenceComponentName": "ic-x"}, "Inference Component ic-x not found"),
        ("tgi", {"InferenceComponentName": "ic-tgi"}, "Inference Component ic-tgi not found"),
    ],
)
def test_routing_errors(runtime_client: Any, endpoint: str, kwargs: dict[str, str], fragment: str) -> None:
    message = _validation(
        runtime_client,
        lambda: runtime_client.invoke_endpoint(EndpointName=endpoint, Body=BODY, **kwargs),
    )
    assert fragment in message


def test_async_not_configured(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    message = _validation(
        runtime_client,
        lambda: runtime_client.invoke_endpoint_async(
            EndpointName="tgi", InputLocation="s3://bucket/input.json"
        ),
    )
    assert message == (
        "async inference is not configured on this local endpoint: start it with "
        "'sm-llm local serve --with-s3' (or give LocalEndpoint an async_backend)"
    )
    assert local_endpoint.requests[0].operation == "InvokeEndpointAsync"


def _model_error(client: Any, call: Any) -> dict[str, Any]:
    with pytest.raises(client.exceptions.ModelError) as info:
        call()
    response: dict[str, Any] = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    return response


def test_container_error_becomes_model_error(runtime_client: Any) -> None:
    response = _model_error(
        runtime_client,
        lambda: runtime_client.invoke_endpoint(EndpointName="tgi", Body=json.dumps({"inputs": 3})),
    )
    assert response["OriginalStatusCode"] == 422
    assert json.loads(response["OriginalMessage"])["error_type"] == "validation"
    assert response["LogStreamArn"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/tgi"
    )
    message = response["Error"]["Message"]
    assert message.startswith('Received client error (422) from primary with message "{')
    assert message.endswith(
        "See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#logEventViewer:group=/aws/sagemaker/Endpoints/tgi in account 123456789012 for more "
        "information."
    )


def test_openai_error_and_eula_error(runtime_client: Any) -> None:
    response = _model_error(
        runtime_client,
        lambda: runtime_client.invoke_endpoint(EndpointName="openai", Body=json.dumps({"messages": []})),
    )
    assert response["OriginalStatusCode"] == 400
    assert "error" in json.loads(response["OriginalMessage"])
    response = _model_error(
        runtime_client,
        lambda: runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="jumpstart-chat",
            Body=json.dumps({"inputs": [[{"role": "user", "content": "hi"}]]}),
        ),
    )
    assert response["OriginalStatusCode"] == 400
    assert "accept_eula=true" in response["OriginalMessage"]


@pytest.mark.parametrize(
    ("code", "status", "exception"),
    [
        ("ThrottlingException", 429, None),
        ("ModelNotReadyException", 429, "ModelNotReadyException"),
        ("ServiceUnavailable", 503, "ServiceUnavailable"),
        ("InternalFailure", 500, "InternalFailure"),
        ("InternalDependencyException", 530, "InternalDependencyException"),
        ("ModelError", 424, "ModelError"),
        ("ValidationError", 400, "ValidationError"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_injected_errors(
    runtime_client: Any,
    local_endpoint: LocalEndpoint,
    code: str,
    status: int,
    exception: str | None,
    stream: bool,
) -> None:
    local_endpoint.faults = FaultConfig(fail_next=[code])  # type: ignore[list-item]
    call = (
        runtime_client.invoke_endpoint_with_response_stream
        if stream
        else runtime_client.invoke_endpoint
    )
    expected = (
        getattr(runtime_client.exceptions, exception)
        if exception
        else botocore.exceptions.ClientError
    )
    with pytest.raises(expected) as info:
        call(EndpointName="tgi", Body=BODY)
    response = info.value.response
    assert response["Error"]["Code"] == code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    if code == "ModelError":
        assert response["OriginalStatusCode"] == 500
        assert response["LogStreamArn"].endswith(LOG_GROUP + "tgi")
    recorded = local_endpoint.requests[0]
    assert (recorded.status, recorded.error_code) == (status, code)
    # fail_next is consumed: the next call succeeds
    assert local_endpoint.faults.fail_next == []
    runtime_client.invoke_endpoint(EndpointName="tgi", Body=BODY)


def test_fail_next_then_success_with_retries(
    local_endpoint: LocalEndpoint, runtime_client_factory: Any
) -> None:
    client = runtime_client_factory(
        local_endpoint.url, retries={"total_max_attempts": 3, "mode": "standard"}
    )
    local_endpoint.faults = FaultConfig(fail_next=["ServiceUnavailable"])
    response = client.invoke_endpoint(EndpointName="tgi", Body=BODY)
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [r.status for r in local_endpoint.requests] == [503, 200]


def test_error_rates_are_deterministic(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    def run() -> list[int]:
        local_endpoint.faults = FaultConfig(seed=5, error_rates={"ThrottlingException": 0.5})
        codes = []
        for _ in range(12):
            try:
                runtime_client.invoke_endpoint(EndpointName="tgi", Body=BODY)
                codes.append(200)
            except botocore.exceptions.ClientError as exc:
                codes.append(exc.response["ResponseMetadata"]["HTTPStatusCode"])
        return codes

    first, second = run(), run()
    assert first == second and {200, 429} == set(first)


def test_connection_reset_fault(local_endpoint: LocalEndpoint, runtime_client: Any) -> None:
    local_endpoint.faults = FaultConfig(fail_next=["ConnectionReset"])
    with pytest.raises(
        (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)
    ):
        runtime_client.invoke_endpoint(EndpointName="tgi", Body=BODY)
    assert local_endpoint.requests[0].error_code == "ConnectionReset"


def test_unknown_operation_404(local_endpoint: LocalEndpoint) -> None:
    request = urllib.request.Request(f"{local_endpoint.url}/nowhere", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 404
    assert info.value.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert info.value.headers["x-amzn-RequestId"]
    assert "message" in json.loads(info.value.read())


def test_truncated_body_fault(local_endpoint: LocalEndpoint, runtime_client: Any) -> None:
    local_endpoint.faults = FaultConfig(fail_next=["TruncatedBody", "TruncatedBody"])
    response = runtime_client.invoke_endpoint(EndpointName="tgi", Body=BODY)
    with pytest.raises(botocore.exceptions.ResponseStreamingError):
        response["Body"].read()
    response = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="tgi", Body=json.dumps({"inputs": "a b c", "stream": True})
    )
    # botocore does not wrap this one: urllib3's ProtocolError escapes the event stream.
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(response["Body"])
    assert [r.error_code for r in local_endpoint.requests] == ["TruncatedBody", "TruncatedBody"]
    assert local_endpoint.requests[1].stream_completed is False
