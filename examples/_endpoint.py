"""Where the examples send their requests — one variable switches to AWS.

- ``SM_LLM_ENDPOINT=my-endpoint`` (and your usual AWS credentials/region): a real endpoint.
- ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8080``: an already running
  ``sm-llm local serve``.
- neither: a local endpoint is started inside the example and stopped at the end.

``SM_LLM_TRANSPORT=httpx`` runs an example on the httpx transport (``transport="httpx"``)
instead of boto3.

Region and credentials are sm_llm's to find (see the README): on a loopback URL it needs
none, so nothing here sets them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _transport() -> dict[str, str]:
    """``transport`` when ``SM_LLM_TRANSPORT`` names one (else the adapters' default)."""
    transport = os.environ.get("SM_LLM_TRANSPORT")
    return {"transport": transport} if transport else {}


@contextmanager
def endpoint(default_name: str) -> Iterator[dict[str, str]]:
    """Yield the adapter fields that select the endpoint (its name, a local URL, the transport)."""
    name = os.environ.get("SM_LLM_ENDPOINT")
    if name or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        yield {"endpoint_name": name or default_name, **_transport()}
        return
    from sm_llm.local import LocalEndpoint

    with LocalEndpoint() as local:
        yield {"endpoint_name": default_name, "endpoint_url": local.url, **_transport()}


def describe(where: dict[str, str]) -> str:
    """What the example talks to, in words (the local endpoint's model is an echo model)."""
    if os.environ.get("SM_LLM_ENDPOINT"):
        return f"Talking to the SageMaker endpoint {where['endpoint_name']} in {where['region_name']}."
    url = where.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
    return (
        f"Talking through {'httpx' if where.get('transport') == 'httpx' else 'boto3'} to the local SageMaker-compatible endpoint at {url}\n"
        f"(endpoint {where['endpoint_name']}). It serves a deterministic local echo model: every "
        "reply is\n\"Echo:\" followed by your prompt, word by word. No AWS account is involved."
    )


@contextmanager
def async_endpoint(
    default_name: str, notifications: bool = False
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Like :func:`endpoint`, plus the ``AsyncInferenceConfig`` fields: on AWS from
    ``SM_LLM_ASYNC_INPUT_S3_URI`` (and ``SM_LLM_ASYNC_QUEUE_URL``); locally a moto S3 (the
    ``local-s3`` extra) and the local async backend, with ``notifications`` also moto
    SNS topics and an SQS queue the local endpoint publishes job outcomes to."""
    if os.environ.get("SM_LLM_ENDPOINT"):
        with endpoint(default_name) as where:
            fields = {"input_s3_uri": os.environ["SM_LLM_ASYNC_INPUT_S3_URI"]}
            if notifications and os.environ.get("SM_LLM_ASYNC_QUEUE_URL"):
                fields["notification_queue_url"] = os.environ["SM_LLM_ASYNC_QUEUE_URL"]
            yield where, fields
        return
    import boto3

    from sm_llm.errors import ConfigurationError
    from sm_llm.local import LocalEndpoint, LocalNotifications, LocalS3, S3AsyncBackend

    try:
        s3 = LocalS3().start()
    except ConfigurationError as exc:  # the local-s3 extra is missing: one line, no traceback
        sys.exit(f"{Path(sys.argv[0]).name}: {exc}")
    with s3, S3AsyncBackend(s3.url) as backend, LocalEndpoint(async_backend=backend) as local:
        boto3.client(  # the local S3 accepts any credentials
            "s3", endpoint_url=s3.url, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
        ).create_bucket(Bucket="inputs")
        where = {"endpoint_name": default_name, "endpoint_url": local.url, **_transport()}
        fields = {"input_s3_uri": "s3://inputs/jobs/", "s3_endpoint_url": s3.url}
        if notifications:
            backend.notifications = LocalNotifications(s3.url)
            fields["notification_queue_url"] = backend.notifications.queue_url
        yield where, fields
