"""Typed errors raised by sm_llm.

Every error subclasses :class:`SageMakerError`, itself a
``langchain_core.exceptions`` model error, and also the matching langchain-core
category (bad request, rate limit, server error, timeout...) so that LangChain
retry policies and ``is_retryable`` checks work unchanged.
"""

from __future__ import annotations

from typing import Any

from langchain_core import exceptions as lc

__all__ = [
    "AsyncInferenceError",
    "AuthenticationError",
    "ConfigurationError",
    "EndpointNotFoundError",
    "EndpointUnreachableError",
    "InternalDependencyError",
    "InternalFailureError",
    "JobTimeoutError",
    "ModelError",
    "ModelNotReadyError",
    "NoCapacityError",
    "RequestTimeoutError",
    "RequestValidationError",
    "ResponseParseError",
    "SageMakerError",
    "ServiceUnavailableError",
    "StreamError",
    "StreamParseError",
    "ThrottlingError",
    "snippet",
    "truncated",
]

SNIPPET = 200
"""Characters of a reply body quoted in an error message."""
MAX_QUOTE = 1_000
"""Characters of any other text from the wire (a service or stream error message) quoted."""
MAX_MESSAGE = 10_000
"""No error message is longer than this (a backstop: the limits above apply first)."""
MAX_BODY = 65_536
"""Characters of a body kept in an attribute (``ModelError.original_message``)."""


def snippet(text: str, limit: int = SNIPPET) -> str:
    """``text`` cut to ``limit`` characters, ``…`` marking a cut — for quoting in a message."""
    return text[:limit] + ("…" if len(text) > limit else "")


def truncated(text: str, limit: int = MAX_BODY) -> str:
    """``text`` kept whole up to ``limit`` characters, then cut with a marker saying how much
    was left out — for attributes that hold a body on the user's request."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [truncated: {len(text) - limit} more characters]"


class SageMakerError(lc.ModelError):
    """Base class of every sm_llm error.

    ``status_code`` is the HTTP status of the SageMaker Runtime reply when there
    was one; ``error_code`` the service's error code (``x-amzn-ErrorType``);
    ``request_id`` the ``x-amzn-RequestId``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        message = truncated(message, MAX_MESSAGE)
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.request_id = request_id

    def __str__(self) -> str:
        return self.message


class ConfigurationError(SageMakerError, ValueError):
    """Bad field, routing, payload size, preset or template — raised before any request.

    When the remedy is to set one field or argument, ``field`` names it (``"region_name"``)
    and ``problem`` is the message without the advice, so that a front end can give the
    advice in its own terms (the CLI says ``--region``). ``problems`` lists each problem
    on its own: a configuration file can have several.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        advice: str | None = None,
        problems: tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(f"{message}: {advice}" if advice else message, **kwargs)
        self.problem = message
        self.field = field
        self.problems = problems if problems is not None else (self.message,)


class RequestValidationError(SageMakerError, lc.ModelInvalidRequestError):
    """The service answered 400 ``ValidationError``."""


class EndpointNotFoundError(RequestValidationError, lc.ModelNotFoundError):
    """The endpoint does not exist (a 400 ``ValidationError`` saying so)."""


class ModelError(SageMakerError, lc.ModelInvalidRequestError):
    """The container answered with an error (service status 424).

    ``original_status_code`` and ``original_message`` are what the container
    sent (the body whole up to 64 KiB, then cut with a ``… [truncated: N more
    characters]`` marker; the message quotes only its first 200 characters);
    ``log_stream_arn`` and ``log_url`` point at its CloudWatch logs.
    """

    def __init__(
        self,
        message: str,
        *,
        original_status_code: int | None = None,
        original_message: str | None = None,
        log_stream_arn: str | None = None,
        log_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.original_status_code = original_status_code
        self.original_message = None if original_message is None else truncated(original_message)
        self.log_stream_arn = log_stream_arn
        self.log_url = log_url


class ModelNotReadyError(SageMakerError, lc.ModelRateLimitError):
    """429 ``ModelNotReadyException``: serverless cold start or a model still loading."""

    is_retryable = True


class NoCapacityError(SageMakerError, lc.ModelRateLimitError):
    """400 whose message says the inference component "has no capacity": it is scaled to
    zero (or still scaling up). Retryable, like :class:`ModelNotReadyError`: capacity comes
    back once Application Auto Scaling adds a copy."""

    is_retryable = True


class ThrottlingError(SageMakerError, lc.ModelRateLimitError):
    """429 throttling."""

    is_retryable = True


class ServiceUnavailableError(SageMakerError, lc.ModelAPIError):
    """503 ``ServiceUnavailable``."""

    is_retryable = True


class InternalFailureError(SageMakerError, lc.ModelAPIError):
    """500 ``InternalFailure``."""

    is_retryable = True


class AuthenticationError(SageMakerError, lc.ModelAuthenticationError):
    """401/403 from SageMaker's OpenAI-compatible route: the bearer token is missing,
    malformed, expired or wrongly signed, or its identity lacks ``sagemaker:InvokeEndpoint``
    / ``sagemaker:CallWithBearerToken``. Not retryable. The message never quotes the token."""

    is_retryable = False


class InternalDependencyError(SageMakerError, lc.ModelAPIError):
    """530 ``InternalDependencyException``: not retried, as the service advises."""

    is_retryable = False


class EndpointUnreachableError(SageMakerError, lc.ModelConnectionError):
    """The endpoint could not be reached (DNS, refused or reset connection)."""

    is_retryable = True


class RequestTimeoutError(SageMakerError, lc.ModelTimeoutError):
    """The request did not complete within the configured connect/read timeout."""

    is_retryable = True


class StreamError(SageMakerError, lc.ModelAPIError):
    """A stream failed after it started.

    ``partial_text`` is everything already received (and yielded) before the
    failure; it is never retried.
    """

    def __init__(self, message: str, *, partial_text: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text

    is_retryable = False


class ResponseParseError(SageMakerError):
    """The reply is not in the content handler's format; ``body_snippet`` shows its start."""

    def __init__(self, message: str, *, body_snippet: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.body_snippet = body_snippet


class StreamParseError(StreamError, ResponseParseError):
    """A stream record is not in the content handler's format (not JSON, or nested too
    deeply): a ``StreamError`` (``partial_text``) that is also a ``ResponseParseError``."""


class AsyncInferenceError(SageMakerError):
    """An asynchronous inference job wrote its failure object; ``failure`` is its content
    and ``job`` the :class:`~sm_llm.async_inference.InferenceJob`."""

    def __init__(
        self, message: str, *, failure: str = "", job: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.failure = failure
        self.job = job


class JobTimeoutError(SageMakerError, lc.ModelTimeoutError):
    """An asynchronous job did not finish before the deadline; ``job`` can be resumed."""

    def __init__(self, message: str, *, job: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job = job

    is_retryable = False
