"""Asynchronous inference: waiting for many jobs — wall time and S3 requests per job.

Run ``.venv/bin/python bench/async_jobs.py [--jobs 100] [--min-latency 1] [--max-latency 5]``.

Everything runs in this process on loopback: a moto S3 server (``LocalS3``), a
``LocalEndpoint`` whose async backend runs each job after its own latency (custom
attribute ``sm-llm-local-delay-ms``), and ``sm_llm`` through real boto3. The jobs'
latencies are spread evenly over ``[min, max]`` seconds (shuffled, seeded). Each job
uploads its input to S3; all are submitted (16 at a time), then
``wait_all(jobs)`` waits with the default schedule (first poll 1 s after submission,
x2 backoff, 15 s cap). Every S3 request of the adapter's S3 client is counted with a
botocore ``before-send.s3`` hook.

Compared with the SageMaker Python SDK's ``AsyncPredictor`` waiter, computed
analytically for the same completion times: per job, two threads run S3's
``object_exists`` waiter on the output and on the failure object (``HeadObject`` at
once, then every 15 s) until the output shows up, then one ``GetObject``; wall time
assumes every job gets its own pair of threads from its submission on (the SDK's best
case: ``get_result()`` is blocking, so waiting for jobs one after the other is slower).
Uploads (one ``PutObject`` per job) are the same for both and listed apart.

Targets: wall time <= ideal + one poll cap (15 s), where ideal is when the last
output object appeared; fewer S3 requests per job than the SDK waiter.

``--ledger`` (issue 17; 1,000 jobs by default) measures campaigns on a ``JobLedger``
instead, with inline bodies (no upload), the local endpoint publishing SageMaker-format
notifications to a moto SNS topic / SQS queue, and moto in a child process:

- *notifications*: ``run_campaign`` (``--concurrency`` submissions at a time, reading
  notifications from the first one on) with ``notification_queue_url``; targets wall <=
  slowest + 2 s (slowest: when the endpoint wrote the last output) and <= 1.2 S3
  requests per job (the result read); a per-stage breakdown of per-job timestamps
  (submit returned, due, output written / published, visible in SQS, received, ledger
  row finished) is printed;
- *crash and resume*: a client process submitting the jobs is killed with SIGKILL
  half-way; the same script is run again (a key already in the ledger is not sent),
  then ``wait_all(ledger)``; target: 0 jobs run twice (the local endpoint counts the
  jobs it ran) and 0 resubmits.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

SDK_DELAY_S = 15.0  # WaiterConfig default delay of sagemaker.async_inference


def _sdk(completion_s: float) -> tuple[int, float]:
    """(S3 requests, seconds until seen) of the SDK waiter pair for one job done after
    ``completion_s``: HEADs at 0, 15, 30 ... on both objects, then one GET."""
    polls = math.ceil(completion_s / SDK_DELAY_S) + 1
    return 2 * polls + 1, (polls - 1) * SDK_DELAY_S


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=None, help="default 100, 1000 with --ledger")
    parser.add_argument("--min-latency", type=float, default=1.0)
    parser.add_argument("--max-latency", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ledger", action="store_true", help="the ledger + notifications runs (issue 17)")
    parser.add_argument("--concurrency", type=int, default=8, help="with --ledger: submissions at a time")
    args = parser.parse_args(argv)
    c.dummy_aws_env()
    if args.jobs is None:
        args.jobs = 1000 if args.ledger else 100
    if args.ledger:
        return ledger_main(args)

    import boto3

    from sm_llm.async_inference import AsyncInferenceConfig, submit, wait_all
    from sm_llm.llms import SageMakerLLM
    from sm_llm.local import LocalEndpoint, LocalS3, S3AsyncBackend

    n = args.jobs
    span = args.max_latency - args.min_latency
    latencies = [args.min_latency + span * i / max(1, n - 1) for i in range(n)]
    random.Random(args.seed).shuffle(latencies)

    with LocalS3() as s3, LocalEndpoint(async_backend=S3AsyncBackend(s3.url, max_workers=16)) as ep:
        boto3.client("s3", endpoint_url=s3.url).create_bucket(Bucket="bench-inputs")
        config = AsyncInferenceConfig(input_s3_uri="s3://bench-inputs/in/", s3_endpoint_url=s3.url,
                                      timeout=120)
        llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=ep.url, region_name="us-east-1",
                           max_tokens=16)
        requests = {"PUT": 0, "GET": 0, "HEAD": 0, "other": 0}

        def count(request: Any, **_: Any) -> None:
            method = request.method if request.method in requests else "other"
            requests[method] += 1

        llm.engine.transport.s3_client(config.s3_endpoint_url).meta.events.register("before-send.s3", count)
        llm._get_client()

        def one(i: int) -> tuple[Any, float]:
            job = submit(llm, f"job {i} of the bench", config=config,
                         custom_attributes=f"sm-llm-local-delay-ms={latencies[i] * 1000:.0f}")
            return job, time.monotonic()

        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            submitted = list(pool.map(one, range(n)))
        submit_s = time.monotonic() - start
        jobs = [job for job, _ in submitted]
        offsets = [at - start for _, at in submitted]
        uploads = requests["PUT"]
        results = wait_all(jobs, progress=True)
        wall = time.monotonic() - start
        llm.close()

    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        print(f"{len(failures)} jobs failed, first: {failures[0]!r}", file=sys.stderr)
        return 1
    ideal = max(o + lat for o, lat in zip(offsets, latencies, strict=True))
    ours_polls = (requests["GET"] + requests["HEAD"]) / n
    sdk = [_sdk(lat) for lat in latencies]
    sdk_polls = sum(r for r, _ in sdk) / n
    sdk_wall = max(o + seen for o, (_, seen) in zip(offsets, sdk, strict=True))
    cap = config.max_poll_interval

    print(f"async inference: {n} jobs, latencies {args.min_latency:g}-{args.max_latency:g} s, "
          f"{c.machine()}")
    print(f"submitted in {submit_s:.2f} s (uploads: {uploads / n:.2f} PUT per job, same for the SDK); "
          f"ideal (last output written) {ideal:.2f} s\n")
    print(c.table(
        ["waiter", "wall s", "wall - ideal s", "S3 polls+reads / job", "S3 requests / job"],
        [
            ["sm_llm wait_all (measured)", f"{wall:.2f}", f"{wall - ideal:.2f}",
             f"{ours_polls:.2f}", f"{ours_polls + uploads / n:.2f}"],
            ["SageMaker SDK waiter (computed)", f"{sdk_wall:.2f}", f"{sdk_wall - ideal:.2f}",
             f"{sdk_polls:.2f}", f"{sdk_polls + 1:.2f}"],
        ],
    ))
    print(f"\nours: {requests['GET']} GET, {requests['HEAD']} HEAD, {requests['other']} other "
          f"for {n} jobs")
    print(f"target wall <= ideal + {cap:g} s: {wall:.2f} <= {ideal + cap:.2f} "
          f"{c.verdict(wall, ideal + cap)}")
    print(f"target fewer S3 requests per job than the SDK: {ours_polls:.2f} < {sdk_polls:.2f} "
          f"{c.verdict(ours_polls, sdk_polls - 1e-9)}")
    return 0


_CRASHER = """
import sys
from sm_llm.async_inference import AsyncInferenceConfig, JobLedger, submit
from sm_llm.llms import SageMakerLLM
db, ep, s3, n, delays = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(",")
config = AsyncInferenceConfig(inline_body=True, s3_endpoint_url=s3, timeout=120)
llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=ep, region_name="us-east-1", max_tokens=16)
ledger = JobLedger(db)
for i in range(n):
    submit(llm, f"job {i} of the bench", config=config, ledger=ledger,
           custom_attributes=f"sm-llm-local-delay-ms={delays[i]}")
