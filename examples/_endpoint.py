"""Where the examples send their requests — one variable switches to AWS.

- ``SM_LLM_ENDPOINT=my-endpoint`` (and your usual AWS credentials/region): a real endpoint.
- ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8080``: an already running
  ``sm-llm local serve``.
- neither: a local endpoint is started inside the example and stopped at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def endpoint(default_name: str) -> Iterator[dict[str, str]]:
    """Yield the adapter fields that select the endpoint (name, region, URL)."""
    name = os.environ.get("SM_LLM_ENDPOINT")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if name or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        yield {"endpoint_name": name or default_name, "region_name": region}
        return
    from sm_llm.local import LocalEndpoint

    # The local endpoint accepts any credentials; boto3 only needs some to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with LocalEndpoint() as local:
        yield {"endpoint_name": default_name, "region_name": region, "endpoint_url": local.url}


def describe(where: dict[str, str]) -> str:
    """What the example talks to, in words (the local endpoint's model is an echo model)."""
    if os.environ.get("SM_LLM_ENDPOINT"):
        return f"Talking to the SageMaker endpoint {where['endpoint_name']} in {where['region_name']}."
    url = where.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
    return (
        f"Talking through boto3 to the local SageMaker-compatible endpoint at {url}\n"
        f"(endpoint {where['endpoint_name']}). It serves a deterministic local echo model: every "
        "reply is\n\"Echo:\" followed by your prompt, word by word. No AWS account is involved."
    )


@contextmanager
def async_endpoint(default_name: str) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Like :func:`endpoint`, plus the ``AsyncInferenceConfig`` fields: on AWS from
    ``SM_LLM_ASYNC_INPUT_S3_URI``; locally a moto S3 and the local async backend."""
    if os.environ.get("SM_LLM_ENDPOINT"):
        with endpoint(default_name) as where:
            yield where, {"input_s3_uri": os.environ["SM_LLM_ASYNC_INPUT_S3_URI"]}
        return
    import boto3

    from sm_llm.local import LocalEndpoint, LocalS3, S3AsyncBackend

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with LocalS3() as s3, S3AsyncBackend(s3.url) as backend, LocalEndpoint(async_backend=backend) as local:
        boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1").create_bucket(Bucket="inputs")
        where = {"endpoint_name": default_name, "region_name": "us-east-1", "endpoint_url": local.url}
        yield where, {"input_s3_uri": "s3://inputs/jobs/", "s3_endpoint_url": s3.url}
