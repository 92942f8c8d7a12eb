"""Shared fixtures: dummy AWS environment, one local endpoint per run, a boto3 client."""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.config import Config

from sm_llm.local import LocalEndpoint

_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


# The longest modules, longest first: `make test` hands xdist workers whole modules
# (--dist loadscope --no-loadscope-reorder), and one started last would be the run's tail.
# test_examples.py builds the wheel and a plain-install virtualenv from PyPI (~60 s).
_LONGEST_FIRST = ("test_examples.py", "test_readme_recipes.py", "test_soak_short.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the longest modules to the front (a stable sort: the order inside is kept)."""
    rank = {name: index for index, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session", autouse=True)
def aws_test_env() -> Iterator[None]:
    """Dummy credentials and region for the whole run (left alone for live runs)."""
    if os.environ.get("SM_LLM_LIVE_ENDPOINT"):
        yield
        return
    patch = pytest.MonkeyPatch()
    for name, value in _DUMMY_ENV.items():
        patch.setenv(name, value)
    for name in _UNSET:
        patch.delenv(name, raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def local_endpoint_session() -> Iterator[LocalEndpoint]:
    """One LocalEndpoint (default endpoints) for the whole run; prefer ``local_endpoint``.

    Its OpenAI route takes bearer tokens signed with the README's ``local`` / ``local`` and
    with this run's dummy ``testing`` / ``testing`` credentials."""
    with LocalEndpoint(credentials={"local": "local", "testing": "testing"}) as endpoint:
        yield endpoint


@pytest.fixture
def local_endpoint(local_endpoint_session: LocalEndpoint) -> Iterator[LocalEndpoint]:
    """The shared LocalEndpoint with default faults, no recorded requests and fresh stats."""
    local_endpoint_session.wait_idle(5.0)
    local_endpoint_session.reset()
    yield local_endpoint_session
    local_endpoint_session.wait_idle(5.0)
    local_endpoint_session.reset()


def _make_runtime_client(url: str, **config: Any) -> Any:
    """A sagemaker-runtime client for ``url``: one attempt, 10 s read timeout."""
    options: dict[str, Any] = {
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "read_timeout": 10,
        "connect_timeout": 5,
    }
    options.update(config)
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(**options),
    )


@pytest.fixture(scope="session")
def _runtime_client_session(local_endpoint_session: LocalEndpoint) -> Any:
    return _make_runtime_client(local_endpoint_session.url)


@pytest.fixture
def runtime_client(local_endpoint: LocalEndpoint, _runtime_client_session: Any) -> Any:
    """boto3 ``sagemaker-runtime`` client bound to ``local_endpoint`` (no retries)."""
    return _runtime_client_session


@pytest.fixture
def runtime_client_factory() -> Any:
    """``factory(url, **botocore_config)`` → a sagemaker-runtime client (no retries by default)."""
    return _make_runtime_client


def bearer_token(
    access_key: str = "local",
    secret_key: str = "local",
    *,
    region: str = "us-east-1",
    expires: int = 300,
    session_token: str | None = None,
    signed_at: dt.datetime | None = None,
) -> str:
    """A SageMaker bearer token made as AWS's ``token_generator`` makes it, with botocore's
    own SigV4 query signer (``signed_at``: a naive UTC time to sign at instead of now)."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url="https://sagemaker.amazonaws.com/",
        headers={"host": "sagemaker.amazonaws.com"},
        params={"Action": "CallWithBearerToken"},
    )
    signer = SigV4QueryAuth(Credentials(access_key, secret_key, session_token), "sagemaker", region, expires=expires)
    if signed_at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", lambda *a, **k: signed_at):
            signer.add_auth(request)
    url = request.url.removeprefix("https://") + "&Version=1"
    return "sagemaker-api-key-" + base64.b64encode(url.encode("utf-8")).decode("ascii")


@pytest.fixture
def make_bearer_token() -> Callable[..., str]:
    """``make_bearer_token(access_key="local", secret_key="local", *, region, expires,
    session_token, signed_at)`` → a bearer token for the OpenAI route (see :func:`bearer_token`)."""
    return bearer_token
