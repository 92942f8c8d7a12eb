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
