"""Every example runs against the local endpoint (smoke: exit 0 and the expected output)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECT = {
    "quickstart.py": "Echo: SageMaker endpoints are now LangChain models",
    "multi_model_endpoint.py": "model-b.tar.gz → B: hello from the other model",
    "chain.py": "batch: Echo: Summarise in one line: document number 3",
    "agent.py": "answer: Tool result: It is 21 °C and sunny in Lisbon.",
    "chatbot_backend.py": "history of alice: 4 messages",
    "async_job.py": "invoke: Echo: a prompt that takes an hour on a real endpoint",
    "rag.py": "retrieved: Asynchronous inference queues requests",
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_example_runs(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SM_LLM_ENDPOINT", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert EXPECT[name] in result.stdout
