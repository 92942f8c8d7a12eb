"""Job ledgers and notifications through real boto3: the local endpoint, a moto server
(S3, SNS, SQS) on loopback, and client processes killed with SIGKILL at each state.

Job latency is the local container's knob (custom attribute ``sm-llm-local-delay-ms``);
a failing job is a container error (TGI refuses ``temperature <= 0``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from sm_llm import SageMakerLLM
from sm_llm.async_inference import (
    AsyncInferenceConfig,
    CampaignStats,
    JobLedger,
    run_campaign,
    submit,
    wait_all,
)
from sm_llm.errors import AsyncInferenceError
from sm_llm.local import LocalEndpoint, LocalNotifications, LocalS3, S3AsyncBackend

pytest.importorskip("moto.server")


def _queued(notes: LocalNotifications) -> list[dict[str, Any]]:
    reply = notes._sqs.receive_message(QueueUrl=notes.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [json.loads(json.loads(m["Body"])["Message"]) for m in reply.get("Messages", [])]


def _remaining(notes: LocalNotifications) -> int:
    """Messages in the queue, visible or not (a received message hides for its visibility timeout)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = notes._sqs.get_queue_attributes(QueueUrl=notes.queue_url, AttributeNames=names)["Attributes"]
    return sum(int(found[name]) for name in names)


def _config(moto: LocalS3, **extra: Any) -> AsyncInferenceConfig:
    return AsyncInferenceConfig(inline_body=True, s3_endpoint_url=moto.url, poll_interval=0.05,
                                max_poll_interval=0.2, timeout=20, **extra)


def _llm(ep: LocalEndpoint, moto: LocalS3, transport: str = "botocore", **extra: Any) -> SageMakerLLM:
    return SageMakerLLM(endpoint_name="tgi", endpoint_url=ep.url, region_name="us-east-1", max_retries=0,
                        max_tokens=8, async_inference=_config(moto, **extra), transport=transport)


def _delay(ms: int) -> dict[str, str]:
    return {"custom_attributes": f"sm-llm-local-delay-ms={ms}"}


