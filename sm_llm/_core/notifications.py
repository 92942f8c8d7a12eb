"""The completion notifications SageMaker publishes for asynchronous inference, parsed.

An async endpoint with ``NotificationConfig`` publishes one JSON message per job to its
success or error SNS topic::

    {"invocationStatus": "Completed", "inferenceId": "...", "eventSource": "aws:sagemaker",
     "requestParameters": {"endpointName": "...", "inputLocation": "s3://..."},
     "responseParameters": {"contentType": "application/json", "outputLocation": "s3://..."}}

    {"invocationStatus": "Failed", "inferenceId": "...", "failureReason": "ClientError: ..."}

An SQS queue subscribed to the topics receives it either as is (raw message delivery) or
wrapped in the SNS envelope (``{"Type": "Notification", "Message": "<that JSON as text>"}``).
Sans-IO: text in, :class:`Notification` (or ``None``) out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Notification", "parse_notification"]

_MAX_TEXT = 256 * 1024  # SNS messages are at most 256 KiB


@dataclass(frozen=True, slots=True)
class Notification:
    """One job's outcome as SageMaker announced it."""

    inference_id: str
    status: Literal["completed", "failed"]
    output_location: str | None = None
    content_type: str | None = None
    failure_reason: str | None = None
    endpoint_name: str | None = None


def _json(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_notification(body: str) -> Notification | None:
    """The SageMaker notification in an SQS message body (raw or SNS-enveloped), or ``None``
    for anything else."""
    data = _json(body)
    if data is not None and data.get("Type") == "Notification" and "Message" in data:
        data = _json(data["Message"])
    if data is None:
        return None
    inference_id, status = data.get("inferenceId"), data.get("invocationStatus")
    if not isinstance(inference_id, str) or not inference_id or status not in ("Completed", "Failed"):
        return None
    response = data.get("responseParameters")
    response = response if isinstance(response, dict) else {}
    request = data.get("requestParameters")
    request = request if isinstance(request, dict) else {}

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    return Notification(
        inference_id=inference_id,
        status="completed" if status == "Completed" else "failed",
        output_location=text(response.get("outputLocation")),
        content_type=text(response.get("contentType")),
        failure_reason=text(data.get("failureReason")),
        endpoint_name=text(request.get("endpointName")),
    )
