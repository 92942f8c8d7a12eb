"""``sm-llm batch --async-inference`` and ``run_batch(..., async_inference=True)`` through real
boto3: the local endpoint's asynchronous jobs, a moto server (S3, SNS, SQS) on loopback, the
CLI killed with SIGKILL mid-run.

Job latency is the local container's knob (custom attribute ``sm-llm-local-delay-ms``); a
failing job is a container error (TGI refuses ``temperature <= 0``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm.async_inference import AsyncInferenceConfig, JobLedger
from sm_llm.batch import arun_batch, default_ledger, run_batch
from sm_llm.errors import ConfigurationError
from sm_llm.local import LocalEndpoint, LocalNotifications, LocalS3, S3AsyncBackend

pytest.importorskip("moto.server")


def _config(moto: LocalS3, **extra: Any) -> AsyncInferenceConfig:
    settings = {"inline_body": True, "s3_endpoint_url": moto.url, "poll_interval": 0.05, "max_poll_interval": 0.2,
                "timeout": 30, **extra}
    return AsyncInferenceConfig(**settings)


def _llm(ep: LocalEndpoint, moto: LocalS3, **extra: Any) -> SageMakerLLM:
    return SageMakerLLM(endpoint_name="tgi", endpoint_url=ep.url, region_name="us-east-1", max_retries=0,
                        max_tokens=8, async_inference=_config(moto, **extra))


def _delay(ms: int) -> str:
    return f"sm-llm-local-delay-ms={ms}"


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _env(moto: LocalS3) -> dict[str, str]:
    return {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": moto.url,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _cli_args(ep: LocalEndpoint, moto: LocalS3, source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sm_llm.cli", "batch", str(source), "--out", str(out), "--endpoint", "tgi",
            "--endpoint-url", ep.url, "--region", "us-east-1", "--max-tokens", "8", "--async-inference",
            "--inline", "--s3-endpoint-url", moto.url, "--no-progress", *extra]


def test_same_lines_as_real_time_errors_and_no_job_sent_twice(
    tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3, backend: S3AsyncBackend
) -> None:
    records = [
        {"id": "a", "prompt": "one two three"},
        {"id": 2, "prompt": "one two three", "max_tokens": 2},
        {"id": "m", "messages": [{"role": "user", "content": "hi from messages"}]},
        {"id": "stop", "prompt": "a b c. d e", "stop": ["."]},
        {"id": "bad", "prompt": "x", "temperature": -1.0},  # the job fails: its failure object
        {"id": "kwarg", "prompt": "x", "not_a_parameter": 1},  # refused before anything is sent
    ]
    source, out = _write(tmp_path / "in.jsonl", records), tmp_path / "out.jsonl"
    llm = _llm(local_endpoint, moto)
    report = run_batch(llm, source, out, async_inference=True, concurrency=3, progress=False)
    lines = {line["id"]: line for line in _lines(out)}
    assert set(lines) == {"a", 2, "m", "stop", "bad", "kwarg"}
    assert (report.done, report.failed, report.skipped) == (4, 2, 0)
    # the output lines of real-time calls, but for the metadata of the request
    real_time = SageMakerLLM(endpoint_name="tgi", endpoint_url=local_endpoint.url, region_name="us-east-1",
                             max_tokens=8)
    run_batch(real_time, records, tmp_path / "sync.jsonl", progress=False)
    sync = {line["id"]: line for line in _lines(tmp_path / "sync.jsonl")}
    for key in ("a", 2, "m", "stop"):
        assert set(lines[key]) == {"id", "output", "usage", "finish_reason", "metadata"}
        assert {k: lines[key][k] for k in ("output", "usage", "finish_reason")} == {
            k: sync[key][k] for k in ("output", "usage", "finish_reason")}
    assert lines["a"]["output"] == "Echo: one two three" and lines[2]["finish_reason"] == "length"
    assert lines["stop"]["output"] == "Echo: a b c" and lines["stop"]["finish_reason"] == "stop"
    assert lines["a"]["metadata"]["output_location"].endswith(".out")
    assert report.tokens_out == sum(lines[k]["usage"]["output_tokens"] for k in ("a", 2, "m", "stop"))
    assert lines["bad"]["error"]["type"] == "AsyncInferenceError" and "422" in lines["bad"]["error"]["message"]
    assert lines["bad"]["error"]["retryable"] is False
    assert lines["kwarg"]["error"]["type"] == "ConfigurationError"
    assert "not_a_parameter" in lines["kwarg"]["error"]["message"]
    assert (backend.completed, backend.failed) == (4, 1)
    ledger = JobLedger(default_ledger(out))
    assert ledger.counts() == {"completed": 4, "failed": 1}
    assert all(entry.key.startswith("batch:") for entry in ledger.entries())
    # a rerun skips every id; with the output lost, the ledger answers: no job runs twice
    again = run_batch(llm, source, out, async_inference=True, progress=False)
    assert (again.done, again.failed, again.skipped) == (0, 0, 6)
    out.unlink()
    rebuilt = run_batch(llm, source, out, async_inference=True, progress=False)
    assert (rebuilt.done, rebuilt.failed) == (4, 2)
    assert {line["id"]: line["output"] for line in _lines(out) if "output" in line} == {
        k: lines[k]["output"] for k in ("a", 2, "m", "stop")}
    assert backend.wait_idle(10) and (backend.completed, backend.failed) == (4, 1)
    # --no-resume: a fresh output and a fresh default ledger, so every job runs again
    fresh = run_batch(llm, source, out, async_inference=True, resume=False, progress=False)
    assert fresh.done == 4 and backend.wait_idle(10) and backend.completed == 8
    llm.close()


def test_window_bounds_outstanding_jobs_and_chat_models(
    tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3, backend: S3AsyncBackend
) -> None:
    peak, done, out = 0, threading.Event(), tmp_path / "out.jsonl"
    ledger = JobLedger(tmp_path / "mine.db")

    def sample() -> None:  # jobs recorded (counted first) minus lines written: the jobs outstanding
        nonlocal peak
        while not done.is_set():
            recorded = len(ledger)
            peak = max(peak, recorded - (out.read_bytes().count(b"\n") if out.exists() else 0))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    records = [{"id": i, "prompt": f"p{i}", "custom_attributes": _delay(150)} for i in range(12)]
    try:
        report = run_batch(_llm(local_endpoint, moto), records, out, async_inference=True,
                           concurrency=3, ledger=tmp_path / "mine.db", progress=False)
    finally:
        done.set()
        sampler.join()
    assert report.done == 12 and peak == 3
    assert len(JobLedger(tmp_path / "mine.db")) == 12 and not default_ledger(tmp_path / "out.jsonl").exists()
    chat = ChatSageMaker(endpoint_name="openai", endpoint_url=local_endpoint.url, region_name="us-east-1",
                         async_inference=_config(moto))

    async def main() -> Any:  # arun_batch on a running loop
        return await arun_batch(chat, [{"id": 1, "messages": [{"role": "user", "content": "hi"}]}],
                                tmp_path / "chat.jsonl", async_inference=True, progress=False)

    assert asyncio.run(main()).done == 1
    (line,) = _lines(tmp_path / "chat.jsonl")
    assert line["output"] == "Echo: hi" and line["usage"] == {"input_tokens": 1, "output_tokens": 2}
    assert line["metadata"]["model_name"] == "local-echo"


def test_notifications_complete_the_window(
    tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3, notes: LocalNotifications,
    backend: S3AsyncBackend
) -> None:
    llm = _llm(local_endpoint, moto, notification_queue_url=notes.queue_url, notification_wait_seconds=1,
               notification_fallback_seconds=60)  # S3 polling would take a minute
    records = [{"id": i, "prompt": f"p{i}", "custom_attributes": _delay(100)} for i in range(8)]
    records.append({"id": "bad", "prompt": "x", "temperature": -1.0})
    started = time.monotonic()
    report = run_batch(llm, records, tmp_path / "out.jsonl", async_inference=True, concurrency=4, progress=False)
    assert (report.done, report.failed) == (8, 1) and time.monotonic() - started < 20
    assert {line["id"] for line in _lines(tmp_path / "out.jsonl")} == {*range(8), "bad"}
    llm.close()


def test_max_errors_stops_submitting(
    tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3, backend: S3AsyncBackend
) -> None:
    records = [{"id": i, "prompt": "x", "temperature": -1.0} for i in range(30)]
    report = run_batch(_llm(local_endpoint, moto), records, tmp_path / "out.jsonl", async_inference=True,
                       concurrency=2, max_errors=3, progress=False)
    assert report.stopped and 3 <= report.failed <= 3 + 2  # the jobs outstanding are still written
    assert len(JobLedger(default_ledger(tmp_path / "out.jsonl"))) == report.failed


@pytest.mark.serial  # the quick job must finish within the timeout: not on a loaded machine
def test_a_job_past_its_timeout_is_an_error_line_and_stays_in_the_ledger(
    tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3, backend: S3AsyncBackend
) -> None:
    llm, out = _llm(local_endpoint, moto, timeout=2.0), tmp_path / "out.jsonl"
    records = [{"id": "slow", "prompt": "s", "custom_attributes": _delay(6000)}, {"id": "quick", "prompt": "q"}]
    report = run_batch(llm, records, out, async_inference=True, progress=False)
    lines = {line["id"]: line for line in _lines(out)}
    assert (report.done, report.failed) == (1, 1) and lines["slow"]["error"]["type"] == "JobTimeoutError"
    assert backend.wait_idle(15)
    out.write_text(json.dumps(lines["quick"]) + "\n", encoding="utf-8")  # drop the error line: retry it
    again = run_batch(llm, records, out, async_inference=True, progress=False)
    assert (again.done, again.skipped) == (1, 1) and _lines(out)[-1]["output"] == "Echo: s"
    assert backend.completed == 2  # its result was picked up, not run again


def test_cli_kill_9_mid_run_then_rerun(
    tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3, backend: S3AsyncBackend
) -> None:
    """A ``kill -9`` of the CLI mid-run, then the same command: every id once in the output,
    and no job ran twice on the endpoint (the ledger holds what was submitted)."""
    total = 40
    source = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": f"record {i}", "custom_attributes": _delay(80)}
                                            for i in range(total)])
    out = tmp_path / "out.jsonl"
    config = tmp_path / "model.yaml"  # the model's own async_inference config, polled often
    config.write_text(
        f"kind: llm\nendpoint_name: tgi\nendpoint_url: {local_endpoint.url}\nregion_name: us-east-1\n"
        f"max_tokens: 8\nasync_inference:\n  inline_body: true\n  s3_endpoint_url: {moto.url}\n"
        "  poll_interval: 0.05\n  max_poll_interval: 0.2\n", encoding="utf-8")
    args = [sys.executable, "-m", "sm_llm.cli", "batch", str(source), "--out", str(out), "--config", str(config),
            "--async-inference", "--concurrency", "4", "--resubmit-after", "1", "--no-progress"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(moto))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 10):
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    written_before = out.read_bytes().count(b"\n")
    assert 10 <= written_before < total
    assert backend.wait_idle(10)
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=_env(moto))
    assert result.returncode == 0, result.stderr
    assert f"0 failed, {written_before} skipped" in result.stderr and "Traceback" not in result.stderr
    ids = Counter(line["id"] for line in _lines(out))
    assert sorted(ids) == list(range(total)) and set(ids.values()) == {1}
    assert backend.wait_idle(10) and backend.completed == total  # each job ran exactly once
    assert JobLedger(default_ledger(out)).counts() == {"completed": total}


def test_cli_refusals(tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3) -> None:
    source = _write(tmp_path / "in.jsonl", [{"id": 1, "prompt": "a"}])
    out = tmp_path / "out.jsonl"
    plain = [a for a in _cli_args(local_endpoint, moto, source, out) if a not in ("--async-inference", "--inline")]
    plain.remove("--s3-endpoint-url")
    plain.remove(moto.url)
    for extra, problem in (
        (["--ledger", "x.db"], "--ledger go with --async-inference"),
        (["--async-inference"], "needs the model's async_inference config"),
    ):
        done = subprocess.run([*plain, *extra], capture_output=True, text=True, timeout=60, env=_env(moto))
        assert done.returncode == 2 and problem in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert local_endpoint.requests == [] and not out.exists()
    with pytest.raises(ConfigurationError, match="ledger is for async_inference=True"):
        run_batch(_llm(local_endpoint, moto), source, out, ledger=tmp_path / "j.db")
