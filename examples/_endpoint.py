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
