"""Error classes and the mapping of botocore failures onto them."""

from __future__ import annotations

import pytest
from botocore import exceptions as bx
from langchain_core import exceptions as lc

from sm_llm import errors as e
from sm_llm.transports.mapping import log_url_from_arn, map_error


def client_error(code: str, status: int, message: str = "msg", **extra: object) -> bx.ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "rid-1"},
        **extra,
    }
    return bx.ClientError(response, "InvokeEndpoint")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "cls", "category", "retryable"),
    [
        ("ValidationError", 400, e.RequestValidationError, lc.ModelInvalidRequestError, False),
        ("ModelNotReadyException", 429, e.ModelNotReadyError, lc.ModelRateLimitError, True),
        ("ThrottlingException", 429, e.ThrottlingError, lc.ModelRateLimitError, True),
        ("ServiceUnavailable", 503, e.ServiceUnavailableError, lc.ModelAPIError, True),
        ("InternalFailure", 500, e.InternalFailureError, lc.ModelAPIError, True),
        ("InternalDependencyException", 530, e.InternalDependencyError, lc.ModelAPIError, False),
        ("503", 503, e.ServiceUnavailableError, lc.ModelAPIError, True),
    ],
)
def test_service_errors(code: str, status: int, cls: type, category: type, retryable: bool) -> None:
    err = map_error(client_error(code, status), "InvokeEndpoint", "ep")
    assert type(err) is cls
    assert isinstance(err, category) and isinstance(err, e.SageMakerError) and isinstance(err, lc.ModelError)
    assert err.is_retryable is retryable
    assert err.status_code == status and err.request_id == "rid-1"
    assert "'ep'" in str(err)


def test_endpoint_not_found() -> None:
    err = map_error(client_error("ValidationError", 400, "Endpoint nope of account 123456789012 not found."), "InvokeEndpoint", "nope")
    assert isinstance(err, e.EndpointNotFoundError) and isinstance(err, lc.ModelNotFoundError)


def test_model_error_fields() -> None:
    arn = "arn:aws:logs:us-west-2:123456789012:log-group:/aws/sagemaker/Endpoints/ep"
    err = map_error(
        client_error("ModelError", 424, 'Received client error (422) from primary with message "bad"', OriginalStatusCode=422, OriginalMessage="bad", LogStreamArn=arn),
        "InvokeEndpoint",
        "ep",
    )
    assert isinstance(err, e.ModelError) and not err.is_retryable
    assert (err.original_status_code, err.original_message, err.log_stream_arn) == (422, "bad", arn)
    assert err.log_url == "https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2#logEventViewer:group=/aws/sagemaker/Endpoints/ep"


def test_log_url_from_arn_rejects_other_arns() -> None:
    assert log_url_from_arn(None) is None
    assert log_url_from_arn("arn:aws:s3:::bucket") is None


def test_stream_errors_keep_code_and_partial_text() -> None:
    exc = bx.EventStreamError({"Error": {"Code": "ModelStreamError", "Message": "timed out"}}, "InvokeEndpointWithResponseStream")
    err = map_error(exc, "InvokeEndpointWithResponseStream", "ep", partial_text="so far")
    assert isinstance(err, e.StreamError) and err.partial_text == "so far" and err.error_code == "ModelStreamError"
    assert not err.is_retryable


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (bx.ReadTimeoutError(endpoint_url="http://x"), e.RequestTimeoutError),
        (bx.ConnectTimeoutError(endpoint_url="http://x"), e.RequestTimeoutError),
        (bx.EndpointConnectionError(endpoint_url="http://x"), e.EndpointUnreachableError),
        (bx.NoCredentialsError(), e.ConfigurationError),
        (bx.NoRegionError(), e.ConfigurationError),
    ],
)
def test_transport_errors(exc: Exception, cls: type) -> None:
    assert type(map_error(exc, "InvokeEndpoint", "ep")) is cls


def test_timeout_is_langchain_timeout() -> None:
    assert issubclass(e.RequestTimeoutError, lc.ModelTimeoutError)
    assert issubclass(e.ConfigurationError, ValueError)


def test_missing_region_says_region(monkeypatch: pytest.MonkeyPatch) -> None:
    from sm_llm.transports.clients import ClientSettings, create_client

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(e.ConfigurationError, match="region"):
        create_client(ClientSettings())


def test_configuration_error_names_the_field_to_set() -> None:
    """Front ends (the CLI) rewrite the advice from ``field``; Python users read the whole message."""
    plain = e.ConfigurationError("bad thing")
    assert (plain.field, plain.problem, plain.problems, str(plain)) == (None, "bad thing", ("bad thing",), "bad thing")
    error = e.ConfigurationError("no AWS region is configured", field="region_name", advice="pass region_name=...")
    assert str(error) == "no AWS region is configured: pass region_name=..."
    assert (error.field, error.problem) == ("region_name", "no AWS region is configured")
    assert error.problems == (str(error),)
    missing = map_error(bx.NoCredentialsError(), "InvokeEndpoint", "ep")
    assert isinstance(missing, e.ConfigurationError) and missing.field == "credentials_profile_name"
    assert str(missing).startswith("no AWS credentials found: configure a profile (credentials_profile_name=...)")
    no_region = map_error(bx.NoRegionError(), "InvokeEndpoint", "ep")
    assert isinstance(no_region, e.ConfigurationError) and no_region.field == "region_name"


