"""Completion notifications for the local endpoint's async jobs: moto SNS topics and an
SQS queue in the same moto server as :class:`~sm_llm.local.LocalS3`.

Like an async endpoint with ``NotificationConfig``, every job publishes one message to the
success or the error topic, in SageMaker's format (``invocationStatus``, ``inferenceId``,
``requestParameters``, ``responseParameters.outputLocation``, ``failureReason``...). The
queue is subscribed to both topics, so it receives them in the SNS envelope (or as is with
``raw=True``, raw message delivery).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from sm_llm.errors import ConfigurationError

__all__ = ["LocalNotifications"]

logger = logging.getLogger("sm_llm.local")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{datetime.now(UTC).microsecond // 1000:03d}Z"


class LocalNotifications:
    """SNS success/error topics and one SQS queue subscribed to both, on ``url`` (moto)."""

    def __init__(
        self, url: str, *, region: str = "us-east-1", prefix: str = "sm-llm-local-async", raw: bool = False,
        clients: tuple[Any, Any] | None = None,
    ) -> None:
        self.region = region
        if clients is None:
            import boto3

            kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": region,
                                      "aws_access_key_id": "local", "aws_secret_access_key": "local"}
            clients = (boto3.client("sns", **kwargs), boto3.client("sqs", **kwargs))
        self._sns, self._sqs = clients
        try:
            self.success_topic = self._sns.create_topic(Name=f"{prefix}-success")["TopicArn"]
            self.error_topic = self._sns.create_topic(Name=f"{prefix}-error")["TopicArn"]
            self.queue_url = self._sqs.create_queue(QueueName=f"{prefix}-notifications")["QueueUrl"]
            queue_arn = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            for topic in (self.success_topic, self.error_topic):
                self._sns.subscribe(
                    TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                    Attributes={"RawMessageDelivery": "true" if raw else "false"},
                )
        except Exception as exc:
            raise ConfigurationError(f"cannot create the local notification topics and queue: {exc}") from exc
        self.published = 0

    def publish(
        self, *, endpoint_name: str, inference_id: str, received: str, input_location: str | None,
        output_location: str | None = None, content_type: str | None = None, failure_reason: str | None = None,
    ) -> None:
        """Publish one job's outcome (a failure when ``failure_reason`` is given)."""
        message: dict[str, Any] = {
            "awsRegion": self.region, "eventTime": _now(), "receivedTime": received,
            "invocationStatus": "Failed" if failure_reason is not None else "Completed",
            "requestParameters": {"endpointName": endpoint_name, **({"inputLocation": input_location} if input_location else {})},
            "inferenceId": inference_id, "eventVersion": "1.0", "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }
        if failure_reason is None:
            message["responseParameters"] = {"contentType": content_type or "application/json",
                                             "outputLocation": output_location}
        else:
            message["failureReason"] = failure_reason
        topic = self.error_topic if failure_reason is not None else self.success_topic
        try:
            self._sns.publish(TopicArn=topic, Message=json.dumps(message))
            self.published += 1
        except Exception:  # a lost notification is what the client's S3 fallback is for
            logger.warning("cannot publish the notification of job %s", inference_id, exc_info=True)
