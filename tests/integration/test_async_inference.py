"""Asynchronous inference jobs through real boto3: LocalEndpoint (202 + background jobs)
and a moto S3 server on loopback, both started here. No mocks.

Job latency is the local container's knob: custom attribute ``sm-llm-local-delay-ms=N``.
A failing job is a container error (TGI refuses ``temperature <= 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sm_llm import SageMakerLLM
from sm_llm import errors as e
from sm_llm._cli_jobs import add_job_parser, run_job_command
from sm_llm.async_inference import (
    AsyncInferenceConfig,
    InferenceJob,
    asubmit,
    await_all,
    close_s3_clients,
    submit,
    wait_all,
)
from sm_llm.local import LocalEndpoint, LocalS3, S3AsyncBackend

pytestmark = pytest.mark.serial  # wall-clock and in-flight assertions: run alone, after the parallel run

INPUTS = "sm-llm-inputs"
FAILING = {"temperature": -1.0}  # the TGI container answers 422 → a failure object


def _s3(llm: Any, cfg: Any) -> Any:
    """The S3 client async inference uses for ``cfg`` (it belongs to the adapter's transport)."""
    return llm.engine.transport.s3_client(cfg.s3_endpoint_url)


def delay(ms: int) -> dict[str, str]:
    return {"custom_attributes": f"sm-llm-local-delay-ms={ms}"}


@pytest.fixture(scope="module")
def s3_server() -> Iterator[LocalS3]:
    with LocalS3() as server:
        yield server


@pytest.fixture(scope="module")
def s3(s3_server: LocalS3) -> Any:
    client = boto3.client(
        "s3", endpoint_url=s3_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=INPUTS)
    return client


@pytest.fixture(scope="module")
def backend(s3_server: LocalS3) -> Iterator[S3AsyncBackend]:
    with S3AsyncBackend(s3_server.url) as running:
        yield running


@pytest.fixture
def aep(local_endpoint: LocalEndpoint, backend: S3AsyncBackend, s3: Any) -> Iterator[LocalEndpoint]:
    """The shared local endpoint serving async jobs (jobs left running are dropped after)."""
    local_endpoint.async_backend = backend
    yield local_endpoint
    backend.close()
    local_endpoint.async_backend = None


@pytest.fixture
def cfg(s3_server: LocalS3) -> AsyncInferenceConfig:
    return AsyncInferenceConfig(
        input_s3_uri=f"s3://{INPUTS}/in/", s3_endpoint_url=s3_server.url,
        poll_interval=0.05, max_poll_interval=0.2, timeout=10,
    )


@pytest.fixture(scope="module")
def shared_llm(local_endpoint_session: LocalEndpoint, sm_transport: str) -> Iterator[SageMakerLLM]:
    """One adapter for the module: its clients are made once (that takes ~0.1 s each)."""
    llm = SageMakerLLM(
        endpoint_name="tgi", endpoint_url=local_endpoint_session.url, region_name="us-east-1", max_retries=0,
        transport=sm_transport,
    )
    yield llm
    close_s3_clients(llm)
    llm.close()


@pytest.fixture
def llm(aep: LocalEndpoint, shared_llm: SageMakerLLM) -> SageMakerLLM:
    return shared_llm


def _keys(s3: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=INPUTS, Prefix=prefix).get("Contents", [])]


# -- submit / result ------------------------------------------------------------------------