BIG = "x" * 1_000_000


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (client_error("ValidationError", 400, BIG), e.RequestValidationError),
        (client_error("ModelError", 424, f'Received client error (422) from primary with message "{BIG}". '
                      "See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
                      "#logEventViewer:group=/aws/sagemaker/Endpoints/ep in account 1 for more information.",
                      OriginalStatusCode=422, OriginalMessage=BIG), e.ModelError),
        (client_error("ModelStreamError", 200, BIG), e.StreamError),
        (client_error("ThrottlingException", 429, BIG), e.ThrottlingError),
        (bx.ReadTimeoutError(endpoint_url=BIG), e.RequestTimeoutError),
        (OSError(BIG), e.EndpointUnreachableError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_messages_quoting_a_large_body_are_bounded(error: Exception, cls: type) -> None:
    err = map_error(error, "InvokeEndpoint", "ep")
    assert type(err) is cls
    assert len(str(err)) <= e.MAX_QUOTE + 100
    assert str(err).count("x") <= e.MAX_QUOTE + 1


def test_a_mid_stream_failure_quoting_a_large_body_is_bounded() -> None:
    err = map_error(ValueError(BIG), "InvokeEndpointWithResponseStream", "ep", in_stream=True)
    assert isinstance(err, e.StreamError) and len(str(err)) <= e.MAX_QUOTE + 150


def test_model_error_quotes_200_characters_and_keeps_the_body_truncated_with_a_marker() -> None:
    message = (f'Received server error (500) from primary with message "{BIG}". See '
               "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
               "#logEventViewer:group=/aws/sagemaker/Endpoints/ep in account 1 for more information.")
    err = map_error(client_error("ModelError", 424, message, OriginalMessage=BIG), "InvokeEndpoint", "ep")
    assert isinstance(err, e.ModelError)
    assert str(err).count("x") == e.SNIPPET  # the body quoted: its first 200 characters, then …
    assert 'x…". See https://us-east-1.console.aws.amazon.com' in str(err)  # the frame is kept
    assert err.log_url is not None and err.log_url.endswith("group=/aws/sagemaker/Endpoints/ep")
    assert err.original_message is not None
    assert err.original_message.startswith("x" * e.MAX_BODY)
    assert err.original_message.endswith(f"… [truncated: {len(BIG) - e.MAX_BODY} more characters]")
    small = map_error(client_error("ModelError", 424, 'with message "ok"', OriginalMessage="ok"), "InvokeEndpoint", "ep")
    assert isinstance(small, e.ModelError) and small.original_message == "ok"


def test_every_error_message_is_bounded() -> None:
    err = e.ConfigurationError(BIG)
    assert len(str(err)) < e.MAX_MESSAGE + 50 and str(err).endswith("more characters]")
    assert err.message == str(err)


NO_CAPACITY = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling may be "
    "in-progress (if configured) or try to increase the capacity by invoking "
    "UpdateInferenceComponentRuntimeConfig API."
)


def test_a_component_with_no_capacity_is_a_retryable_no_capacity_error() -> None:
    err = map_error(client_error("ValidationError", 400, NO_CAPACITY), "InvokeEndpoint", "ep")
    assert type(err) is e.NoCapacityError
    assert isinstance(err, lc.ModelRateLimitError) and err.is_retryable is True
    assert not isinstance(err, e.RequestValidationError)
    assert (err.status_code, err.error_code, err.request_id) == (400, "ValidationError", "rid-1")
    assert "has no capacity" in str(err) and "'ep'" in str(err)
    # any other 400 stays a validation error
    other = map_error(client_error("ValidationError", 400, "bad input"), "InvokeEndpoint", "ep")
    assert type(other) is e.RequestValidationError


def test_authentication_error_is_langchains_authentication_category_and_not_retryable() -> None:
    err = e.AuthenticationError("refused", status_code=401)
    assert isinstance(err, e.SageMakerError) and isinstance(err, lc.ModelAuthenticationError)
    assert err.is_retryable is False and err.status_code == 401


def test_new_errors_are_exported() -> None:
    import sm_llm

    assert sm_llm.AuthenticationError is e.AuthenticationError
    assert sm_llm.NoCapacityError is e.NoCapacityError
    assert {"AuthenticationError", "NoCapacityError"} <= set(sm_llm.__all__) & set(e.__all__)
