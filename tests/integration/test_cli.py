"""The sm-llm command line, run as a real process against the local endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run(*args: str, url: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if url:
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = url
    return subprocess.run(
        [sys.executable, "-m", "sm_llm.cli", *args],
        capture_output=True, text=True, timeout=60, env=env, input=stdin,
    )


def test_invoke(local_endpoint: Any) -> None:
    result = run("invoke", "--endpoint", "tgi", "--region", "us-east-1", "hello cli", url=local_endpoint.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo: hello cli\n"


def test_invoke_json_and_routing(local_endpoint: Any) -> None:
    result = run(
        "invoke", "--endpoint", "mme", "--region", "us-east-1", "--target-model", "model-b.tar.gz",
        "--json", "--max-tokens", "2", "a b c", url=local_endpoint.url,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["text"] == "B: a" and out["finish_reason"] == "length"
    assert local_endpoint.requests[-1].headers["x-amzn-sagemaker-target-model"] == "model-b.tar.gz"


def test_invoke_stream_prints_tokens(local_endpoint: Any) -> None:
    result = run("invoke", "--stream", "--endpoint", "openai", "--handler", "openai", "--region", "us-east-1", "x y", url=local_endpoint.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo: x y\n"
    assert local_endpoint.requests[-1].operation == "InvokeEndpointWithResponseStream"


def test_prompt_from_stdin(local_endpoint: Any) -> None:
    result = run("invoke", "--endpoint", "tgi", "--region", "us-east-1", "-", url=local_endpoint.url, stdin="from stdin")
    assert result.stdout == "Echo: from stdin\n"


def test_render_sends_nothing(local_endpoint: Any) -> None:
    result = run("render", "--endpoint", "mme", "--region", "us-east-1", "--target-model", "m.tar.gz", "--custom-attributes", "a=1", 'say "hi"', url=local_endpoint.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "operation: InvokeEndpoint"
    assert lines[1] == "POST /endpoints/mme/invocations"
    assert "X-Amzn-SageMaker-Target-Model: m.tar.gz" in lines
    assert "X-Amzn-SageMaker-Custom-Attributes: a=1" in lines
    assert json.loads(lines[-1])["inputs"] == 'say "hi"'
    stream = run("render", "--stream", "--endpoint", "tgi", "--region", "us-east-1", "x")
    assert "X-Amzn-SageMaker-Accept: application/json" in stream.stdout.splitlines()
    assert local_endpoint.requests == []


def test_handlers_lists_presets() -> None:
    result = run("handlers")
    assert result.returncode == 0
    for name in ("tgi", "lmi", "openai", "jumpstart", "jumpstart-chat", "text2text"):
        assert f"\n{name} " in result.stdout


def test_bad_input_is_one_line_and_exit_2(local_endpoint: Any) -> None:
    for args in (
        ("invoke", "--endpoint", "tgi", "--region", "us-east-1", "--target-variant", "bad_name", "x"),
        ("invoke", "--region", "us-east-1", "x"),
        ("invoke", "--endpoint", "tgi", "--handler", "nope", "x"),
        ("bogus",),
        ("invoke", "--endpoint", "tgi", "--max-tokens", "many", "x"),
    ):
        result = run(*args, url=local_endpoint.url)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert local_endpoint.requests == []


def test_service_error_is_one_line_and_exit_1(local_endpoint: Any) -> None:
    result = run("invoke", "--endpoint", "no-such", "--region", "us-east-1", "x", url=local_endpoint.url)
    assert result.returncode == 1
    assert result.stderr.startswith("sm-llm: EndpointNotFoundError:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_invoke_from_a_config_file(local_endpoint: Any, tmp_path: Any) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        "defaults:\n  region_name: us-east-1\nmodels:\n"
        "  writer: {kind: llm, endpoint_name: tgi, max_tokens: 2}\n"
        "  assistant: {kind: chat, endpoint_name: openai, content_handler: openai}\n"
    )
    result = run("invoke", "--config", str(config), "--name", "writer", "a b c", url=local_endpoint.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo: a\n"
    chat = run("invoke", "--config", str(config), "--name", "assistant", "--json", "--max-tokens", "5", "hi there", url=local_endpoint.url)
    assert chat.returncode == 0, chat.stderr
    out = json.loads(chat.stdout)
    assert out["text"] == "Echo: hi there" and out["model_provider"] == "amazon_sagemaker"
    assert json.loads(local_endpoint.requests[-1].body)["max_tokens"] == 5  # the flag overrides the file
    streamed = run("invoke", "--config", str(config), "--name", "assistant", "--stream", "x y", url=local_endpoint.url)
    assert streamed.stdout == "Echo: x y\n"
    bad = run("invoke", "--config", str(config), "--name", "nope", "x", url=local_endpoint.url)
    assert bad.returncode == 2 and "no model named 'nope'" in bad.stderr


def test_local_serve_refuses_a_non_http_upstream() -> None:
    for upstream in ("file:///etc/passwd", "gopher://127.0.0.1:70/_x"):
        result = subprocess.run(  # before the check this served until killed
            [sys.executable, "-m", "sm_llm.cli", "local", "serve", "--port", "0", "--upstream", upstream],
            capture_output=True, text=True, timeout=20,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("sm-llm: error: upstream=") and len(result.stderr.splitlines()) == 1
        assert result.stdout == ""
