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

``--ledger`` (issue 17) measures campaigns on a ``JobLedger`` instead, with inline
bodies (no upload) and the local endpoint publishing SageMaker-format notifications to
a moto SNS topic / SQS queue:

- *notifications*: ``submit(..., ledger=)`` for every job, then ``wait_all(ledger)``
  with ``notification_queue_url``; targets wall <= ideal + 2 s and <= 1.2 S3 requests
  per job (the result read);
- *crash and resume*: a client process submitting the jobs is killed with SIGKILL
  half-way; the same script is run again (a key already in the ledger is not sent),
  then ``wait_all(ledger)``; target: 0 jobs run twice (the local endpoint counts the
  jobs it ran) and 0 resubmits.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--min-latency", type=float, default=1.0)
    parser.add_argument("--max-latency", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ledger", action="store_true", help="the ledger + notifications runs (issue 17)")
    args = parser.parse_args(argv)
    c.dummy_aws_env()
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
    from sm_llm.llms import SageMakerLLM
    from sm_llm.local import LocalEndpoint, LocalNotifications, LocalS3, S3AsyncBackend

    n = args.jobs
    span = args.max_latency - args.min_latency
    latencies = [args.min_latency + span * i / max(1, n - 1) for i in range(n)]
    random.Random(args.seed).shuffle(latencies)
    delays = [f"{lat * 1000:.0f}" for lat in latencies]
    rows: list[list[str]] = []
    verdicts: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, LocalS3() as s3:
        notes = LocalNotifications(s3.url, prefix="bench")
        backend = S3AsyncBackend(s3.url, max_workers=max(16, n), notifications=notes)
        with LocalEndpoint(async_backend=backend) as ep:
            config = AsyncInferenceConfig(
                inline_body=True, s3_endpoint_url=s3.url, timeout=120, notification_queue_url=notes.queue_url,
            )
            llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=ep.url, region_name="us-east-1", max_tokens=16)
            ledger = JobLedger(Path(tmp) / "notified.db")
            start = time.monotonic()
            offsets = []
            for i in range(n):  # one submitter, as a campaign script would
                submit(llm, f"job {i} of the bench", config=config, ledger=ledger,
                       custom_attributes=f"sm-llm-local-delay-ms={delays[i]}")
                offsets.append(time.monotonic() - start)
            submit_s = time.monotonic() - start
            stats = CampaignStats()
            results = wait_all(ledger, progress=True, stats=stats)
            wall = time.monotonic() - start
            failed = sum(isinstance(r, BaseException) for r in results)
            ideal = max(o + lat for o, lat in zip(offsets, latencies, strict=True))
            per_job = stats.s3_requests / n
            rows.append(["ledger + notifications", f"{submit_s:.2f}", f"{wall:.2f}", f"{wall - ideal:.2f}",
                         f"{per_job:.2f}", f"{stats.sqs_receives}", str(failed), "-"])
            verdicts.append(f"target wall <= ideal + 2 s: {wall:.2f} <= {ideal + 2:.2f} {c.verdict(wall, ideal + 2)}")
            verdicts.append(f"target S3 requests per job <= 1.2: {per_job:.2f} {c.verdict(per_job, 1.2)}")
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
            rows.append(["crash at half, re-run, resume (S3 polling)", "-", f"{wall:.2f}", "-",
                         f"{stats.s3_requests / n:.2f}", "0", str(failed), f"{stats.resubmits} / {ran - n}"])
            verdicts.append(f"target 0 jobs run twice: {ran - n} (ledger at the kill: {at_crash}) "
                            f"{c.verdict(ran - n, 0)}")
            verdicts.append(f"target 0 resubmits: {stats.resubmits} {c.verdict(stats.resubmits, 0)}")
            llm.close()
    print(f"async campaigns on a ledger: {n} jobs, latencies {args.min_latency:g}-{args.max_latency:g} s, "
          f"{c.machine()}\n")
    print(c.table(["run", "submit s", "wall s", "wall - ideal s", "S3 requests / job", "SQS receives",
                   "failed", "resubmits / ran twice"], rows))
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