def _env(moto: LocalS3) -> dict[str, str]:
    return {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": moto.url,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


# The process-level tests (kill -9 at each state, two waiting processes, the CLI) patch
# BotocoreTransport and run once, on botocore: they are about the ledger and processes;
# InvokeEndpointAsync on each transport is test_async_inference.py's, notifications below.
_KILLER = """
import os, signal, sys
from sm_llm.cli import main
from sm_llm.engine.ledger import JobLedger
from sm_llm.transports import BotocoreTransport
stage, argv = sys.argv[1], sys.argv[2:]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
real = BotocoreTransport.invoke_async
def invoke_async(self, params, *, timeout=None):
    if stage == "submitting":
        die()
    reply = real(self, params, timeout=timeout)
    if stage == "accepted":
        die()
    return reply
BotocoreTransport.invoke_async = invoke_async
if stage == "unrecorded":
    JobLedger.finish = die
code = main(argv)
if stage == "pending":
    die()
sys.exit(code)
"""


def _cli(moto: LocalS3, *argv: str, stage: str = "none", check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", _KILLER, stage, *argv], capture_output=True, text=True,
                          env=_env(moto), timeout=90)
    if check:
        assert done.returncode == (-9 if stage != "none" else 0), done.stderr
    return done


def _submit_args(ep: LocalEndpoint, moto: LocalS3, db: Path, prompt: str, *extra: str) -> list[str]:
    return ["job", "submit", prompt, "--endpoint", "tgi", "--endpoint-url", ep.url, "--region", "us-east-1",
            "--inline", "--s3-endpoint-url", moto.url, "--max-tokens", "8", "--ledger", str(db), *extra]


def _wait_args(db: Path, *extra: str) -> list[str]:
    return ["job", "wait", "--ledger", str(db), "--timeout", "20", *extra]


def _lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("stage", ["submitting", "accepted", "pending", "unrecorded"])
def test_resume_after_kill_9(stage: str, tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3,
                             backend: S3AsyncBackend) -> None:
    db = tmp_path / "jobs.db"
    _cli(moto, *_submit_args(local_endpoint, moto, db, "warm-up"))  # teaches the ledger the output folders
    if stage == "unrecorded":  # killed in `job wait` after reading the output, before recording it
        _cli(moto, *_submit_args(local_endpoint, moto, db, "the job"))
        _cli(moto, *_wait_args(db), stage=stage)
    else:
        _cli(moto, *_submit_args(local_endpoint, moto, db, "the job"), stage=stage)
    entry = JobLedger(db).entries()[1]
    expected = {"submitting": "submitting", "accepted": "submitting", "pending": "pending", "unrecorded": "pending"}
    assert entry.state == expected[stage]
    assert backend.wait_idle(10)
    resubmit_after = "0.5" if stage == "submitting" else "60"  # a job SageMaker took is found, never resent
    done = _cli(moto, *_wait_args(db, "--resubmit-after", resubmit_after))
    results = _lines(done)
    assert [r["status"] for r in results] == ["completed", "completed"] and all(r["text"] for r in results)
    assert backend.wait_idle(10)
    assert backend.completed == 2  # each job ran exactly once
    assert JobLedger(db).entries()[1].attempts == (2 if stage == "submitting" else 1)
    # a re-run of the whole campaign sends nothing
    _cli(moto, *_submit_args(local_endpoint, moto, db, "the job"))
    assert backend.wait_idle(10) and backend.completed == 2


def test_two_processes_wait_on_one_ledger(tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3,
                                         backend: S3AsyncBackend) -> None:
    db = tmp_path / "jobs.db"
    llm = _llm(local_endpoint, moto)
    with JobLedger(db) as ledger:
        for i in range(6):
            submit(llm, f"prompt {i}", ledger=ledger, **_delay(300 + 100 * i))
    waiters = [subprocess.Popen([sys.executable, "-m", "sm_llm.cli", *_wait_args(db)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env(moto)) for _ in range(2)]
    outputs = [w.communicate(timeout=90) for w in waiters]
    assert [w.returncode for w in waiters] == [0, 0], outputs
    seen = [[json.loads(line) for line in out.splitlines()] for out, _ in outputs]
    assert seen[0] == seen[1] and len(seen[0]) == 6
    assert {r["status"] for r in seen[0]} == {"completed"}
    assert JobLedger(db).counts() == {"completed": 6}
    assert backend.completed == 6


def test_notifications_success_failure_unknown_duplicate(tmp_path: Path, local_endpoint: LocalEndpoint,
                                                        moto: LocalS3, notes: LocalNotifications,
                                                        backend: S3AsyncBackend, sm_transport: str) -> None:
    llm = _llm(local_endpoint, moto, sm_transport, notification_queue_url=notes.queue_url, notification_wait_seconds=1,
               notification_fallback_seconds=60)
    ledger = JobLedger(tmp_path / "jobs.db")
    before = _remaining(notes)
    ok = submit(llm, "fine", ledger=ledger, **_delay(200))
    submit(llm, "bad", ledger=ledger, temperature=-1.0)
    assert backend.wait_idle(10)
    # a notification for a job nobody here knows, and a duplicate of a real one (SNS envelopes)
    message = {"invocationStatus": "Completed", "inferenceId": "someone-elses", "eventSource": "aws:sagemaker",
               "responseParameters": {"outputLocation": "s3://elsewhere/x.out"}}
    notes._sns.publish(TopicArn=notes.success_topic, Message=json.dumps(message))
    notes._sns.publish(TopicArn=notes.success_topic, Message=json.dumps(
        {**message, "inferenceId": ok.inference_id, "responseParameters": {"outputLocation": ok.output_location}}))
    stats = CampaignStats()
    results = wait_all(ledger, timeout=20, stats=stats)
    assert isinstance(results[0], str) and results[0]
    assert isinstance(results[1], AsyncInferenceError) and "422" in str(results[1])
    assert stats.s3_requests == 1  # the one output read: no polling, the failure came in its message
    assert stats.notifications >= 2
    assert _remaining(notes) == before + 1  # the unknown job's message, left alone; the others deleted
    # the duplicate of a finished job, arriving later, is deleted without any S3 request
    notes._sns.publish(TopicArn=notes.success_topic, Message=json.dumps(
        {**message, "inferenceId": ok.inference_id, "responseParameters": {"outputLocation": ok.output_location}}))
    submit(llm, "third", ledger=ledger)
    again = CampaignStats()
    assert wait_all(ledger, timeout=20, stats=again)[2]
    assert again.s3_requests == 1 and _remaining(notes) == before + 1
    llm.close()


def test_falls_back_to_s3_when_notifications_stop(tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3,
                                                 notes: LocalNotifications, backend: S3AsyncBackend,
                                                 sm_transport: str) -> None:
    backend.notifications = None  # the endpoint publishes nothing
    llm = _llm(local_endpoint, moto, sm_transport, notification_queue_url=notes.queue_url, notification_wait_seconds=1,
               notification_fallback_seconds=1.5)
    ledger = JobLedger(tmp_path / "jobs.db")
    started = time.monotonic()  # the fallback counts from the job's creation, not the wait's start
    submit(llm, "quiet", ledger=ledger, **_delay(100))
    stats = CampaignStats()
    assert isinstance(wait_all(ledger, timeout=20, stats=stats)[0], str)
    assert 1.0 <= time.monotonic() - started < 8
    assert stats.notifications == 0 and stats.s3_requests == 1
    llm.close()


def test_cli_list_and_status(tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3,
                             notes: LocalNotifications, backend: S3AsyncBackend) -> None:
    db = tmp_path / "jobs.db"
    before = _remaining(notes)  # an earlier test's unknown message may still hide in the queue
    submitted = _lines(_cli(moto, *_submit_args(local_endpoint, moto, db, "listed", "--key", "doc-1",
                                                "--notification-queue-url", notes.queue_url,
                                                "--notification-wait", "1")))
    assert submitted[0]["job_id"] and submitted[0]["output_location"].endswith(submitted[0]["job_id"] + ".out")
    status = _lines(_cli(moto, "job", "status", "--ledger", str(db)))
    assert [s["status"] for s in status] == ["pending"]
    assert _lines(_cli(moto, *_wait_args(db)))[0]["status"] == "completed"
    listed = _lines(_cli(moto, "job", "list", "--ledger", str(db), "--state", "completed"))
    assert [(j["key"], j["state"]) for j in listed] == [("doc-1", "completed")]
    assert _remaining(notes) == before  # the job's notification was consumed


def test_serve_with_notifications_prints_the_queue(tmp_path: Path) -> None:
    code = "from sm_llm.local import serve; serve(port=0, with_s3=True, notifications=True)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        queue_line = next(line for line in lines if line.startswith("notifications:"))
        url = queue_line.split()[3]
        sqs = boto3.client("sqs", endpoint_url=url.rsplit("/", 2)[0], region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    finally:
        process.terminate()
        process.wait(10)


def test_run_campaign_with_notifications_and_again(tmp_path: Path, local_endpoint: LocalEndpoint, moto: LocalS3,
                                                  notes: LocalNotifications, backend: S3AsyncBackend) -> None:
    llm = _llm(local_endpoint, moto, notification_queue_url=notes.queue_url, notification_wait_seconds=1,
               notification_fallback_seconds=60)
    ledger = JobLedger(tmp_path / "jobs.db")
    keys = [f"doc-{i}" for i in range(8)]
    stats = CampaignStats()
    results = run_campaign(llm, [f"text {i}" for i in range(8)], ledger=ledger, keys=keys, concurrency=3,
                           stats=stats, **_delay(300))
    assert all(isinstance(r, str) and r for r in results), [repr(r) for r in results if not isinstance(r, str)]
    assert [e.key for e in ledger.entries_by_id([ledger.by_key(k).id for k in keys])] == keys  # type: ignore[union-attr]
    assert ledger.counts() == {"completed": 8}
    assert stats.s3_requests == 8 and stats.notifications == 8 and stats.sqs_receives >= 1
    ran = backend.completed
    again = run_campaign(llm, [f"text {i}" for i in range(8)], ledger=ledger, keys=keys, **_delay(300))
    assert again == results and backend.completed == ran  # nothing sent twice, results from the file
    llm.close()