def test_submit_uploads_input_and_result_matches_invoke(llm: Any, aep: LocalEndpoint, cfg: Any, s3: Any) -> None:
    job = submit(llm, "hello async world", config=cfg)
    assert job.input_location is not None and job.input_location.startswith(f"s3://{INPUTS}/in/")
    assert job.input_location.endswith(".json")
    uploaded = s3.get_object(Bucket=INPUTS, Key=job.input_location.split("/", 3)[3])
    assert json.loads(uploaded["Body"].read())["inputs"] == "hello async world"
    assert uploaded["ContentType"] == "application/json"
    assert job.output_location.startswith("s3://sm-llm-local/async-output/")
    assert job.output_location.endswith(".out")
    assert job.failure_location and job.failure_location.endswith("-error.out")
    assert job.submitted_at.tzinfo is not None
    assert job.result() == llm.invoke("hello async world") == "Echo: hello async world"
    request = aep.requests[0]
    assert request.operation == "InvokeEndpointAsync" and request.status == 202
    assert request.body == b""
    assert request.headers["x-amzn-sagemaker-inputlocation"] == job.input_location
    assert request.headers["x-amzn-sagemaker-inference-id"] == job.inference_id
    assert request.headers["x-amzn-sagemaker-content-type"] == "application/json"


def test_generation_carries_metadata(llm: Any, cfg: Any) -> None:
    job = submit(llm, "a b c", config=cfg)
    generation = job.generation()
    assert generation.text == "Echo: a b c"
    info = generation.generation_info
    assert info["inference_id"] == job.inference_id
    assert info["output_location"] == job.output_location
    assert info["finish_reason"]
    assert job.result() == "Echo: a b c"  # kept: no second download


def test_inline_body(llm: Any, aep: LocalEndpoint, cfg: Any, s3: Any) -> None:
    before = _keys(s3, "in/")
    job = submit(llm, "small inline prompt", config=cfg.model_copy(update={"inline_body": True}))
    assert job.input_location is None
    assert job.result() == "Echo: small inline prompt"
    request = aep.requests[0]
    assert "x-amzn-sagemaker-inputlocation" not in request.headers
    assert json.loads(request.body)["inputs"] == "small inline prompt"
    assert _keys(s3, "in/") == before


def test_inline_body_too_large_goes_to_s3_when_it_can(llm: Any, aep: LocalEndpoint, cfg: Any) -> None:
    prompt = " ".join(f"w{i}" for i in range(30_000))  # ~200 kB of body
    job = submit(llm, prompt, config=cfg.model_copy(update={"inline_body": True}), max_tokens=3)
    assert job.input_location is not None
    assert aep.requests[0].body == b""
    assert job.result() == "Echo: w0 w1"


def test_request_options_reach_the_service(llm: Any, aep: LocalEndpoint, cfg: Any) -> None:
    config = cfg.model_copy(update={
        "request_ttl_seconds": 120, "invocation_timeout_seconds": 30,
        "s3_output_path_extension": "team-a/run1", "filename": "answer.json",
    })
    job = submit(llm, "with options", config=config, custom_attributes={"trace": "t1"}, inference_id="my-id-1")
    assert job.inference_id == "my-id-1"
    assert job.output_location == "s3://sm-llm-local/async-output/team-a/run1/answer.json"
    headers = aep.requests[0].headers
    assert headers["x-amzn-sagemaker-requestttlseconds"] == "120"
    assert headers["x-amzn-sagemaker-invocationtimeoutseconds"] == "30"
    assert headers["x-amzn-sagemaker-custom-attributes"] == "trace=t1"
    assert headers["x-amzn-sagemaker-inference-id"] == "my-id-1"
    assert job.result() == "Echo: with options"


def test_retried_submission_reuses_the_inference_id(
    aep: LocalEndpoint, make_llm: Callable[..., Any], fault: Any, cfg: Any
) -> None:
    aep.faults = fault(fail_next=["ServiceUnavailable"])
    job = submit(make_llm("tgi", max_retries=1), "retry me", config=cfg)
    ids = [r.headers["x-amzn-sagemaker-inference-id"] for r in aep.requests]
    assert [r.status for r in aep.requests] == [503, 202]
    assert ids == [job.inference_id, job.inference_id]
    assert job.result() == "Echo: retry me"


def test_stop_sequences_apply_to_the_output(llm: Any, cfg: Any) -> None:
    job = submit(llm, "one two STOP three", config=cfg, stop=["STOP"])
    assert job.result() == "Echo: one two "