"""


class _Trace:
    """Per-job wall-clock timestamps of the notification run, keyed by ``InferenceId``:
    accepted (``submit`` returned), due (accepted + the job's latency), published (the
    endpoint wrote the output and calls SNS ``Publish``), visible (``Publish`` returned:
    moto delivers to SQS inside it), received (the client's ``ReceiveMessage`` returned
    it), finished (the ledger row's ``updated``). Wraps public methods of this run's
    objects only."""

    def __init__(self) -> None:
        import threading

        self.at: dict[str, dict[str, float]] = {}
        self.receives: list[tuple[float, float, int]] = []  # start, end, messages
        self.reads: list[float] = []
        self._lock = threading.Lock()

    def mark(self, inference_id: str, stage: str, when: float | None = None) -> None:
        with self._lock:
            self.at.setdefault(inference_id, {})[stage] = time.time() if when is None else when

    def wrap_publisher(self, notes: Any) -> None:
        publish = notes.publish

        def traced(**kwargs: Any) -> None:
            self.mark(kwargs["inference_id"], "published")
            publish(**kwargs)
            self.mark(kwargs["inference_id"], "visible")

        notes.publish = traced

    def wrap_client(self, transport: Any) -> None:
        from sm_llm._core.notifications import parse_notification

        receive, read = transport.sqs_receive, transport.s3_read

        def traced_receive(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            messages = receive(*args, **kwargs)
            end = time.time()
            with self._lock:
                self.receives.append((start, end, len(messages)))
            for message in messages:
                note = parse_notification(message.body)
                if note is not None:
                    self.mark(note.inference_id, "received", end)
            return messages

        def traced_read(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            try:
                return read(*args, **kwargs)
            finally:
                with self._lock:
                    self.reads.append(time.time() - start)

        transport.sqs_receive, transport.s3_read = traced_receive, traced_read

    def report(self, ledger: Any, wall_end: float, start: float) -> list[str]:
        for entry in ledger.entries():
            if entry.finished:
                self.mark(entry.inference_id, "finished", entry.updated)
        stages = ["accepted", "due", "published", "visible", "received", "finished"]
        rows = []
        for first, second in itertools.pairwise(stages):
            gaps = sorted(t[second] - t[first] for t in self.at.values() if first in t and second in t)
            if gaps:
                rows.append([f"{first} -> {second}", str(len(gaps)),
                             *(f"{gaps[min(len(gaps) - 1, int(q * len(gaps)))] * 1000:.0f}" for q in (0.5, 0.9, 0.99)),
                             f"{gaps[-1] * 1000:.0f}"])
        last = {s: max((t[s] for t in self.at.values() if s in t), default=math.nan) for s in stages}
        lines = [c.table(["stage", "jobs", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows), ""]
        lines.append("last of each stage, s after the campaign started: " + ", ".join(
            f"{s} {last[s] - start:.2f}" for s in stages) + f", the campaign returned {wall_end - start:.2f}")
        if self.receives:
            took = sorted(e - s for s, e, _ in self.receives)
            sizes = [n for _, _, n in self.receives]
            lines.append(f"ReceiveMessage: {len(took)} calls, {sum(sizes)} messages, median {took[len(took) // 2] * 1000:.0f} ms, "
                         f"max {took[-1] * 1000:.0f} ms, batch sizes {sorted(set(sizes))}")
        if self.reads:
            reads = sorted(self.reads)
            lines.append(f"S3 output reads: {len(reads)}, median {reads[len(reads) // 2] * 1000:.0f} ms, "
                         f"max {reads[-1] * 1000:.0f} ms")
        return lines


_MOTO = """
import sys, time
from sm_llm.local import LocalS3
s3 = LocalS3().start()
print(s3.url, flush=True)
sys.stdin.read()  # until the bench closes our stdin (or dies)
s3.stop()
"""


class _MotoProcess:
    """moto's server (S3, SNS, SQS) in a child process: its CPU (ReceiveMessage and
    Publish cost O(queue depth) in moto) does not share this process's GIL with the
    client under test, as the real services would not."""

    def __enter__(self) -> _MotoProcess:
        import subprocess

        env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self.proc = subprocess.Popen([sys.executable, "-c", _MOTO], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.proc.kill()
            raise RuntimeError("moto's server did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait(10)


def ledger_main(args: argparse.Namespace) -> int:
    """The notification and crash-and-resume runs on a ledger."""
    import os
    import signal
    import subprocess
    import tempfile

    from sm_llm.async_inference import (
        AsyncInferenceConfig,
        CampaignStats,
        JobLedger,
        submit,
        wait_all,
    )
    from sm_llm.engine.ledger_wait import run_campaign as run_campaign_with
    from sm_llm.llms import SageMakerLLM
    from sm_llm.local import LocalEndpoint, LocalNotifications, S3AsyncBackend

    n = args.jobs
    span = args.max_latency - args.min_latency
    latencies = [args.min_latency + span * i / max(1, n - 1) for i in range(n)]
    random.Random(args.seed).shuffle(latencies)
    delays = [f"{lat * 1000:.0f}" for lat in latencies]
    rows: list[list[str]] = []
    verdicts: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, _MotoProcess() as s3:
        notes = LocalNotifications(s3.url, prefix="bench")
        # due jobs wait in the backend's heap, not on threads: a few workers write and publish
        backend = S3AsyncBackend(s3.url, max_workers=32, notifications=notes)
        with LocalEndpoint(async_backend=backend) as ep:
            config = AsyncInferenceConfig(
                inline_body=True, s3_endpoint_url=s3.url, timeout=120, notification_queue_url=notes.queue_url,
            )
            llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=ep.url, region_name="us-east-1", max_tokens=16)
            ledger = JobLedger(Path(tmp) / "notified.db")
            trace = _Trace()
            trace.wrap_publisher(notes)
            trace.wrap_client(llm.engine.transport)
            accepted: dict[int, float] = {}  # input -> when its submit returned (time.time())
            inputs = [f"job {i} of the bench" for i in range(n)]

            def one(i: int) -> Any:
                job = submit(llm, inputs[i], config=config, ledger=ledger,
                             custom_attributes=f"sm-llm-local-delay-ms={delays[i]}")
                accepted[i] = time.time()
                trace.mark(job.inference_id, "accepted", accepted[i])
                trace.mark(job.inference_id, "due", accepted[i] + latencies[i])
                return job

            stats = CampaignStats()
            start, start_wall = time.monotonic(), time.time()
            results = run_campaign_with(one, n, ledger, lambda _model: llm, concurrency=args.concurrency, stats=stats)
            wall = time.monotonic() - start
            wall_end = time.time()
            submit_s = max(accepted.values()) - start_wall
            offsets = [accepted[i] - start_wall for i in range(n)]
            failed = sum(isinstance(r, BaseException) for r in results)
            planned = max(o + lat for o, lat in zip(offsets, latencies, strict=True))
            # the slowest job: when the endpoint really wrote the last output (it may run
            # jobs later than planned when the machine is busy)
            ideal = max(t["published"] for t in trace.at.values() if "published" in t) - start_wall
            per_job = stats.s3_requests / n
            rows.append(["ledger + notifications", f"{submit_s:.2f}", f"{planned:.2f}", f"{ideal:.2f}", f"{wall:.2f}",
                         f"{wall - ideal:.2f}", f"{per_job:.2f}", f"{stats.sqs_receives}", str(failed), "-"])
            verdicts.append(f"target wall <= slowest + 2 s: {wall:.2f} <= {ideal + 2:.2f} {c.verdict(wall, ideal + 2)}")
            verdicts.append(f"target S3 requests per job <= 1.2: {per_job:.2f} {c.verdict(per_job, 1.2)}")
            breakdown = trace.report(ledger, wall_end, start_wall)
            backend.wait_idle(30)
            ran_before = backend.completed + backend.failed

            # crash and resume
            db = Path(tmp) / "crash.db"
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            start = time.monotonic()
            crasher = subprocess.Popen(
                [sys.executable, "-c", _CRASHER, str(db), ep.url, s3.url, str(n), ",".join(delays)], env=env
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and crasher.poll() is None:
                if db.exists() and len(JobLedger(db)) >= n // 2:
                    break
                time.sleep(0.05)
            crasher.send_signal(signal.SIGKILL)
            crasher.wait(10)
            ledger = JobLedger(db, resubmit_after=10)
            at_crash = ledger.counts()
            for i in range(n):  # the same script, run again
                submit(llm, f"job {i} of the bench", config=config.model_copy(update={"notification_queue_url": None}),
                       ledger=ledger, custom_attributes=f"sm-llm-local-delay-ms={delays[i]}")
            stats = CampaignStats()
            results = wait_all(ledger, stats=stats)
            wall = time.monotonic() - start
            backend.wait_idle(30)
            ran = backend.completed + backend.failed - ran_before
            failed = sum(isinstance(r, BaseException) for r in results)
            rows.append(["crash at half, re-run, resume (S3 polling)", "-", "-", "-", f"{wall:.2f}", "-",
                         f"{stats.s3_requests / n:.2f}", "0", str(failed), f"{stats.resubmits} / {ran - n}"])
            verdicts.append(f"target 0 jobs run twice: {ran - n} (ledger at the kill: {at_crash}) "
                            f"{c.verdict(ran - n, 0)}")
            verdicts.append(f"target 0 resubmits: {stats.resubmits} {c.verdict(stats.resubmits, 0)}")
            llm.close()
    print(f"async campaigns on a ledger: {n} jobs, latencies {args.min_latency:g}-{args.max_latency:g} s, "
          f"{c.machine()}\n")
    print(c.table(["run", "submit s", "planned slowest s", "slowest s (last output)", "wall s", "wall - slowest s",
                   "S3 requests / job", "SQS receives", "failed", "resubmits / ran twice"], rows))
    print("\nper stage (notification run; wall-clock timestamps per job):")
    print("\n".join(breakdown))
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
