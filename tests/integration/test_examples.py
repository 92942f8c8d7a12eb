"""Every example runs against the local endpoint (smoke: exit 0 and the expected output)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    "from_langchain_aws.py": "stream: Echo:| Streaming| needs| no| handler| code",
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_example_runs(name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SM_LLM_ENDPOINT", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert EXPECT[name] in result.stdout


def test_readme_shows_the_langchain_aws_example_it_runs() -> None:
    """README "Coming from langchain-aws": its "after" block is the code the example runs."""
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Coming from langchain-aws", 1)[1].split("\n## ", 1)[0]
    after = section.split("```python\n")[2].split("```", 1)[0]
    example = (EXAMPLES / "from_langchain_aws.py").read_text(encoding="utf-8")
    assert after.strip() == example.split("# --- after\n")[1].strip()


@pytest.mark.parametrize("served", [True, False], ids=["make-demo", "in-process"])
def test_quickstart_says_it_talks_to_the_local_echo_model(ep: Any, served: bool) -> None:
    """``make demo`` runs the quickstart against ``sm-llm local serve`` (the URL variable set);
    alone it starts a local endpoint itself. Either way it says so and prints plain text."""
    env = {k: v for k, v in os.environ.items() if k not in ("SM_LLM_ENDPOINT", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")}
    if served:
        env.update(AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=ep.url, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "local echo model" in out and "http://127.0.0.1:" in out
    if served:
        assert ep.url in out and len(ep.requests) == 3
    assert "{'" not in out and "'Echo" not in out  # no dict or string reprs
    assert "Echo: What stops at the full stop\n" in out
    assert "finish reason: stop, completion tokens: 7" in out
