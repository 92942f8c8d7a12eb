"""The sm-llm command line, in process (``main(argv)``) against the shared local endpoint:
credentials from --config, errors that name flags, every config problem at once,
``--version``, ``--stream --json``, the wrong-handler hint; plus two real processes
for ``local serve`` (a busy port, ``--with-s3``)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

import sm_llm
from sm_llm.cli import main

AMBIENT_KEY = "AKIAAMBIENT000000000"
FILE_KEY = "AKIAFROMFILE00000000"


@pytest.fixture
def url(local_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", local_endpoint.url)
    return str(local_endpoint.url)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sm-llm: error: "), err
    return lines[0]


# -- issue 11 item 16: --config credentials sign the request ------------------------------

@pytest.mark.parametrize("flags", [(), ("--max-tokens", "3", "--param", "top_k=5")])
def test_invoke_config_credentials_sign_the_request(
    local_endpoint: Any, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], sm_transport: str,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AMBIENT_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret")
    monkeypatch.setenv("FILE_SECRET", "file-secret")
    config = tmp_path / "model.yaml"
    config.write_text(
        "kind: llm\nendpoint_name: tgi\nregion_name: eu-west-3\n"
        f"aws_access_key_id: {FILE_KEY}\naws_secret_access_key: ${{FILE_SECRET}}\n"
        f"aws_session_token: file-session-token\ntransport: {sm_transport}\n"
    )
    code, out, _ = run(capsys, "invoke", "--config", str(config), *flags, "a b c d")
    assert code == 0 and out.startswith("Echo: ")
    headers = local_endpoint.requests[-1].headers
    # before the fix: Credential=AKIAAMBIENT..., no session token (to_config drops secrets)
    assert f"Credential={FILE_KEY}/" in headers["authorization"]
    assert "/eu-west-3/sagemaker/" in headers["authorization"]
    assert headers["x-amz-security-token"] == "file-session-token"
    if flags:
        body = json.loads(local_endpoint.requests[-1].body)
        assert body["parameters"]["max_new_tokens"] == 3 and body["parameters"]["top_k"] == 5


# -- issue 12 item 11: errors name the CLI's flags -----------------------------------------

def _no_aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)


def _flag_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    line = _one_error_line(err)
    assert not re.search(r"\b[a-z0-9]+_[a-z0-9_]+=", line), line  # no Python keyword arguments
    return line


# A loopback endpoint gets the local defaults (region us-east-1, key "local"), so these two
# point at a real-looking remote URL; both errors are raised before anything is sent, and an
# RFC 2606 ".invalid" host could not be reached even if that regressed.
REMOTE = "https://runtime.sagemaker.invalid"


def test_no_region_names_region_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sm_transport: str
) -> None:
    _no_aws_files(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", REMOTE)
    line = _flag_error(capsys, "invoke", "--endpoint", "tgi", "--transport", sm_transport, "x")
    assert line.startswith("sm-llm: error: no AWS region is configured: pass --region ")
    assert "region_name" not in line


def test_no_credentials_names_profile_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sm_transport: str
) -> None:
    _no_aws_files(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", REMOTE)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    line = _flag_error(capsys, "invoke", "--endpoint", "tgi", "--region", "us-east-1", "--transport", sm_transport, "x")
    assert line.startswith("sm-llm: error: no AWS credentials found: pass --profile ")
    assert "credentials_profile_name" not in line and "aws_access_key_id" not in line


def test_non_loopback_host_names_allow_remote_flag(capsys: pytest.CaptureFixture[str]) -> None:
    line = _flag_error(capsys, "local", "serve", "--host", "0.0.0.0", "--port", "0")
    assert line == (
        "sm-llm: error: refusing to bind the local endpoint to non-loopback host '0.0.0.0': "
        "pass --allow-remote to expose it"
    )


def test_several_models_names_name_flag(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("models:\n  a: {endpoint_name: tgi}\n  b: {endpoint_name: lmi}\n")
    line = _flag_error(capsys, "invoke", "--config", str(config), "x")
    assert line == "sm-llm: error: several models are defined (a, b): pass --name NAME"


def test_oversized_prompt_points_at_job_submit(
    local_endpoint: Any, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _flag_error(capsys, "invoke", "--endpoint", "tgi", "--region", "us-east-1", "x" * 6_300_000)
    assert "real-time invocations are limited to 6,291,456 bytes" in line
    assert "sm-llm job submit --input-s3-uri" in line and "async_inference" not in line
    assert local_endpoint.requests == []


def test_oversized_inline_job_names_input_s3_uri_flag(
    local_endpoint: Any, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _flag_error(
        capsys, "job", "submit", "--endpoint", "tgi", "--region", "us-east-1", "--inline", "x" * 130_000
    )
    assert "inline asynchronous bodies are limited to 128,000 bytes: pass --input-s3-uri" in line
    assert local_endpoint.requests == []


def test_busy_port_names_port_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _flag_error(capsys, "local", "serve", "--port", str(port))
    assert line.startswith(f"sm-llm: error: cannot listen on http://127.0.0.1:{port}: ")
    assert "in use" in line and line.endswith("pick another --port (--port 0 takes any free one)")


def test_local_serve_busy_port_is_one_line_and_exit_2() -> None:
    """A real process: before the fix, a traceback ending in OSError: [Errno 98]."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sm_llm.cli", "local", "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"sm-llm: error: cannot listen on http://127.0.0.1:{port}: ")


