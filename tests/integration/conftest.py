"""Adapter fixtures: adapters pointed at the shared local endpoint, on both transports.

Every test that calls SageMaker Runtime through an adapter runs once per transport
(``TRANSPORTS``: ``[botocore]`` and ``[httpx]`` in its id). One mechanism does it:
:func:`pytest_generate_tests` parametrises the ``sm_transport`` fixture for every test that
uses it — directly or through ``make_llm`` / ``make_chat`` (which pass it as
``transport=``); tests that build adapters themselves pass ``transport=sm_transport``,
command lines get ``--transport`` and examples ``SM_LLM_TRANSPORT`` (examples/_endpoint.py).
A test that asks for ``async_path`` also runs botocore's two async paths: ``botocore-aio``
(aiobotocore), ``botocore-threads`` (boto3 on worker threads, aiobotocore hidden) and
``httpx`` (native async).

What stays single never asks for ``sm_transport``: the local endpoint's own tests
(``local/``, raw boto3), the OpenAI route (its own wire, whatever ``transport`` says),
test_httpx_transport.py (compares the two side by side), packaging, ``client=`` injection
(a boto3 client: botocore only), the README's recipes (run as written). A class that gets
``sm_transport`` from a shared fixture but is about one wire is marked
``@pytest.mark.single_transport("why")`` and runs on the default, botocore.

Cost (CI has 2 cores; the whole ``make test`` was ~6 minutes): the doubled tests are the
in-process ones, ~10-100 ms each: tests/integration (``-n 2``) went from 3 min 2 s to
4 min 8 s of wall time and from 4.5 to 6.4 CPU minutes, 1,320 to 1,537 tests. The slow process-level
tests are about processes, files and ledgers rather than the wire, so they run once, on
botocore, saying why in their module: kill -9 and resume (test_batch.py,
test_job_ledger_integration.py), plain-install virtualenvs (test_examples.py), Ray
(test_ray.py); each command line still has one real-process smoke test per transport, and
the spawned-process pickling test ships both transports' models through one process pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm._adapter import TRANSPORTS as ADAPTER_TRANSPORTS
from sm_llm.local import FaultConfig, LocalEndpoint, LocalNotifications, LocalS3, S3AsyncBackend
from sm_llm.transports import aws


@pytest.fixture
def fault() -> Callable[..., FaultConfig]:
    """Build a FaultConfig."""
    return FaultConfig


TRANSPORTS = list(ADAPTER_TRANSPORTS)
"""The built-in transports; every test using ``sm_transport`` runs on each."""
ASYNC_PATHS = [("botocore", "aio"), ("botocore", "threads"), ("httpx", "native")]
"""(transport, async path) pairs of the tests that ask for ``async_path``."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``sm_transport`` (and ``async_path``) — see the module docstring.

    Module scope (but with ``async_path``, whose monkeypatch is per test): a module-scoped
    fixture may build its adapter from ``sm_transport``, and pytest then runs a module's
    tests transport by transport."""
    if "sm_transport" not in metafunc.fixturenames or metafunc.definition.get_closest_marker("single_transport"):
        return  # the fixture below: botocore
    if "async_path" in metafunc.fixturenames:
        ids = [f"{transport}-{path}" if transport == "botocore" else transport for transport, path in ASYNC_PATHS]
        metafunc.parametrize(("sm_transport", "async_path"), ASYNC_PATHS, ids=ids, indirect=["async_path"])
    else:
        metafunc.parametrize("sm_transport", TRANSPORTS, scope="module")


@pytest.fixture
def sm_transport() -> str:
    """The ``transport=`` the adapters of a test use: each of ``TRANSPORTS`` in turn
    (parametrised above), botocore alone for ``single_transport`` tests."""
    return "botocore"


@pytest.fixture
def async_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """How async calls run: ``aio`` (aiobotocore), ``threads`` (boto3 on worker threads:
    aiobotocore hidden) or ``native`` (httpx); parametrised with ``sm_transport``."""
    path = str(getattr(request, "param", "aio"))
    if path == "threads":
        monkeypatch.setattr(aws, "AIO_AVAILABLE", False)
    elif path == "aio":
        assert aws.AIO_AVAILABLE, "the aio extra must be installed for the test suite"
    yield path


def _maker(cls: type[Any], local_endpoint: LocalEndpoint, sm_transport: str) -> Callable[..., Any]:
    def make(endpoint_name: str, **fields: Any) -> Any:
        fields.setdefault("max_retries", 0)
        fields.setdefault("transport", sm_transport)
        return cls(endpoint_name=endpoint_name, endpoint_url=local_endpoint.url, region_name="us-east-1", **fields)

    return make


@pytest.fixture
def make_llm(local_endpoint: LocalEndpoint, sm_transport: str) -> Callable[..., SageMakerLLM]:
    """``make_llm(endpoint_name, **fields)`` → a SageMakerLLM on the local endpoint, on
    the ``sm_transport`` transport."""
    return _maker(SageMakerLLM, local_endpoint, sm_transport)


@pytest.fixture
def make_chat(local_endpoint: LocalEndpoint, sm_transport: str) -> Callable[..., ChatSageMaker]:
    """``make_chat(endpoint_name, **fields)`` → a ChatSageMaker on the local endpoint, on
    the ``sm_transport`` transport."""
    return _maker(ChatSageMaker, local_endpoint, sm_transport)


@pytest.fixture(scope="session")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh shell's environment: ``PATH`` with this interpreter's ``bin`` first (where
    ``sm-llm`` is), ``HOME`` an empty directory (no ``~/.aws``), no ``AWS_*`` variable."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(tmp_path_factory.mktemp("home")),
        "LANG": "C.UTF-8",
    }
    if os.environ.get("PYTHONPATH"):  # a development checkout run against a shared venv
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


ROOT = Path(__file__).resolve().parents[2]

@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's wheel (built without isolation: the test venv has hatchling), once per
    run (per xdist worker under ``make test``), for test_packaging.py and test_examples.py."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (built,) = dist.glob("sm_llm-*.whl")
    return built


# -- asynchronous inference with notifications (modules that use these importorskip moto) --

@pytest.fixture(scope="module")
def moto() -> Iterator[LocalS3]:
    """A moto server (S3, SNS, SQS) for the module."""
    with LocalS3() as server:
        yield server


@pytest.fixture(scope="module")
def notes(moto: LocalS3, request: pytest.FixtureRequest) -> LocalNotifications:
    """SNS topics and an SQS queue on ``moto``, named after the module."""
    return LocalNotifications(moto.url, prefix=request.module.__name__.rsplit(".", 1)[-1].replace("_", "-"))


def drain(notes: LocalNotifications) -> None:
    """Delete whatever an earlier test left in the queue (bounded)."""
    for _ in range(50):
        reply = notes._sqs.receive_message(QueueUrl=notes.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        messages = reply.get("Messages", [])
        if not messages:
            return
        for message in messages:
            notes._sqs.delete_message(QueueUrl=notes.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def backend(moto: LocalS3, notes: LocalNotifications, local_endpoint: LocalEndpoint) -> Iterator[S3AsyncBackend]:
    """The local endpoint's async backend on ``moto``, publishing to ``notes``; the queue
    starts empty."""
    running = S3AsyncBackend(moto.url, notifications=notes)
    local_endpoint.async_backend = running
    drain(notes)
    yield running
    running.close()
    local_endpoint.async_backend = None
