"""The SQS operations of completion notifications, on a boto3 SQS client: errors mapped to
:mod:`sm_llm.errors`."""

from __future__ import annotations

from typing import Any

from sm_llm.transports.base import QueueMessage
from sm_llm.transports.mapping import map_error

__all__ = ["sqs_delete", "sqs_receive"]


def sqs_receive(client: Any, queue_url: str, wait_seconds: int, max_messages: int) -> list[QueueMessage]:
    """``ReceiveMessage``: a long poll of at most ``wait_seconds`` for up to ``max_messages``."""
    try:
        reply = client.receive_message(
            QueueUrl=queue_url, WaitTimeSeconds=wait_seconds, MaxNumberOfMessages=max_messages,
        )
    except Exception as exc:
        raise map_error(exc, f"SQS ReceiveMessage {queue_url}", None) from exc
    return [
        QueueMessage(body=str(m.get("Body", "")), receipt_handle=str(m["ReceiptHandle"]),
                     message_id=str(m.get("MessageId", "")))
        for m in reply.get("Messages", [])
    ]


def sqs_delete(client: Any, queue_url: str, receipt_handles: list[str]) -> None:
    """``DeleteMessageBatch``, ten at a time; a handle that could not be deleted is left
    (the message comes back and is recognised as a duplicate)."""
    for start in range(0, len(receipt_handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle}
            for i, handle in enumerate(receipt_handles[start : start + 10])
        ]
        try:
            client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        except Exception as exc:
            raise map_error(exc, f"SQS DeleteMessageBatch {queue_url}", None) from exc