# -- issue 12 item 12: every problem at once ------------------------------------------------

def test_config_check_reports_every_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "models:\n"
        "  good: {endpoint_name: tgi}\n"
        "  writer:\n"
        "    endpoint_name: tgi\n"
        "    max_tokens: 0\n"
        "  assistant:\n"
        "    kind: chat\n"
        "    endpoint_name: openai\n"
        "    temprature: 0.5\n"
    )
    code, out, err = run(capsys, "config", "check", str(config))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"sm-llm: error: 2 problems in {config}:"
    assert lines[1].startswith("  agent.yaml:5 models.writer.max_tokens: ")
    assert lines[2].startswith("  agent.yaml:9 models.assistant.temprature: unknown field for kind chat")
    assert len(lines) == 3


def test_local_serve_config_errors_have_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "local.yaml"
    config.write_text(
        "region: us-east-1\n"
        "endpoints:\n"
        "  - name: ok\n"
        "  - name: bad_name\n"
        "    container: tgi\n"
        "faults:\n"
        "  latency: 5\n"
        "  fail_next: [ServiceUnavailable, Bogus]\n"
    )
    code, out, err = run(capsys, "local", "serve", "--port", "0", "--config", str(config))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == "sm-llm: error: 3 problems in the configuration:"
    assert lines[1].startswith("  local.yaml:4 endpoints.1: invalid endpoint name 'bad_name'")
    assert lines[2] == "  local.yaml:7 faults.latency: unknown key"
    assert lines[3].startswith("  local.yaml:8 faults.fail_next.1: must be 'ThrottlingException', ")
    assert lines[3].endswith("'ConnectionReset' or 'TruncatedBody'")  # one message for the whole set
    assert "pydantic" not in err and "Value error" not in err


# -- issue 12 item 13 -----------------------------------------------------------------------

def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"sm-llm {sm_llm.__version__}\n"


def test_stream_json_prints_json_lines(
    local_endpoint: Any, url: str, capsys: pytest.CaptureFixture[str], sm_transport: str
) -> None:
    code, out, err = run(
        capsys, "invoke", "--stream", "--json", "--endpoint", "tgi", "--region", "us-east-1",
        "--transport", sm_transport, "a b c",
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    deltas, last = lines[:-1], lines[-1]
    assert len(deltas) >= 2 and all(list(item) == ["delta"] for item in deltas)
    assert "".join(item["delta"] for item in deltas) == last["text"] == "Echo: a b c"
    assert last["finish_reason"] == "stop" and last["usage"]["completion_tokens"] == 4
    assert local_endpoint.requests[-1].operation == "InvokeEndpointWithResponseStream"


def test_stream_json_chat_model(
    local_endpoint: Any, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], sm_transport: str
) -> None:
    config = tmp_path / "chat.yaml"
    config.write_text(
        f"kind: chat\nendpoint_name: openai\ncontent_handler: openai\nregion_name: us-east-1\ntransport: {sm_transport}\n"
    )
    code, out, err = run(capsys, "invoke", "--stream", "--json", "--config", str(config), "x y")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert "".join(item["delta"] for item in lines[:-1]) == lines[-1]["text"] == "Echo: x y"
    assert lines[-1]["model_provider"] == "amazon_sagemaker" and lines[-1]["finish_reason"] == "stop"
    assert local_endpoint.requests[-1].operation == "InvokeEndpointWithResponseStream"


def test_wrong_handler_hints_at_handler_flag(
    local_endpoint: Any, url: str, capsys: pytest.CaptureFixture[str], sm_transport: str
) -> None:
    code, out, err = run(capsys, "invoke", "--endpoint", "openai", "--region", "us-east-1", "--transport", sm_transport, "x")
    assert code == 1 and out == ""
    first, hint = err.splitlines()
    assert first.startswith("sm-llm: ModelError: ") and "(400)" in first
    assert hint == (
        "sm-llm: hint: the endpoint refused the request body; if its container does not "
        "speak this handler's format, try another --handler (see 'sm-llm handlers')"
    )
    code, _, err = run(capsys, "invoke", "--endpoint", "no-such", "--region", "us-east-1", "--transport", sm_transport, "x")
    assert code == 1 and len(err.splitlines()) == 1  # a missing endpoint is not a handler problem


def test_local_async_without_s3_names_the_flag(
    local_endpoint: Any, url: str, capsys: pytest.CaptureFixture[str], sm_transport: str
) -> None:
    code, _, err = run(
        capsys, "job", "submit", "--endpoint", "tgi", "--region", "us-east-1", "--transport", sm_transport,
        "--inline", "hi",
    )
    assert code == 1
    assert "async inference is not configured on this local endpoint: start it with " in err
    assert "sm-llm local serve --with-s3" in err


def test_local_serve_with_s3_prints_and_creates_its_bucket() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sm_llm.cli", "local", "serve", "--port", "0", "--with-s3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []

    def read() -> None:  # readline blocks: read in a thread, wait for it bounded
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while len(lines) < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(lines) == 4, lines
        assert lines[3].startswith("OpenAI route: http://127.0.0.1:")
        s3_url = lines[1].rsplit("=", 1)[1]
        assert lines[1].startswith("local S3 (moto) listening on ")
        assert lines[2].startswith("bucket sm-llm-local created: job outputs go to s3://sm-llm-local/async-output/")
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
        assert "sm-llm-local" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        process.terminate()
        process.wait(timeout=20)
        reader.join(timeout=5)
