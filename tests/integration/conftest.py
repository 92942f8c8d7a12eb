"""Adapter fixtures: adapters pointed at the shared local endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sm_llm import SageMakerLLM
from sm_llm.local import FaultConfig, LocalEndpoint


@pytest.fixture
def fault() -> Callable[..., FaultConfig]:
    """Build a FaultConfig."""
    return FaultConfig


TRANSPORTS = ["botocore", "httpx"]
"""The built-in transports. A module runs on both by overriding ``sm_transport``:

    @pytest.fixture(params=TRANSPORTS)
    def sm_transport(request): return request.param
"""


@pytest.fixture
def sm_transport() -> str:
    """The ``transport=`` the adapters of a test use (``botocore``; see ``TRANSPORTS``)."""
    return "botocore"


@pytest.fixture
def make_llm(local_endpoint: LocalEndpoint, sm_transport: str) -> Callable[..., SageMakerLLM]:
    """``make_llm(endpoint_name, **fields)`` → a SageMakerLLM on the local endpoint, on
    the ``sm_transport`` transport."""

    def make(endpoint_name: str, **fields: Any) -> SageMakerLLM:
        fields.setdefault("max_retries", 0)
        fields.setdefault("transport", sm_transport)
        return SageMakerLLM(
            endpoint_name=endpoint_name, endpoint_url=local_endpoint.url, region_name="us-east-1", **fields
        )

    return make


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
