"""sm_llm.batch and ``sm-llm batch`` against the local endpoint: input and output shapes,
per-record routing and errors, retries, id checks before sending, resume (torn lines,
``kill -9``), ``--max-errors`` and the report."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sm_llm.batch import arun_batch, run_batch
from sm_llm.errors import ConfigurationError
from sm_llm.local import FaultConfig, LocalEndpoint


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sm_llm.cli", "batch", *args], capture_output=True, text=True, timeout=120,
        env=os.environ.copy(), **kwargs,
    )


def test_prompts_messages_routing_and_parameters(make_llm: Any, local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    records = [
        {"id": "a", "prompt": "one two three"},
        {"id": 2, "prompt": "one two three", "max_tokens": 2},
        {"id": "b", "prompt": "to model b", "target_model": "model-b.tar.gz"},
        {"id": "m", "messages": [{"role": "user", "content": "hi from messages"}]},
        {"id": "k", "prompt": "x y z", "model_kwargs": {"max_new_tokens": 1}},
    ]
    out = tmp_path / "out.jsonl"
    report = run_batch(make_llm("mme"), _write(tmp_path / "in.jsonl", records[2:3]), out, progress=False)
    assert report.done == 1
    report = run_batch(make_llm("tgi"), _write(tmp_path / "in2.jsonl", records[:2] + records[3:]), out, progress=False)
    lines = {line["id"]: line for line in _lines(out)}
    assert set(lines) == {"a", 2, "b", "m", "k"}
    assert lines["a"]["output"] == "Echo: one two three" and lines["a"]["finish_reason"] == "stop"
    assert lines[2]["output"] == "Echo: one" and lines[2]["finish_reason"] == "length"
    assert lines["b"]["output"] == "B: to model b"
    assert lines["m"]["output"].startswith("Echo: Human: hi from messages")
    assert lines["k"]["output"] == "Echo:"
    assert set(lines["a"]) == {"id", "output", "usage", "finish_reason", "metadata"}
    assert lines["a"]["usage"]["output_tokens"] == 4 and "request_id" in lines["a"]["metadata"]
    assert (report.done, report.failed, report.skipped) == (4, 0, 0)
    assert report.tokens_out == sum(lines[i]["usage"]["output_tokens"] for i in ("a", 2, "m", "k"))
    sent = [json.loads(r.body) for r in local_endpoint.requests]
    assert {"inputs": "one two three", "parameters": {"details": True, "max_new_tokens": 2}} in sent


def test_chat_messages_usage_and_tool_free_output(make_chat: Any, local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    chat = make_chat("openai")
    records = [
        {"id": 1, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]},
        {"id": 2, "prompt": "plain prompt", "temperature": 0.5},
    ]
    report = run_batch(chat, records, tmp_path / "out.jsonl", progress=False)
    lines = {line["id"]: line for line in _lines(tmp_path / "out.jsonl")}
    assert lines[1]["output"] == "Echo: hi" and lines[2]["output"] == "Echo: plain prompt"
    assert lines[1]["usage"] == {"input_tokens": 3, "output_tokens": 2}
    assert lines[1]["metadata"]["model_name"] == "local-echo"
    assert report.tokens_in == 3 + lines[2]["usage"]["input_tokens"]
    bodies = {json.loads(r.body)["messages"][-1]["content"]: json.loads(r.body) for r in local_endpoint.requests}
    assert bodies["plain prompt"]["temperature"] == 0.5 and "temperature" not in bodies["hi"]


def test_direct_engine_path_writes_what_agenerate_writes(make_llm: Any, local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    """A plain SageMakerLLM is called through its engine; with callbacks, through
    ``agenerate``: the same lines either way (ids of the request aside)."""
    from langchain_core.callbacks import BaseCallbackHandler

    class Count(BaseCallbackHandler):
        ends = 0

        def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
            Count.ends += 1

    records = [{"id": 1, "prompt": "a b c. d e", "stop": ["."]}, {"id": 2, "prompt": "x y z", "max_tokens": 2},
               {"id": 3, "prompt": "m", "target_model": "model-b.tar.gz"}]
    outputs = []
    for name, callbacks in (("direct", None), ("generate", [Count()])):
        run_batch(make_llm("tgi", callbacks=callbacks), records[:2], tmp_path / f"{name}.jsonl",
                  concurrency=1, progress=False)
        run_batch(make_llm("mme", callbacks=callbacks), records[2:], tmp_path / f"{name}.jsonl", concurrency=1,
                  progress=False)
        lines = sorted(_lines(tmp_path / f"{name}.jsonl"), key=lambda line: line["id"])
        for line in lines:
            del line["metadata"]["request_id"], line["metadata"]["inference_id"]
        outputs.append(lines)
    assert outputs[0] == outputs[1] and Count.ends == 3
    assert outputs[0][0]["output"] == "Echo: a b c" and outputs[0][0]["finish_reason"] == "stop"


def test_per_record_errors_and_retries(make_llm: Any, local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    local_endpoint.faults = FaultConfig(fail_next=["ThrottlingException"])
    records = [
        {"id": "ok", "prompt": "fine"},
        {"id": "routing", "prompt": "x", "target_model": "nope.tar.gz"},
        {"id": "kwarg", "prompt": "x", "not_a_parameter": 1},
    ]
    report = run_batch(make_llm("tgi", max_retries=2), records, tmp_path / "out.jsonl", concurrency=1, progress=False)
    lines = {line["id"]: line for line in _lines(tmp_path / "out.jsonl")}
    assert lines["ok"]["output"] == "Echo: fine" and lines["ok"]["metadata"]["attempts"] == 2
    assert lines["routing"]["error"] == {
        "type": "RequestValidationError", "retryable": False, "status_code": 400,
        "message": lines["routing"]["error"]["message"],
    }
    assert "multi-model" in lines["routing"]["error"]["message"]
    assert lines["kwarg"]["error"]["type"] == "ConfigurationError"
    assert "not_a_parameter" in lines["kwarg"]["error"]["message"]
    assert (report.done, report.failed) == (1, 2)


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([{"id": 1, "prompt": "a"}, {"id": 2, "prompt": "b"}, {"id": 1, "prompt": "c"}], "duplicate id 1: .*:1 and .*:3"),
        ([{"id": 1, "prompt": "a"}, {"prompt": "b"}], r"in.jsonl:2 has no id"),
        ([{"id": 1, "prompt": "a"}, {"id": True, "prompt": "b"}], "ids are non-empty strings or integers"),
        ([{"id": 1, "prompt": "a", "messages": []}], "exactly one of"),
        ([{"id": 1}], "exactly one of"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    make_llm: Any, local_endpoint: LocalEndpoint, tmp_path: Path, records: list[dict[str, Any]], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        run_batch(make_llm("tgi"), _write(tmp_path / "in.jsonl", records), tmp_path / "out.jsonl", progress=False)
    assert local_endpoint.requests == []


def test_not_json_and_a_one_shot_iterator(make_llm: Any, local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"id": 1, "prompt": "a"}\n{"id": 2, "prompt": \n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"in\.jsonl:2 is not JSON"):
        run_batch(make_llm("tgi"), bad, tmp_path / "out.jsonl", progress=False)
    assert local_endpoint.requests == []
    generated = ({"id": i, "prompt": f"p{i}"} for i in range(5))  # read once: checked as it is read
    report = run_batch(make_llm("tgi"), generated, tmp_path / "gen.jsonl", progress=False)
    assert report.done == 5 and len(_lines(tmp_path / "gen.jsonl")) == 5


def test_resume_skips_done_ids_and_drops_a_torn_last_line(make_llm: Any, local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}"} for i in range(10)])
    out = tmp_path / "out.jsonl"
    done = [{"id": i, "output": "earlier", "usage": None, "finish_reason": "stop", "metadata": {}} for i in (0, 3, 7)]
    out.write_text("".join(json.dumps(d) + "\n" for d in done) + '{"id": 9, "output": "tor', encoding="utf-8")
    report = run_batch(make_llm("tgi"), source, out, progress=False)
    lines = _lines(out)
    assert [line["id"] for line in lines[:3]] == [0, 3, 7] and lines[0]["output"] == "earlier"
    assert sorted(line["id"] for line in lines) == list(range(10))
    assert (report.done, report.skipped) == (7, 3) and len(local_endpoint.requests) == 7
    again = run_batch(make_llm("tgi"), source, out, progress=False)
    assert (again.done, again.skipped) == (0, 10) and len(local_endpoint.requests) == 7
    fresh = run_batch(make_llm("tgi"), source, out, resume=False, progress=False)
    assert fresh.done == 10 and len(_lines(out)) == 10


def test_arun_batch_on_a_running_loop_and_run_batch_inside_one(make_llm: Any, local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    records = [{"id": i, "prompt": "x"} for i in range(6)]

    async def main() -> tuple[int, int]:
        llm = make_llm("tgi")
        first = await arun_batch(llm, records, tmp_path / "a.jsonl", concurrency=3, progress=False)
        await llm.aclose()
        second = run_batch(make_llm("tgi"), records, tmp_path / "b.jsonl", progress=False)  # from async code
        return first.done, second.done

    assert asyncio.run(main()) == (6, 6)


def test_window_keeps_concurrency_calls_in_flight(make_llm: Any, local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    local_endpoint.faults = FaultConfig(latency_ms=150)
    records = [{"id": i, "prompt": "x"} for i in range(24)]
    report = run_batch(make_llm("tgi", max_connections=2), records, tmp_path / "out.jsonl", concurrency=8, progress=False)
    assert report.done == 24 and local_endpoint.peak_in_flight == 8  # the pool was grown to the window


# -- the command line -----------------------------------------------------------------


def test_cli_runs_reports_and_resumes(local_endpoint: LocalEndpoint, tmp_path: Path, sm_transport: str) -> None:
    source = _write(tmp_path / "in.jsonl", [{"id": f"r{i}", "prompt": f"p {i}"} for i in range(12)])
    args = (str(source), "--out", str(tmp_path / "out.jsonl"), "--endpoint", "tgi", "--region", "us-east-1",
            "--endpoint-url", local_endpoint.url, "--max-tokens", "3", "--transport", sm_transport)
    result = _cli(*args, "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    assert "12 done, 0 failed, 0 skipped; tokens in/out 0/" in result.stderr and result.stdout == ""
    assert all(json.loads(r.body)["parameters"]["max_new_tokens"] == 3 for r in local_endpoint.requests)
    again = _cli(*args)
    assert again.returncode == 0 and "0 done, 0 failed, 12 skipped" in again.stderr


# The command line's other paths are the library's (above, on each transport): they run once.
def test_cli_max_errors_stops_early(local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": "x", "target_model": "bad"} for i in range(50)])
    result = _cli(str(source), "--out", str(tmp_path / "out.jsonl"), "--endpoint", "tgi", "--region",
                  "us-east-1", "--endpoint-url", local_endpoint.url, "--concurrency", "2", "--max-errors", "3")
    assert result.returncode == 1
    assert "stopped early after" in result.stderr and "--max-errors 3 reached" in result.stderr
    assert "Traceback" not in result.stderr
    assert 3 <= len(_lines(tmp_path / "out.jsonl")) <= 3 + 2 and len(local_endpoint.requests) <= 5


def test_cli_bad_input_exits_2(local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", [{"id": 1, "prompt": "a"}, {"id": 1, "prompt": "b"}])
    common = ("--out", str(tmp_path / "out.jsonl"), "--endpoint", "tgi", "--region", "us-east-1", "--endpoint-url", local_endpoint.url)
    result = _cli(str(source), *common)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "duplicate id 1" in result.stderr
    assert local_endpoint.requests == []


def test_kill_9_mid_run_loses_and_duplicates_nothing(local_endpoint: LocalEndpoint, tmp_path: Path) -> None:
    """A ``kill -9`` of the CLI mid-run, then the same command: every id exactly once, and
    at most ``concurrency`` records sent twice (those in flight at the kill)."""
    local_endpoint.faults = FaultConfig(latency_ms=100)
    total, concurrency = 80, 4
    source = _write(tmp_path / "in.jsonl", [{"id": i, "prompt": f"record {i}"} for i in range(total)])
    out = tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "sm_llm.cli", "batch", str(source), "--out", str(out), "--endpoint", "tgi",
            "--region", "us-east-1", "--endpoint-url", local_endpoint.url, "--concurrency", str(concurrency), "--no-progress"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 20):
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    written_before = out.read_bytes().count(b"\n")
    assert 20 <= written_before < total
    local_endpoint.wait_idle(5.0)
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    ids = Counter(line["id"] for line in _lines(out))
    assert sorted(ids) == list(range(total)) and set(ids.values()) == {1}
    sent = Counter(json.loads(r.body)["inputs"] for r in local_endpoint.requests)
    assert len(local_endpoint.requests) - total <= concurrency
    assert all(count <= 2 for count in sent.values())
