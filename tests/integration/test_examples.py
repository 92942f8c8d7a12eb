"""Every example runs against the local endpoint (smoke: exit 0 and the expected output), in a
fresh shell (no AWS variables, no ~/.aws) — here, and in a virtualenv that holds only the
plain install of this checkout plus the extras the example declares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

EXPECT = {
    "quickstart.py": "Echo: SageMaker endpoints are now LangChain models",
    "multi_model_endpoint.py": "model-b.tar.gz → B: hello from the other model",
    "chain.py": "batch: Echo: Summarise in one line: document number 3",
    "agent.py": "answer: Tool result: It is 21 °C and sunny in Lisbon.",
    "chatbot_backend.py": "history of alice: 4 messages",
    "async_job.py": "invoke: Echo: a prompt that takes an hour on a real endpoint",
    "async_campaign.py": "from the file alone: Echo: Summarise chapter 1",
    "rag.py": "retrieved: Asynchronous inference queues requests",
    "from_langchain_aws.py": "stream: Echo:| Streaming| needs| no| handler| code",
    "openai_route.py": "other client: Echo: plain HTTP works too",
    "ray_batch.py": "20 answers, 0 failed",
    "batch_job.py": "resumed: 0 done, 0 failed, 12 skipped",
}
ONCE = {  # examples run on botocore only, and why
    "ray_batch.py": "starting Ray takes ~15 s; SageMakerMapper runs on each transport in test_ray.py",
    "openai_route.py": "api='openai' has its own wire: transport does not apply",
}
EXTRAS = {"async_job.py": "local-s3", "async_campaign.py": "local-s3", "ray_batch.py": "ray"}  # what each example declares beyond the plain install
ABSENT_FROM_PLAIN = ("numpy", "moto", "flask", "aiobotocore", "tqdm", "pytest")


def _run(python: Path | str, name: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), str(EXAMPLES / name)], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_example_runs(name: str, fresh_env: dict[str, str], sm_transport: str) -> None:
    """Each example on each transport (``SM_LLM_TRANSPORT``, read by examples/_endpoint.py)."""
    if name in ONCE and sm_transport != "botocore":
        pytest.skip(ONCE[name])
    if name == "ray_batch.py":
        pytest.importorskip("ray", reason="Ray is not installed (pip install 'sm-llm[ray]')")
    result = _run(sys.executable, name, {**fresh_env, "SM_LLM_TRANSPORT": sm_transport}, ROOT)
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
def test_quickstart_says_it_talks_to_the_local_echo_model(
    local_endpoint: Any, served: bool, fresh_env: dict[str, str]
) -> None:
    """``make demo`` runs the quickstart against ``sm-llm local serve`` (the URL variable set);
    alone it starts a local endpoint itself. Either way it says so and prints plain text."""
    env = dict(fresh_env)
    if served:
        env.update(AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=local_endpoint.url, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "local echo model" in out and "http://127.0.0.1:" in out
    if served:
        assert local_endpoint.url in out and len(local_endpoint.requests) == 3
    assert "{'" not in out and "'Echo" not in out  # no dict or string reprs
    assert "Echo: What stops at the full stop\n" in out
    assert "finish reason: stop, completion tokens: 7" in out


# -- a plain install ------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel installed as the README's Install says, dependencies from
    PyPI; pip runs from the test interpreter (``--python``), so the venv holds nothing else."""
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    _pip_install(venv, str(wheel))
    return venv / "bin" / "python"


def _pip_install(venv: Path, requirement: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--disable-pip-version-check", "--no-compile", requirement],  # .pyc on first import
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr


def _plain_env(fresh_env: dict[str, str], python: Path) -> dict[str, str]:
    """The fresh shell, with the venv's bin first and nothing from this checkout on the path."""
    env = {k: v for k, v in fresh_env.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{python.parent}:/usr/bin:/bin"
    return env


def test_plain_install_has_only_the_runtime_dependencies(
    plain: Path, fresh_env: dict[str, str], tmp_path: Path
) -> None:
    check = (
        "import importlib.util as u, sm_llm; "
        f"print(sm_llm.__file__); print([m for m in {ABSENT_FROM_PLAIN!r} if u.find_spec(m)])"
    )
    result = subprocess.run(
        [str(plain), "-c", check], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env=_plain_env(fresh_env, plain),
    )
    assert result.returncode == 0, result.stderr
    location, absent = result.stdout.splitlines()
    assert location.startswith(str(plain.parent.parent)) and absent == "[]"


@pytest.mark.parametrize("name", sorted(set(EXPECT) - set(EXTRAS)))
def test_example_runs_in_a_plain_install(name: str, plain: Path, fresh_env: dict[str, str], tmp_path: Path) -> None:
    result = _run(plain, name, _plain_env(fresh_env, plain), tmp_path)
    assert result.returncode == 0, result.stderr
    assert EXPECT[name] in result.stdout


def test_local_s3_extra_missing_then_installed(
    plain: Path, wheel: Path, fresh_env: dict[str, str], tmp_path: Path
) -> None:
    """Without the extra: one line naming it, from the example and from the CLI; with it: runs."""
    env = _plain_env(fresh_env, plain)
    result = _run(plain, "async_job.py", env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "'local-s3' extra" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr

    serve = subprocess.run(
        [str(plain.parent / "sm-llm"), "local", "serve", "--port", "0", "--with-s3"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )
    assert serve.returncode == 2
    assert serve.stderr.count("\n") == 1 and "'local-s3' extra" in serve.stderr, serve.stderr

    _pip_install(plain.parent.parent, f"{wheel}[{EXTRAS['async_job.py']}]")
    result = _run(plain, "async_job.py", env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert EXPECT["async_job.py"] in result.stdout