async def test_async_twins(llm: Any, cfg: Any) -> None:
    job = await asubmit(llm, "async twin", config=cfg, **delay(100))
    assert await job.astatus() == "pending"
    assert await job.aresult() == "Echo: async twin"
    assert await job.astatus() == "completed"
    generation = await job.ageneration()
    assert generation.text == "Echo: async twin"


def test_chat_model_jobs(aep: LocalEndpoint, cfg: Any, sm_transport: str) -> None:
    try:
        from sm_llm.chat_models import ChatSageMaker
    except ImportError as exc:  # pragma: no cover - depends on the chat adapter being present
        pytest.skip(f"sm_llm.chat_models is not importable yet: {exc}")
    from langchain_core.messages import AIMessage

    chat = ChatSageMaker(endpoint_name="openai", endpoint_url=aep.url, region_name="us-east-1", max_retries=0,
                         transport=sm_transport)
    message = submit(chat, [("system", "be brief"), ("human", "hello chat job")], config=cfg).result()
    assert isinstance(message, AIMessage)
    assert message.content == chat.invoke([("system", "be brief"), ("human", "hello chat job")]).content
    assert message.response_metadata["finish_reason"]


# -- status, failures, deadlines ------------------------------------------------------------

def test_status_goes_from_pending_to_completed(llm: Any, cfg: Any) -> None:
    job = submit(llm, "slowish", config=cfg, **delay(400))
    assert job.status() == "pending"
    assert job.result() == "Echo: slowish"
    assert job.status() == "completed"


def test_failure_object_raises_async_inference_error(llm: Any, cfg: Any) -> None:
    job = submit(llm, "this fails", config=cfg, **FAILING)
    with pytest.raises(e.AsyncInferenceError) as info:
        job.result()
    error = info.value
    assert error.job is job
    assert "temperature" in error.failure and "Received client error (422)" in error.failure
    assert job.inference_id in str(error) and "temperature" in str(error)
    assert job.status() == "failed"
    with pytest.raises(e.AsyncInferenceError):
        job.generation()  # the outcome is kept
    fresh = InferenceJob.from_dict(job.to_dict(), llm=llm, config=cfg)
    assert fresh.status() == "failed"


def test_failure_content_is_bounded(llm: Any, cfg: Any, s3: Any) -> None:
    s3.put_object(Bucket=INPUTS, Key="fail/big-error.out", Body=b"x" * 200_000)
    s3.put_object(Bucket=INPUTS, Key="fail/empty-error.out", Body=b"")
    saved = {
        "inference_id": "manual", "endpoint_name": "tgi", "submitted_at": "2026-01-01T00:00:00+00:00",
        "output_location": f"s3://{INPUTS}/fail/none.out",
    }
    big = InferenceJob.from_dict({**saved, "failure_location": f"s3://{INPUTS}/fail/big-error.out"}, llm=llm, config=cfg)
    with pytest.raises(e.AsyncInferenceError) as info:
        big.result(timeout=2)
    assert len(info.value.failure) == 64 * 1024
    assert len(str(info.value)) < 1000
    empty = InferenceJob.from_dict({**saved, "failure_location": f"s3://{INPUTS}/fail/empty-error.out"}, llm=llm, config=cfg)
    with pytest.raises(e.AsyncInferenceError, match="empty failure object") as info:
        empty.result(timeout=2)
    assert info.value.failure == ""


def test_job_that_never_finishes_times_out_at_its_deadline(llm: Any, cfg: Any) -> None:
    job = submit(llm, "never", config=cfg, **delay(60_000))
    start = time.monotonic()
    with pytest.raises(e.JobTimeoutError) as info:
        job.result(timeout=1)
    took = time.monotonic() - start
    assert 0.9 <= took < 2.0
    assert info.value.job is job
    assert "within 1 s" in str(info.value) and "from_dict" in str(info.value)
    assert info.value.is_retryable is False
    assert job.status() == "pending"


async def test_async_wait_times_out_too(llm: Any, cfg: Any) -> None:
    job = submit(llm, "never", config=cfg.model_copy(update={"timeout": 0.5}), **delay(60_000))
    start = time.monotonic()
    with pytest.raises(e.JobTimeoutError):
        await job.aresult()
    assert time.monotonic() - start < 1.5


