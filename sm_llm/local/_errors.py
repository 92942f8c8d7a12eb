"""Service error replies: codes, HTTP statuses and JSON bodies."""

from __future__ import annotations

from typing import Any

__all__ = ["STATUS", "ServiceError", "injected_error", "model_error"]

STATUS: dict[str, int] = {
    "ValidationError": 400,
    "UnknownOperationException": 404,
    "ModelError": 424,
    "ModelNotReadyException": 429,
    "ThrottlingException": 429,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "InternalDependencyException": 530,
}

_INJECTED_MESSAGES = {
    "ValidationError": "Injected validation error.",
    "ModelNotReadyException": "Model is not ready to serve requests yet (injected fault).",
    "ThrottlingException": "Rate exceeded (injected fault).",
    "InternalFailure": "An internal failure occurred (injected fault).",
    "ServiceUnavailable": "Service is unavailable (injected fault).",
    "InternalDependencyException": "An internal dependency failed (injected fault).",
}


class ServiceError(Exception):
    """An error reply: ``code`` (``x-amzn-ErrorType``), message and modeled members."""

    def __init__(self, code: str, message: str, **members: Any) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.members = members

    @property
    def status(self) -> int:
        """The HTTP status of this error."""
        return STATUS.get(self.code, 500)

    def body(self) -> dict[str, Any]:
        """The JSON body: ``message`` plus the modeled members."""
        return {"message": self.message, **self.members}


def model_error(
    *,
    endpoint: str,
    container_name: str,
    status: int,
    body: str,
    region: str,
    account_id: str,
) -> ServiceError:
    """The 424 ``ModelError`` SageMaker answers when the container replied ``status``."""
    kind = "client" if 400 <= status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    message = (
        f'Received {kind} error ({status}) from {container_name} with message "{body}". '
        f"See https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={group} in account {account_id} for more information."
    )
    return ServiceError(
        "ModelError",
        message,
        Message=message,
        OriginalStatusCode=status,
        OriginalMessage=body,
        LogStreamArn=f"arn:aws:logs:{region}:{account_id}:log-group:{group}",
    )


def injected_error(code: str, *, endpoint: str, region: str, account_id: str) -> ServiceError:
    """The reply for an injected fault ``code``."""
    if code == "ModelError":
        return model_error(
            endpoint=endpoint,
            container_name="primary",
            status=500,
            body='{"error":"injected model failure","error_type":"generation"}',
            region=region,
            account_id=account_id,
        )
    return ServiceError(code, _INJECTED_MESSAGES.get(code, f"Injected {code}."))
