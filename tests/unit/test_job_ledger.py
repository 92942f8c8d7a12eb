"""The job ledger and campaigns over it, on the in-memory transport (no AWS)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from sm_llm import SageMakerLLM
from sm_llm._core.notifications import parse_notification
from sm_llm.async_inference import (
    AsyncInferenceConfig,
    CampaignStats,
    JobLedger,
    run_campaign,
    submit,
    wait_all,
)
from sm_llm.engine.jobs import InferenceJob
from sm_llm.engine.ledger import JobState, Outcome
from sm_llm.engine.ledger_wait import run_campaign as engine_run_campaign
from sm_llm.errors import (
    AsyncInferenceError,
    ConfigurationError,
    JobTimeoutError,
    RequestValidationError,
)
from sm_llm.transports import FakeTransport, S3Object

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/done"


def _llm(fake: FakeTransport, **config: object) -> SageMakerLLM:
    settings = {"inline_body": True, "poll_interval": 0.01, "max_poll_interval": 0.02, "timeout": 2.0, **config}
    return SageMakerLLM(endpoint_name="ep", transport=fake, async_inference=AsyncInferenceConfig(**settings))


def _finish(fake: FakeTransport, job_output: str, text: str) -> None:
    fake.objects[job_output] = S3Object(json.dumps({"generated_text": text}).encode(), "application/json")


def _note(inference_id: str, status: str = "Completed", output: str | None = None, envelope: bool = False) -> str:
    message: dict[str, object] = {"invocationStatus": status, "inferenceId": inference_id, "eventSource": "aws:sagemaker"}
    if output:
        message["responseParameters"] = {"contentType": "application/json", "outputLocation": output}
    if status == "Failed":
        message["failureReason"] = "ClientError: Received client error (400) from model."
    text = json.dumps(message)
    return json.dumps({"Type": "Notification", "MessageId": "m", "Message": text}) if envelope else text


def test_ledger_schema_is_versioned_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    JobLedger(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(ConfigurationError, match="schema version 99"):
        JobLedger(path)


def test_submit_records_before_invoking_and_names_the_output(tmp_path: Path) -> None:
    fake = FakeTransport()
    seen: list[str] = []
    ledger = JobLedger(tmp_path / "jobs.db")

    def responder(operation: str, params: dict[str, object]) -> dict[str, str]:
        seen.extend(e.state for e in ledger.entries())  # what the ledger held during the call
        return {"InferenceId": str(params["InferenceId"]), "OutputLocation": f"s3://b/out/{params['Filename']}"}

    fake.responder = responder
    job = submit(_llm(fake), "hello", ledger=ledger)
    assert seen == ["submitting"]
    entry = ledger.entries()[0]
    assert entry.state == "pending" and job.ledger_id == entry.id
    assert fake.calls[0].params["Filename"] == f"{entry.id}.out"
    assert entry.output_location == f"s3://b/out/{entry.id}.out"
    assert json.loads(entry.body or b"")["inputs"] == "hello"
    assert ledger.model_config(entry.model)["endpoint_name"] == "ep"


def test_the_same_request_again_is_not_submitted_twice(tmp_path: Path) -> None:
    fake = FakeTransport()
    ledger = JobLedger(tmp_path / "jobs.db")
    llm = _llm(fake)
    first = submit(llm, "hello", ledger=ledger)
    again = submit(llm, "hello", ledger=ledger)
    other = submit(llm, "hello", ledger=ledger, key="second copy")
    invokes = [c for c in fake.calls if c.operation == "InvokeEndpointAsync"]
    assert len(invokes) == 2 and again.ledger_id == first.ledger_id != other.ledger_id


def test_ledger_rejects_a_chosen_filename(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="filename is chosen by the job ledger"):
        submit(_llm(FakeTransport(), filename="x.out"), "hi", ledger=JobLedger(tmp_path / "j.db"))


def test_wait_polls_s3_and_records_results(tmp_path: Path) -> None:
    fake = FakeTransport()
    ledger = JobLedger(tmp_path / "jobs.db")
    llm = _llm(fake)
    jobs = [submit(llm, f"p{i}", ledger=ledger) for i in range(3)]
    _finish(fake, jobs[0].output_location, "zero")
    fake.objects[str(jobs[1].failure_location)] = S3Object(b"model exploded")
    results = wait_all(ledger, timeout=0.3)
    assert results[0] == "zero"
    assert isinstance(results[1], AsyncInferenceError) and "model exploded" in str(results[1])
    assert isinstance(results[2], JobTimeoutError)
    assert [e.state for e in ledger.entries()] == ["completed", "failed", "pending"]
    # a second wait (another process: a fresh ledger object) reads results from the ledger
    _finish(fake, jobs[2].output_location, "two")
    again = JobLedger(tmp_path / "jobs.db")
    again.adapters[ledger.entries()[0].model] = llm  # the fake transport, not a rebuilt client
    stats = CampaignStats()
    assert wait_all(again, stats=stats)[::2] == ["zero", "two"]
    assert stats.s3_requests == 1  # only the unfinished job was read


def test_a_ledger_alone_rebuilds_the_adapter(tmp_path: Path) -> None:
    ledger = JobLedger(tmp_path / "jobs.db")
    submit(_llm(FakeTransport()), "x", ledger=ledger)
    entry = ledger.entries()[0]
    ledger.finish(entry.id, "completed", output=b'{"generated_text": "done"}', content_type="application/json")
    fresh = JobLedger(tmp_path / "jobs.db")
    assert wait_all(fresh) == ["done"]
    assert type(fresh.adapters[entry.model]).__name__ == "SageMakerLLM"


def test_finish_is_first_writer_wins(tmp_path: Path) -> None:
    ledger = JobLedger(tmp_path / "jobs.db")
    submit(_llm(FakeTransport()), "x", ledger=ledger)
    job_id = ledger.entries()[0].id
    other = JobLedger(tmp_path / "jobs.db")
    assert other.finish(job_id, "completed", output=b"first")
    assert not ledger.finish(job_id, "failed", error="late")
    assert ledger.get(job_id).output == b"first"  # type: ignore[union-attr]


@pytest.mark.parametrize("envelope", [False, True])
def test_notifications_complete_jobs_and_are_deleted(tmp_path: Path, envelope: bool) -> None:
    fake = FakeTransport()
    llm = _llm(fake, notification_queue_url=QUEUE, notification_wait_seconds=0, notification_fallback_seconds=60)
    ledger = JobLedger(tmp_path / "jobs.db")
    ok, bad = submit(llm, "a", ledger=ledger), submit(llm, "b", ledger=ledger)
    _finish(fake, ok.output_location, "fine")
    fake.send_message(QUEUE, _note(ok.inference_id, output=ok.output_location, envelope=envelope))
    fake.send_message(QUEUE, _note(bad.inference_id, status="Failed", envelope=envelope))
    fake.send_message(QUEUE, _note(ok.inference_id, output=ok.output_location, envelope=envelope))  # duplicate
    fake.send_message(QUEUE, _note("somebody-elses-job", output="s3://b/x.out"))
    fake.send_message(QUEUE, "not json at all")
    stats = CampaignStats()
    results = wait_all(ledger, timeout=2, stats=stats)
    assert results[0] == "fine"
    assert isinstance(results[1], AsyncInferenceError) and "client error (400)" in str(results[1])
    assert stats.s3_requests == 1  # the output read; the failure came in the message
    assert [json.loads(m.body).get("inferenceId") if m.body.startswith("{") else m.body
            for m in fake.messages[QUEUE]] == ["somebody-elses-job", "not json at all"]


def test_unknown_notifications_may_be_deleted(tmp_path: Path) -> None:
    fake = FakeTransport()
    llm = _llm(fake, notification_queue_url=QUEUE, notification_wait_seconds=0, delete_unknown_notifications=True)
    ledger = JobLedger(tmp_path / "jobs.db")
    job = submit(llm, "a", ledger=ledger)
    fake.send_message(QUEUE, _note("unknown"))
    _finish(fake, job.output_location, "x")
    fake.send_message(QUEUE, _note(job.inference_id, output=job.output_location))
    assert wait_all(ledger, timeout=2) == ["x"]
    assert fake.messages[QUEUE] == []


def test_silent_queue_falls_back_to_s3(tmp_path: Path) -> None:
    fake = FakeTransport()
    llm = _llm(fake, notification_queue_url=QUEUE, notification_wait_seconds=0, notification_fallback_seconds=0.3)
    ledger = JobLedger(tmp_path / "jobs.db")
    job = submit(llm, "a", ledger=ledger)
    _finish(fake, job.output_location, "found in S3")
    assert wait_all(ledger, timeout=3) == ["found in S3"]
    assert any(c.operation == "sqs:receive" for c in fake.calls)


def test_submitting_job_found_in_s3_is_not_resubmitted(tmp_path: Path) -> None:
    fake = FakeTransport(responder=lambda op, p: {"InferenceId": p["InferenceId"], "OutputLocation": f"s3://b/o/{p['Filename']}",
                                                  "FailureLocation": f"s3://b/f/{str(p['Filename']).split('.')[0]}-error.out"})
    ledger = JobLedger(tmp_path / "jobs.db", resubmit_after=0)
    llm = _llm(fake)
    submit(llm, "first", ledger=ledger)  # teaches the ledger the output folders
    crash = {"now": True}

    def dying(op: str, p: dict[str, object]) -> dict[str, str]:
        if crash["now"]:
            raise KeyboardInterrupt  # the process dies during InvokeEndpointAsync
        return {"InferenceId": str(p["InferenceId"]), "OutputLocation": f"s3://b/o/{p['Filename']}"}

    fake.responder = dying
    with pytest.raises(KeyboardInterrupt):
        submit(llm, "second", ledger=ledger)
    entry = ledger.entries()[1]
    assert entry.state == "submitting" and entry.output_location == f"s3://b/o/{entry.id}.out"
    _finish(fake, ledger.entries()[0].output_location or "", "one")
    _finish(fake, entry.output_location, "accepted before the crash")
    crash["now"] = False
    assert wait_all(ledger, timeout=2) == ["one", "accepted before the crash"]
    assert sum(c.operation == "InvokeEndpointAsync" for c in fake.calls) == 2


def test_submitting_job_with_nothing_in_s3_is_resubmitted_once(tmp_path: Path) -> None:
    fake = FakeTransport()
    ledger = JobLedger(tmp_path / "jobs.db", resubmit_after=0)
    llm = _llm(fake)
    fake.fail(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        submit(llm, "lost", ledger=ledger)
    stats = CampaignStats()
    assert isinstance(wait_all(ledger, timeout=0.3, stats=stats)[0], JobTimeoutError)
    assert stats.resubmits == 1
    invokes = [c for c in fake.calls if c.operation == "InvokeEndpointAsync"]
    assert len(invokes) == 2 and invokes[0].params == invokes[1].params
    assert ledger.entries()[0].state == "pending" and ledger.entries()[0].attempts == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"invocationStatus":"Completed","inferenceId":"a","responseParameters":{"outputLocation":"s3://b/k"}}', ("a", "completed", "s3://b/k")),
        ('{"Type":"Notification","Message":"{\\"invocationStatus\\":\\"Failed\\",\\"inferenceId\\":\\"b\\"}"}', ("b", "failed", None)),
        ('{"invocationStatus":"Running","inferenceId":"c"}', None),
        ('{"Type":"Notification","Message":"not json"}', None),
        ("[1, 2]", None),
    ],
)
def test_parse_notification(body: str, expected: tuple[str, str, str | None] | None) -> None:
    note = parse_notification(body)
    assert (None if note is None else (note.inference_id, note.status, note.output_location)) == expected


def test_ledger_keeps_no_secrets_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    llm = SageMakerLLM(endpoint_name="ep", transport=FakeTransport(), aws_access_key_id="AKIAEXAMPLE",
                       aws_secret_access_key="very-secret", async_inference=AsyncInferenceConfig(inline_body=True))
    with JobLedger(path) as ledger:
        submit(llm, "hi", ledger=ledger)
    assert path.stat().st_mode & 0o777 == 0o600
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"very-secret" not in data and b"AKIAEXAMPLE" not in data


def test_states_of_given_jobs_only_in_chunks(tmp_path: Path) -> None:
    """A window's refresh asks for its own jobs (more than one ``IN (...)`` chunk here), not
    every job of a large ledger."""
    ledger = JobLedger(tmp_path / "jobs.db")
    model = ledger.model_id({"endpoint_name": "ep"})
    for i in range(1100):
        ledger.add(job_id=f"j{i}", key=f"k{i}", model=model, endpoint="ep", params={}, body=None, stop=None,
                   config={}, inference_id=f"i{i}", input_location=None)
    ledger.finish("j1050", "completed", output=b"x")
    wanted = [f"j{i}" for i in range(0, 1100, 2)] + ["nope"]
    states = ledger.states(wanted)
    assert set(states) == set(wanted) - {"nope"} and states["j1050"] == "completed"
    assert len(ledger.states()) == 1100


def test_finish_many_writes_a_batch_first_writer_wins(tmp_path: Path) -> None:
    ledger = JobLedger(tmp_path / "jobs.db")
    llm = _llm(FakeTransport())
    first, second = submit(llm, "a", ledger=ledger), submit(llm, "b", ledger=ledger)
    assert JobLedger(tmp_path / "jobs.db").finish(first.ledger_id or "", "failed", error="elsewhere")
    done = ledger.finish_many([Outcome(first.ledger_id or "", "completed", output=b"late"),
                               Outcome(second.ledger_id or "", "completed", output=b"mine", content_type="text/plain")])
    assert done == [False, True]
    entries = ledger.entries_by_id([second.ledger_id or "", "unknown", first.ledger_id or ""])
    assert [(e.state, e.output, e.error) for e in entries] == [("completed", b"mine", None), ("failed", None, "elsewhere")]
    with pytest.raises(ValueError, match="final state"):
        ledger.finish_many([Outcome(second.ledger_id or "", "pending")])


def test_model_id_is_remembered_without_a_write(tmp_path: Path) -> None:
    """Submitting does not take the write lock just to look up the model configuration
    again (one write transaction less per job)."""
    ledger = JobLedger(tmp_path / "jobs.db")
    model = ledger.model_id({"endpoint_name": "ep"})
    other = sqlite3.connect(tmp_path / "jobs.db", timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    found: list[int] = []
    looker = threading.Thread(target=lambda: found.append(ledger.model_id({"endpoint_name": "ep"})), daemon=True)
    looker.start()
    looker.join(2)
    answered_under_the_lock = list(found)
    other.execute("ROLLBACK")
    looker.join(70)
    assert answered_under_the_lock == [model]


def test_run_campaign_reads_notifications_while_submitting(tmp_path: Path) -> None:
    fake = FakeTransport()
    llm = _llm(fake, notification_queue_url=QUEUE, notification_wait_seconds=0, notification_fallback_seconds=60,
               timeout=10)
    ledger = JobLedger(tmp_path / "jobs.db")
    finished_before_last: list[int] = []

    def responder(operation: str, params: dict[str, object]) -> dict[str, str]:
        body = json.loads(bytes(params["Body"]))  # type: ignore[arg-type]
        if body["inputs"] == "refused":
            raise RequestValidationError("the endpoint refused it")
        output = f"s3://b/out/{params['Filename']}"
        if body["inputs"] == "last":  # the earlier jobs were read while this one was being sent
            deadline = time.monotonic() + 5
            while ledger.counts().get("completed", 0) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            finished_before_last.append(ledger.counts().get("completed", 0))
        _finish(fake, output, f"done {body['inputs']}")
        fake.send_message(QUEUE, _note(str(params["InferenceId"]), output=output))
        return {"InferenceId": str(params["InferenceId"]), "OutputLocation": output}

    fake.responder = responder
    stats = CampaignStats()
    inputs = ["a", "b", "refused", "c", "last"]
    results = run_campaign(llm, inputs, ledger=ledger, concurrency=1, stats=stats)
    assert finished_before_last == [3]
    assert results[:2] == ["done a", "done b"] and results[3:] == ["done c", "done last"]
    assert isinstance(results[2], RequestValidationError)
    assert stats.s3_requests == 4 and stats.completed_here == 4
    assert len(ledger) == 4 and fake.messages[QUEUE] == []
    # the same campaign again (a re-run after a crash): nothing is sent twice
    invokes = sum(c.operation == "InvokeEndpointAsync" for c in fake.calls)
    again = run_campaign(llm, inputs, ledger=ledger, concurrency=3)
    assert again[:2] == results[:2] and again[3:] == results[3:]
    assert sum(c.operation == "InvokeEndpointAsync" for c in fake.calls) == invokes + 1  # only the refused one


def test_run_campaign_needs_one_key_per_input(tmp_path: Path) -> None:
    ledger = JobLedger(tmp_path / "jobs.db")
    with pytest.raises(ConfigurationError, match="one key per input"):
        run_campaign(_llm(FakeTransport()), ["a", "b"], ledger=ledger, keys=["k"])
    with pytest.raises(ConfigurationError, match="concurrency"):
        run_campaign(_llm(FakeTransport()), ["a"], ledger=ledger, concurrency=0)


def test_run_campaign_adopts_jobs_submitted_during_the_last_round(tmp_path: Path) -> None:
    """The last submission lands after the waiter's last look at the ledger and the
    campaign ends during its pause: the waiter still adopts and waits for that job."""
    looked = threading.Event()

    class Watched(JobLedger):
        def states(self) -> dict[str, JobState]:
            found = super().states()
            looked.set()
            return found

    ledger = Watched(tmp_path / "jobs.db")
    fake = FakeTransport()
    llm = _llm(fake, notification_queue_url=QUEUE, notification_wait_seconds=0, notification_fallback_seconds=60,
               timeout=5)

    def one(i: int) -> InferenceJob:
        looked.wait(5)  # the waiter has just read the ledger (nothing yet) and pauses
        job = submit(llm, "late", ledger=ledger)
        _finish(fake, job.output_location, "late done")
        fake.send_message(QUEUE, _note(job.inference_id, output=job.output_location))
        return job

    assert engine_run_campaign(one, 1, ledger, lambda _model: llm, concurrency=1) == ["late done"]
    assert ledger.counts() == {"completed": 1}
