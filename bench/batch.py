"""Batch: ``sm-llm batch`` against a hand-written raw aiobotocore loop, and a crash + resume.

Run ``.venv/bin/python bench/batch.py [--records N] [--latency-ms MS] [--concurrency C]
[--rounds R]``. Defaults: the issue's 20,000 records at 50 ms, concurrency 200.

The local endpoint runs in its own process (``bench/_common.py serve-with-stats``, which
counts requests) with ``faults: {latency_ms: MS}``. Each contender is a fresh process
reading the same JSONL input and writing one JSON line per record as calls finish:

``sm-llm batch``     the CLI (``--no-progress``), concurrency C.
``raw aiobotocore``  ``invoke_endpoint`` + body read under ``asyncio.Semaphore(C)``,
                     ``AioConfig(max_pool_connections=C)``, ``json.dumps`` + one write per
                     line — the floor: no resume, no id checks, no error lines.

Wall time is the child's (start to exit, imports included, as a user sees it); peak RSS is
the child's own ``ru_maxrss`` (``os.wait4``). Rounds alternate the two; medians are reported.
Then the crash: ``sm-llm batch`` is killed with SIGKILL once half the lines are written,
rerun, and the output checked (every id once) and the server's request count compared with
the records (re-sent = requests - records).

Targets: wall ratio <= 1.15, peak RSS <= 150 MB, re-sent <= C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

RATIO, RSS_MB = 1.15, 150.0


def raw_loop(url: str, source: str, out: str, conc: int) -> None:
    """The hand-written baseline (runs in its own process)."""
    import asyncio

    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    async def main() -> None:
        config = AioConfig(max_pool_connections=conc, retries={"max_attempts": 3, "mode": "standard"})
        async with get_session().create_client(
            "sagemaker-runtime", endpoint_url=url, region_name="us-east-1", config=config
        ) as client:
            limit = asyncio.Semaphore(conc)
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

            async def one(record: dict[str, Any]) -> None:
                async with limit:
                    body = json.dumps({"inputs": record["prompt"], "parameters": {"details": True}})
                    reply = await client.invoke_endpoint(
                        EndpointName="tgi", Body=body, ContentType="application/json", Accept="application/json"
                    )
                    data = json.loads(await reply["Body"].read())
                    line = {"id": record["id"], "output": data[0]["generated_text"]}
                    os.write(fd, (json.dumps(line) + "\n").encode())

            async def feed() -> None:
                pending: set[asyncio.Task[None]] = set()
                with open(source, encoding="utf-8") as handle:
                    for text in handle:
                        while len(pending) >= conc:  # bounded: the window, not the file
                            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                        pending.add(asyncio.create_task(one(json.loads(text))))
                await asyncio.gather(*pending)

            await feed()
            os.close(fd)

    asyncio.run(main())


def _spawn(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=c.ROOT)


def _finish(proc: subprocess.Popen[bytes], started: float) -> tuple[float, float, int]:
    """Wait for ``proc``: wall seconds, its own peak RSS (MB), exit status."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode


def _cli_cmd(url: str, source: Path, out: Path, conc: int) -> list[str]:
    return [sys.executable, "-m", "sm_llm.cli", "batch", str(source), "--out", str(out), "--endpoint", "tgi",
            "--region", "us-east-1", "--endpoint-url", url, "--concurrency", str(conc), "--no-progress"]


def run(cmd: list[str], out: Path, n: int) -> tuple[float, float]:
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = _spawn(cmd)
    wall, rss, code = _finish(proc, started)
    if code != 0:
        raise RuntimeError(f"{cmd[2:4]} exited {code}: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    ids = Counter(json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines())
    if len(ids) != n or set(ids.values()) != {1}:
        raise AssertionError(f"{len(ids)} ids for {n} records")
    return wall, rss


def crash(url: str, stats_url: str | None, source: Path, out: Path, n: int, conc: int) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    c.reset_server_stats(stats_url)
    cmd = _cli_cmd(url, source, out, conc)
    proc = _spawn(cmd)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.stat().st_size and out.read_bytes().count(b"\n") >= n // 2:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = out.read_bytes().count(b"\n")
    time.sleep(0.5)  # the killed run's last requests reach the server
    wall, _rss = run_resume(cmd, out)
    ids = Counter(json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines())
    stats = c.server_stats(stats_url) or {}
    return {
        "killed_at": killed_at, "ids": len(ids), "duplicated": sum(v > 1 for v in ids.values()),
        "requests": stats.get("requests"), "resent": (stats.get("requests") or 0) - n, "resume_wall": wall,
    }


def run_resume(cmd: list[str], out: Path) -> tuple[float, float]:
    started = time.perf_counter()
    proc = _spawn(cmd)
    wall, rss, code = _finish(proc, started)
    if code != 0:
        raise RuntimeError(f"resume exited {code}")
    return wall, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--raw", nargs=3, metavar=("URL", "SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    c.dummy_aws_env()
    if args.raw:
        raw_loop(*args.raw, args.concurrency)
        return 0
    n, conc = args.records, args.concurrency
    print(f"batch bench: {n} records, {args.latency_ms:g} ms latency, concurrency {conc}; {c.machine()}; {c.load()}")
    with tempfile.TemporaryDirectory(prefix="sm-llm-batch-") as folder, \
            c.ServerProcess({"latency_ms": args.latency_ms}, stats=True) as server:
        source, out = Path(folder) / "in.jsonl", Path(folder) / "out.jsonl"
        with source.open("w", encoding="utf-8") as handle:
            for i in range(n):
                handle.write(json.dumps({"id": f"r{i}", "prompt": f"record {i}: the quick brown fox"}) + "\n")
        raw_cmd = [sys.executable, __file__, "--concurrency", str(conc), "--raw", server.url, str(source), str(out)]
        results: dict[str, list[tuple[float, float]]] = {"sm-llm batch": [], "raw aiobotocore": []}
        for round_ in range(args.rounds):
            order = [("sm-llm batch", _cli_cmd(server.url, source, out, conc)), ("raw aiobotocore", raw_cmd)]
            for name, cmd in order if round_ % 2 == 0 else order[::-1]:
                results[name].append(run(cmd, out, n))
        walls = {name: c.median([w for w, _ in runs]) for name, runs in results.items()}
        rss = {name: max(r for _, r in runs) for name, runs in results.items()}
        ratio = walls["sm-llm batch"] / walls["raw aiobotocore"]
        outcome = crash(server.url, server.stats_url, source, out, n, conc)
    print(c.table(["contender", "wall (median)", "records/s", "peak RSS"], [
        [name, f"{walls[name]:.2f} s", f"{n / walls[name]:.0f}", f"{rss[name]:.0f} MB"] for name in walls
    ], "<>>>"))
    print(f"wall ratio sm-llm batch / raw: {ratio:.2f} (target <= {RATIO}) {c.verdict(ratio, RATIO)}")
    print(f"peak RSS sm-llm batch: {rss['sm-llm batch']:.0f} MB (target <= {RSS_MB:g}) "
          f"{c.verdict(rss['sm-llm batch'], RSS_MB)}")
    print(f"crash at {outcome['killed_at']} lines, then resume ({outcome['resume_wall']:.2f} s): "
          f"{outcome['ids']} ids, {outcome['duplicated']} duplicated; server requests {outcome['requests']} "
          f"→ re-sent {outcome['resent']} (target <= {conc}) {c.verdict(outcome['resent'], conc)}")
    c.emit_result({"walls": walls, "rss": rss, "ratio": ratio, **outcome})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