def test_invocation_timeout_becomes_a_failure(llm: Any, cfg: Any) -> None:
    config = cfg.model_copy(update={"invocation_timeout_seconds": 1})
    job = submit(llm, "too slow", config=config, **delay(5_000))
    start = time.monotonic()
    with pytest.raises(e.AsyncInferenceError, match="timed out after 1 seconds"):
        job.result(timeout=5)
    assert time.monotonic() - start < 3


def test_missing_input_object_becomes_a_failure(aep: LocalEndpoint, runtime_client: Any, llm: Any, cfg: Any) -> None:
    response = runtime_client.invoke_endpoint_async(
        EndpointName="tgi", InputLocation=f"s3://{INPUTS}/in/does-not-exist.json", ContentType="application/json"
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    saved = {
        "inference_id": response["InferenceId"], "endpoint_name": "tgi",
        "output_location": response["OutputLocation"], "failure_location": response["FailureLocation"],
        "submitted_at": "2026-01-01T00:00:00+00:00",
    }
    with pytest.raises(e.AsyncInferenceError, match="Failed to download the input data"):
        InferenceJob.from_dict(saved, llm=llm, config=cfg).result(timeout=5)


# -- resuming -------------------------------------------------------------------------------

def test_resumed_job_in_a_fresh_adapter_returns_the_same_result(
    llm: Any, cfg: Any, make_llm: Callable[..., Any]
) -> None:
    job = submit(llm, "resume me STOP please", config=cfg, stop=["STOP"], **delay(300))
    saved = json.loads(json.dumps(job.to_dict()))
    fresh_llm = make_llm("tgi")
    resumed = InferenceJob.from_dict(saved, llm=fresh_llm, config=cfg)
    assert resumed.adapter is fresh_llm
    assert resumed.inference_id == job.inference_id
    assert resumed.result() == job.result() == "Echo: resume me "
    fresh_llm.close()


def test_s3_endpoint_from_the_environment(
    llm: Any, cfg: Any, s3_server: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.url)
    config = cfg.model_copy(update={"s3_endpoint_url": None})
    assert submit(llm, "env endpoint", config=config).result() == "Echo: env endpoint"


# -- many jobs --------------------------------------------------------------------------------

def test_wait_all_fifty_jobs_in_order(llm: Any, cfg: Any, capsys: pytest.CaptureFixture[str]) -> None:
    inline = cfg.model_copy(update={"inline_body": True})
    jobs = []
    for i in range(50):
        kwargs: dict[str, Any] = {**delay((i % 5) * 60), **(FAILING if i % 7 == 3 else {})}
        jobs.append(submit(llm, f"job number {i}", config=inline if i % 2 else cfg, **kwargs))
    calls = []
    client = _s3(llm, cfg)

    def count(**_: Any) -> None:
        calls.append(1)

    client.meta.events.register("before-send.s3", count)
    start = time.monotonic()
    try:
        results = wait_all(jobs, progress="force")
    finally:
        client.meta.events.unregister("before-send.s3", count)
    assert time.monotonic() - start < 3
    assert len(results) == 50
    for i, result in enumerate(results):
        if i % 7 == 3:
            assert isinstance(result, e.AsyncInferenceError) and result.job is jobs[i]
        else:
            assert result == f"Echo: job number {i}"
    assert "50/50" in capsys.readouterr().err
    assert len(calls) <= 50 * 6  # a handful of requests per job, never a busy loop


def test_wait_all_deadline_and_raising(llm: Any, cfg: Any) -> None:
    fast = submit(llm, "fast one", config=cfg)
    never = submit(llm, "never", config=cfg, **delay(60_000))
    broken = submit(llm, "broken", config=cfg, **FAILING)
    start = time.monotonic()
    results = wait_all([never, fast, broken], timeout=0.6)
    assert time.monotonic() - start < 1.5
    assert isinstance(results[0], e.JobTimeoutError) and results[0].job is never
    assert results[1] == "Echo: fast one"
    assert isinstance(results[2], e.AsyncInferenceError)
    with pytest.raises(e.JobTimeoutError):
        wait_all([fast, never, broken], timeout=0.2, return_exceptions=False)
    generations = wait_all([fast], generations=True)
    assert generations[0].text == "Echo: fast one"


def test_wait_all_without_terminal_shows_no_progress(llm: Any, cfg: Any, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = [submit(llm, f"quiet {i}", config=cfg) for i in range(3)]
    assert wait_all(jobs, progress=True) == [f"Echo: quiet {i}" for i in range(3)]
    assert capsys.readouterr().err == ""


async def test_await_all(llm: Any, cfg: Any) -> None:
    jobs = await asyncio.gather(*(asubmit(llm, f"aw {i}", config=cfg, **delay(i * 50)) for i in range(10)))
    broken = await asubmit(llm, "broken", config=cfg, **FAILING)
    results = await await_all([*jobs, broken])
    assert results[:10] == [f"Echo: aw {i}" for i in range(10)]
    assert isinstance(results[10], e.AsyncInferenceError)


# -- large outputs -------------------------------------------------------------------------------

def test_result_to_file_streams_a_large_output(llm: Any, cfg: Any, tmp_path: Path, s3: Any) -> None:
    words = 40_000
    job = submit(llm, " ".join(f"w{i}" for i in range(words)), config=cfg, max_tokens=words + 1)
    target = job.result_to_file(tmp_path / "out.json")
    assert target == tmp_path / "out.json"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no partial file left
    bucket, key = job.output_location.removeprefix("s3://").split("/", 1)
    assert target.stat().st_size == s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 1_000_000
    text = json.loads(target.read_text())[0]["generated_text"]
    assert text.split()[-1] == f"w{words - 1}"


async def test_aresult_to_file(llm: Any, cfg: Any, tmp_path: Path) -> None:
    job = await asubmit(llm, "async to a file", config=cfg)
    target = await job.aresult_to_file(tmp_path / "async.json")
    assert json.loads(target.read_text())[0]["generated_text"] == "Echo: async to a file"


def test_result_to_file_raises_for_a_failed_job(llm: Any, cfg: Any, tmp_path: Path) -> None:
    job = submit(llm, "no file", config=cfg, **FAILING)
    with pytest.raises(e.AsyncInferenceError):
        job.result_to_file(tmp_path / "never.json")
    assert not (tmp_path / "never.json").exists()


def test_result_to_file_never_follows_a_planted_part_symlink(llm: Any, cfg: Any, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "out.json.part").symlink_to(victim)
    job = submit(llm, "no symlinks", config=cfg)
    target = job.result_to_file(tmp_path / "out.json")
    assert victim.read_text() == "precious"
    assert not target.is_symlink()
    assert json.loads(target.read_text())[0]["generated_text"] == "Echo: no symlinks"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.json.part", "victim"]
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(IsADirectoryError):  # the rename fails: the temporary file is removed
        job.result_to_file(tmp_path / "a-dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-dir", "out.json", "out.json.part", "victim"]


# -- validation and errors before/at submission -----------------------------------------------------

@pytest.mark.parametrize(
    "fields",
    [
        {"request_ttl_seconds": 30},
        {"request_ttl_seconds": 30_000},
        {"invocation_timeout_seconds": 0},
        {"invocation_timeout_seconds": 4000},
        {"inline_body": True, "input_s3_uri": None},  # with an oversize body, below
    ],
)
def test_validation_happens_before_any_request(
    llm: Any, aep: LocalEndpoint, cfg: Any, s3: Any, fields: dict[str, Any]
) -> None:
    before = _keys(s3, "in/")
    with pytest.raises(e.ConfigurationError):
        config = {**cfg.model_dump(), **fields}
        submit(llm, "x " * 70_000, config=config)
    assert aep.requests == []
    assert _keys(s3, "in/") == before


def test_upload_errors_are_mapped_and_nothing_is_invoked(llm: Any, aep: LocalEndpoint, cfg: Any) -> None:
    config = cfg.model_copy(update={"input_s3_uri": "s3://no-such-bucket-here/in/"})
    with pytest.raises(e.SageMakerError, match=r"NoSuchBucket|does not exist") as info:
        submit(llm, "orphan", config=config)
    assert info.value.status_code == 404
    assert aep.requests == []


def test_refused_submission_removes_its_input(
    aep: LocalEndpoint, make_llm: Callable[..., Any], cfg: Any, s3: Any
) -> None:
    before = _keys(s3, "in/")
    with pytest.raises(e.EndpointNotFoundError):
        submit(make_llm("no-such-endpoint"), "lost", config=cfg)
    assert aep.requests[0].status == 400
    assert _keys(s3, "in/") == before


def test_service_side_validation(aep: LocalEndpoint, runtime_client: Any) -> None:
    location = f"s3://{INPUTS}/in/x.json"
    cases = [
        ({"InputLocation": location, "RequestTTLSeconds": 30_000}, "requestTTLSeconds"),
        ({"InputLocation": location, "InvocationTimeoutSeconds": 4000}, "invocationTimeoutSeconds"),
        ({"Body": b"x" * 128_001}, "less than or equal to 128000"),
        ({"InputLocation": location, "Body": b"{}"}, "mutually exclusive"),
        ({}, "Exactly one of InputLocation and Body"),
        ({"InputLocation": location, "Filename": "a.b.c"}, "filename"),
    ]
    for params, fragment in cases:
        with pytest.raises(ClientError) as info:
            runtime_client.invoke_endpoint_async(EndpointName="tgi", **params)
        assert info.value.response["Error"]["Code"] == "ValidationError"
        assert fragment in info.value.response["Error"]["Message"]
    assert all(r.status == 400 for r in aep.requests)


def test_s3_clients_are_shared_and_closed(llm: Any, cfg: Any) -> None:
    first, second = submit(llm, "one", config=cfg), submit(llm, "two", config=cfg)
    assert _s3(llm, cfg) is _s3(llm, cfg)
    assert wait_all([first, second]) == ["Echo: one", "Echo: two"]
    client = _s3(llm, cfg)
    close_s3_clients(llm)
    assert _s3(llm, cfg) is not client


def test_local_endpoint_stop_drops_running_jobs(s3_server: LocalS3) -> None:
    backend = S3AsyncBackend(s3_server.url, job_latency_ms=60_000)
    with LocalEndpoint(async_backend=backend) as endpoint:
        client = boto3.client("sagemaker-runtime", endpoint_url=endpoint.url, region_name="us-east-1")
        client.invoke_endpoint_async(EndpointName="tgi", Body=b'{"inputs": "x"}')
        assert backend.pending == 1
    start = time.monotonic()
    assert backend.pending == 0
    assert backend.wait_idle(1.0)
    assert time.monotonic() - start < 1.0


# -- command line ------------------------------------------------------------------------------

def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sm-llm")
    add_job_parser(parser.add_subparsers(dest="command", required=True))
    return run_job_command(parser.parse_args(argv))


def test_cli_submit_status_wait(
    aep: LocalEndpoint, s3_server: LocalS3, capsys: pytest.CaptureFixture[str], tmp_path: Path, sm_transport: str
) -> None:
    connection = ["--endpoint-url", aep.url, "--region", "us-east-1", "--s3-endpoint-url", s3_server.url,
                  "--transport", sm_transport]
    assert _cli(["job", "submit", "--endpoint", "tgi", *connection,
                 "--input-s3-uri", f"s3://{INPUTS}/cli/", "hello from the shell"]) == 0
    line = capsys.readouterr().out.strip()
    saved = json.loads(line)
    assert saved["endpoint_name"] == "tgi" and saved["content_handler"] == "tgi"
    assert _cli(["job", "submit", "--endpoint", "tgi", *connection, "--inline",
                 "--param", "temperature=-1", "fails"]) == 0
    failing = capsys.readouterr().out.strip()
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text(line + "\n" + failing + "\n")

    assert _cli(["job", "wait", *connection, "--timeout", "10", line]) == 0
    assert capsys.readouterr().out == "Echo: hello from the shell\n"
    assert _cli(["job", "status", *connection, line]) == 0
    assert json.loads(capsys.readouterr().out) == {"inference_id": saved["inference_id"], "status": "completed"}
    assert _cli(["job", "wait", *connection, "--timeout", "10", str(jobs_file)]) == 1
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["status"] for o in out] == ["completed", "failed"]
    assert "AsyncInferenceError" in out[1]["error"]


def test_cli_rejects_what_is_not_a_job(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(e.ConfigurationError, match="not a job"):
        _cli(["job", "status", str(bad)])
    with pytest.raises(e.ConfigurationError, match="cannot read jobs"):
        _cli(["job", "status", str(tmp_path / "missing.json")])


# -- adapters configured for async inference: chains wait for the jobs -------------------


def test_invoke_in_a_chain_waits_for_the_job(aep: LocalEndpoint, cfg: Any, sm_transport: str) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import PromptTemplate

    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=aep.url, region_name="us-east-1",
                       async_inference=cfg.model_dump(), transport=sm_transport, **delay(100))
    chain = PromptTemplate.from_template("summarise {doc}") | llm | StrOutputParser()
    assert chain.invoke({"doc": "the book"}) == "Echo: summarise the book"
    assert [r.operation for r in aep.requests] == ["InvokeEndpointAsync"]


def test_batch_submits_every_prompt_before_waiting(
    aep: LocalEndpoint, backend: S3AsyncBackend, cfg: Any, monkeypatch: pytest.MonkeyPatch, sm_transport: str
) -> None:
    """Server-side ordering, whatever the load: when each job is accepted, no job has finished.
    (Waiting for each job before submitting the next, job 2 would find job 1 done.)"""
    assert backend.wait_idle(10)  # jobs of earlier tests: none left to finish meanwhile
    finished_before = backend.completed + backend.failed  # the module's backend counts on
    finished_at_submit: list[int] = []
    accept = backend.submit

    def recording_submit(**kwargs: Any) -> Any:
        finished_at_submit.append(backend.completed + backend.failed)
        return accept(**kwargs)

    monkeypatch.setattr(backend, "submit", recording_submit)
    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=aep.url, region_name="us-east-1",
                       async_inference=cfg, transport=sm_transport, **delay(1000))  # 1 s per job: room for 6 uploads
    results = llm.batch([f"doc {i}" for i in range(6)])
    assert results == [f"Echo: doc {i}" for i in range(6)]
    assert [r.operation for r in aep.requests] == ["InvokeEndpointAsync"] * 6
    assert finished_at_submit == [finished_before] * 6


async def test_ainvoke_and_chat_through_jobs(aep: LocalEndpoint, cfg: Any, sm_transport: str) -> None:
    from sm_llm import ChatSageMaker

    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=aep.url, region_name="us-east-1", async_inference=cfg,
                       transport=sm_transport)
    assert await llm.ainvoke("async job") == "Echo: async job"
    assert await llm.abatch(["a", "b"]) == ["Echo: a", "Echo: b"]
    chat = ChatSageMaker(endpoint_name="openai", endpoint_url=aep.url, region_name="us-east-1", async_inference=cfg,
                         transport=sm_transport)
    reply = chat.invoke("chat job")
    assert reply.content == "Echo: chat job"
    assert (await chat.ainvoke("async chat job")).content == "Echo: async chat job"
    assert {r.operation for r in aep.requests} == {"InvokeEndpointAsync"}


def test_bad_async_config_is_a_configuration_error() -> None:
    with pytest.raises(e.ConfigurationError, match="request_ttl_seconds"):
        SageMakerLLM(endpoint_name="tgi", region_name="us-east-1",
                     async_inference={"inline_body": True, "request_ttl_seconds": 5})
