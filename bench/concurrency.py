"""Concurrency: wall time, requests/s and peak in-flight of async batches.

Run ``.venv/bin/python bench/concurrency.py [--requests N] [--latency-ms MS]
[--concurrency C] [--lc-requests N] [--rounds R] [--reps K] [--only NAME]``.

The local endpoint runs in its own process (the machine may have only 2 cores: the
server must not share the client's interpreter) with ``faults: {latency_ms: MS}`` on
every request, on a free loopback port. Each contender runs in a fresh child process
(this script re-invoked with ``--contender NAME``), first warming up with one batch of
``C`` prompts (clients, connection pools and imports are not measured), then timing
``--reps`` batches of ``N`` prompts each (``time.perf_counter``; ``time.process_time``
for the client's CPU). Rounds are interleaved (every contender once per round, order
rotated); the median batch over all rounds is reported, with the spread.

Contenders (all send the same TGI body, ``{"inputs": ..., "parameters": {"details": true}}``):

``sm_llm aio``       ``SageMakerLLM(max_connections=C).abatch(prompts, config={"max_concurrency": C})``
                     on aiobotocore (``transport="botocore"``, the default).
``sm_llm httpx``     the same with ``transport="httpx"`` (httpx's ``AsyncClient``).
``sm_llm threads``   the same with ``sm_llm.transports.aws.AIO_AVAILABLE = False`` (aiobotocore
                     hidden): the fallback runs each call on a thread pool of ``C`` workers.
``langchain-aws``    ``SagemakerEndpoint.abatch(..., max_concurrency=C)`` with a minimal TGI
                     ``LLMContentHandler``. Its ``_agenerate`` awaits prompts one at a time,
                     so it runs only ``--lc-requests`` prompts (warm-up: 5) and its wall time
                     is extrapolated to ``N`` (marked ``*``).
``raw aiobotocore``  ``invoke_endpoint`` + body read under ``asyncio.Semaphore(C)``,
                     ``AioConfig(max_pool_connections=C)``: the floor.

Two diagnostic rows separate sm_llm's own cost from langchain-core's batching
(``BaseLLM.abatch`` with ``max_concurrency`` runs consecutive *waves* of C prompts, each
waiting for its slowest request, where the semaphore keeps C in flight at all times):
``sm_llm ainvoke + Semaphore`` (``llm.ainvoke`` under the same semaphore as raw) and
``raw aiobotocore, waves of C`` (raw calls, ``gather``-ed C at a time).

Peak in-flight: the local endpoint has no HTTP route for its statistics, so the server
process is ``bench/_common.py serve-with-stats`` — the very ``LocalEndpoint`` that
``sm-llm local serve`` runs, plus a loopback side port serving its ``peak_in_flight``
(reset after the warm-up). A client-side count (a counter around each contender's
transport call) is printed next to it as a cross-check.

Targets (issue 15): sm_llm wall / raw aiobotocore wall <= 1.1 on the botocore transport
(aiobotocore) and <= 0.9 on httpx, at the defaults: 300 requests, 100 ms, concurrency 100
(the fallback's ratio is printed too, without a target).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

CONTENDERS = ["sm_llm_aio", "sm_llm_httpx", "sm_llm_threads", "langchain_aws", "raw_aiobotocore",
              "sm_llm_aio_semaphore", "raw_aiobotocore_waves"]
LABELS = {
    "sm_llm_aio": "sm_llm aio (aiobotocore)",
    "sm_llm_httpx": "sm_llm aio (httpx)",
    "sm_llm_threads": "sm_llm fallback (threads)",
    "langchain_aws": "langchain-aws SagemakerEndpoint",
    "raw_aiobotocore": "raw aiobotocore + Semaphore",
    "sm_llm_aio_semaphore": "diag: sm_llm ainvoke + Semaphore",
    "raw_aiobotocore_waves": "diag: raw aiobotocore, waves of C",
}
LC_WARMUP = 5
TARGETS = {"sm_llm_aio": 1.1, "sm_llm_httpx": 0.9}


def prompts(n: int, offset: int = 0) -> list[str]:
    return [f"prompt {offset + i}: the quick brown fox jumps over the lazy dog" for i in range(n)]


def expected(prompt: str) -> str:
    return "Echo: " + prompt  # the echo model: greeting, then the prompt's words


def tgi_body(prompt: str) -> bytes:
    return json.dumps({"inputs": prompt, "parameters": {"details": True}}).encode()


# -- contenders (each in its own process) -------------------------------------------------


class Measured:
    """Times the measured batch of a contender (after its warm-up)."""

    def __init__(self, stats_url: str | None, gauge: c.Gauge) -> None:
        self.stats_url, self.gauge = stats_url, gauge
        self.result: dict[str, Any] = {"runs": []}

    def begin(self) -> None:
        c.reset_server_stats(self.stats_url)  # nothing is in flight between the batches
        self.gauge.reset()
        self._cpu = time.process_time()
        self._t = time.perf_counter()

    def end(self, outputs: list[str], batch: list[str]) -> None:
        wall = time.perf_counter() - self._t
        cpu = time.process_time() - self._cpu
        wrong = sum(o != expected(p) for o, p in zip(outputs, batch, strict=True))
        if wrong:
            raise AssertionError(f"{wrong} of {len(batch)} replies are wrong, e.g. {outputs[0]!r}")
        stats = c.server_stats(self.stats_url) or {}
        self.result["runs"].append({
            "requests": len(batch), "wall": wall, "cpu": cpu,
            "peak_server": stats.get("peak_in_flight"), "server_requests": stats.get("requests"),
            "peak_client": self.gauge.peak,
        })


async def measure(
    run: Callable[[list[str]], Awaitable[list[str]]], n: int, conc: int, reps: int, m: Measured
) -> None:
    """Warm up with one batch of ``conc`` (clients and connections are not measured), then
    time ``reps`` batches of ``n`` and check every output."""
    warm = prompts(conc, offset=n)
    assert await run(warm) == [expected(p) for p in warm]
    batch = prompts(n)
    for _ in range(reps):
        m.begin()
        outputs = await run(batch)
        m.end(outputs, batch)


def _counted_async(gauge: c.Gauge, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        with gauge.track():
            return await fn(*args, **kwargs)

    return counted


def _counted(gauge: c.Gauge, fn: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        with gauge.track():
            return fn(*args, **kwargs)

    return counted


def run_sm_llm(url: str, n: int, conc: int, reps: int, m: Measured, *, threads: bool,
               semaphore: bool = False, transport: str = "botocore") -> None:
    from sm_llm import SageMakerLLM
    from sm_llm.transports import aws

    if transport == "httpx":
        from sm_llm.transports.sigv4_http import SigV4HttpTransport

        SigV4HttpTransport.ainvoke = _counted_async(m.gauge, SigV4HttpTransport.ainvoke)  # type: ignore[method-assign]
    elif threads:
        aws.AIO_AVAILABLE = False
        aws.BotocoreTransport.invoke = _counted(m.gauge, aws.BotocoreTransport.invoke)  # type: ignore[method-assign]
    else:
        assert aws.AIO_AVAILABLE, "aiobotocore is not installed"
        aws.BotocoreTransport.ainvoke = _counted_async(m.gauge, aws.BotocoreTransport.ainvoke)  # type: ignore[method-assign]

    async def main() -> None:
        llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=url, region_name="us-east-1",
                           max_connections=conc, transport=transport)
        config: Any = {"max_concurrency": conc}
        limit = asyncio.Semaphore(conc)

        async def one(prompt: str) -> str:
            async with limit:
                return await llm.ainvoke(prompt)

        async def run(batch: list[str]) -> list[str]:
            if semaphore:  # diagnostic: a sliding window instead of abatch's waves
                return list(await asyncio.gather(*map(one, batch)))
            return await llm.abatch(batch, config=config)

        await measure(run, n, conc, reps, m)
        await llm.aclose()

    asyncio.run(main())


def run_langchain_aws(url: str, n: int, conc: int, reps: int, m: Measured) -> None:

    llm = c.langchain_aws_tgi(url)
    llm.client.invoke_endpoint = _counted(m.gauge, llm.client.invoke_endpoint)

    async def main() -> None:
        config: Any = {"max_concurrency": conc}
        warm = prompts(LC_WARMUP, offset=n)
        assert await llm.abatch(warm, config=config) == [expected(p) for p in warm]
        batch = prompts(n)
        for _ in range(reps):
            m.begin()
            outputs = await llm.abatch(batch, config=config)
            m.end(outputs, batch)

    asyncio.run(main())


def run_raw_aiobotocore(url: str, n: int, conc: int, reps: int, m: Measured, *,
                        waves: bool = False) -> None:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    async def main() -> None:
        session = get_session()
        config = AioConfig(max_pool_connections=conc)
        async with session.create_client("sagemaker-runtime", region_name="us-east-1",
                                         endpoint_url=url, config=config) as client:
            semaphore = asyncio.Semaphore(conc)

            async def one(prompt: str) -> str:
                async with semaphore:
                    with m.gauge.track():
                        response = await client.invoke_endpoint(
                            EndpointName="tgi", Body=tgi_body(prompt),
                            ContentType="application/json", Accept="application/json",
                        )
                        async with response["Body"] as body:
                            data = await body.read()
                return str(json.loads(data)[0]["generated_text"])

            async def run(batch: list[str]) -> list[str]:
                if not waves:
                    return list(await asyncio.gather(*map(one, batch)))
                # diagnostic: what langchain-core's abatch does with max_concurrency,
                # consecutive gathers of C prompts
                out: list[str] = []
                for i in range(0, len(batch), conc):
                    out.extend(await asyncio.gather(*map(one, batch[i : i + conc])))
                return out

            await measure(run, n, conc, reps, m)

    asyncio.run(main())


def contender(args: argparse.Namespace) -> None:
    c.dummy_aws_env()
    m = Measured(args.stats_url, c.Gauge())
    name = args.contender
    n, conc, reps = args.requests, args.concurrency, args.reps
    if name == "sm_llm_aio":
        run_sm_llm(args.url, n, conc, reps, m, threads=False)
    elif name == "sm_llm_httpx":
        run_sm_llm(args.url, n, conc, reps, m, threads=False, transport="httpx")
    elif name == "sm_llm_threads":
        run_sm_llm(args.url, n, conc, reps, m, threads=True)
    elif name == "langchain_aws":  # slow: one batch, fewer prompts
        run_langchain_aws(args.url, min(args.lc_requests, n), conc, 1, m)
    elif name == "raw_aiobotocore":
        run_raw_aiobotocore(args.url, n, conc, reps, m)
    elif name == "sm_llm_aio_semaphore":
        run_sm_llm(args.url, n, conc, reps, m, threads=False, semaphore=True)
    elif name == "raw_aiobotocore_waves":
        run_raw_aiobotocore(args.url, n, conc, reps, m, waves=True)
    else:
        raise SystemExit(f"unknown contender {name!r}")
    c.emit_result(m.result)


# -- driver --------------------------------------------------------------------------------


def _fmt_peak(value: Any) -> str:
    return "-" if value is None else str(value)


def _walls(results: list[dict[str, Any]], n: int) -> list[float]:
    """Wall time of each batch, scaled to ``n`` requests."""
    return [x["wall"] * n / x["requests"] for x in results]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="prompts per measured batch")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="injected server latency")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="max_concurrency / pool size / semaphore")
    parser.add_argument("--lc-requests", type=int, default=50,
                        help="langchain-aws runs this many prompts, in the first round only "
                             "(extrapolated to --requests)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="interleaved rounds, a fresh process per contender each")
    parser.add_argument("--reps", type=int, default=3,
                        help="measured batches per process (langchain-aws: 1)")
    parser.add_argument("--only", action="append", choices=CONTENDERS, help="run these contenders")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--stats-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contender:
        contender(args)
        return

    c.dummy_aws_env()
    n, conc = args.requests, args.concurrency
    names = args.only or CONTENDERS
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    latency = args.latency_ms / 1000
    child_timeout = 60 + 3 * args.reps * latency * -(-n // max(1, conc)) \
        + 3 * min(args.lc_requests, n) * latency
    load_before = c.load()
    started = time.perf_counter()
    with c.ServerProcess({"latency_ms": args.latency_ms}, stats=True) as server:
        for r in range(args.rounds):
            order = names[r % len(names):] + names[: r % len(names)]  # rotated each round
            for name in order:
                if name == "langchain_aws" and runs[name]:
                    continue  # ~50x slower than the rest: one round is plenty
                child = ["--contender", name, "--url", server.url, "--stats-url",
                         str(server.stats_url), "--requests", str(n), "--concurrency", str(conc),
                         "--lc-requests", str(args.lc_requests), "--reps", str(args.reps)]
                result = c.run_child(Path(__file__), child, timeout=child_timeout)
                runs[name].extend({**x, "round": r} for x in result["runs"])
    elapsed = time.perf_counter() - started

    print(
        f"{n} requests per batch, {args.latency_ms:g} ms injected latency, concurrency {conc}; "
        f"{args.rounds} interleaved rounds x {args.reps} batches, each contender in a fresh "
        f"process per round after a warm-up batch; server in its own process"
    )
    print(f"machine: {c.machine()}; load average before/after: {load_before} / {c.load()}")
    print(f"ideal wall time (latency x ceil(N / C)): {latency * -(-n // conc):.2f} s")
    print()
    rows, walls = [], {}
    for name in names:
        results = sorted(runs[name], key=lambda x: x["wall"] / x["requests"])
        mid = results[len(results) // 2]  # the median batch (upper median)
        scale = n / mid["requests"]
        wall = walls[name] = mid["wall"] * scale
        mark = "*" if scale != 1 else ""
        every = _walls(results, n)
        rows.append([
            LABELS[name], f"{mid['requests']}", f"{wall:.2f}{mark}", f"{n / wall:,.0f}",
            f"{mid['cpu'] * scale:.2f}{mark}", _fmt_peak(mid["peak_server"]),
            _fmt_peak(mid["peak_client"]), f"{every[0]:.2f}-{every[-1]:.2f}", str(len(results)),
        ])
    print(c.table(["contender", "ran", "wall s", "req/s", "client CPU s", "peak in-flight",
                   "(client-side)", "min-max s", "batches"], rows))
    if "langchain_aws" in walls and min(args.lc_requests, n) != n:
        print(f"* langchain-aws ran {min(args.lc_requests, n)} requests once (its abatch awaits "
              f"prompts one by one); wall time and CPU extrapolated linearly to {n}.")
    print("wall s: the median batch. peak in-flight: reported by the server process "
          "(LocalEndpoint.peak_in_flight, read through the bench's stats side port);")
    print("(client-side): counted around each contender's transport call, as a cross-check.")
    print()

    def paired(name: str, base: str) -> str:
        """Median over rounds of (median batch of ``name`` / median batch of ``base``) in
        the same round: robust to load that changes between rounds."""
        ratios = []
        for r in range(args.rounds):
            a = [w for x in runs[name] if x["round"] == r for w in _walls([x], n)]
            b = [w for x in runs[base] if x["round"] == r for w in _walls([x], n)]
            if a and b:
                ratios.append(c.median(a) / c.median(b))
        if not ratios:
            return ""
        return (f"per-round {c.median(ratios):.2f} "
                f"[{min(ratios):.2f}-{max(ratios):.2f}]")

    raw = walls.get("raw_aiobotocore")
    if raw:
        lines = [
            *((name, "raw_aiobotocore", f"{LABELS[name]} / raw aiobotocore",
               f"target <= {target}: {c.verdict(walls.get(name, 0) / raw, target)}")
              for name, target in TARGETS.items()),
            ("sm_llm_threads", "raw_aiobotocore", "sm_llm fallback / raw aiobotocore", "(no target)"),
            ("sm_llm_aio_semaphore", "raw_aiobotocore", "diag: sm_llm ainvoke+Semaphore / raw",
             "(sm_llm without abatch's waves)"),
            ("sm_llm_aio", "raw_aiobotocore_waves", "diag: sm_llm aio / raw in waves of C",
             "(the same batching both sides)"),
            ("langchain_aws", "raw_aiobotocore", "langchain-aws / raw aiobotocore", "(extrapolated)"),
        ]
        print("wall-time ratios (of the median batches; per-round: paired within each round)")
        for name, base, label, note in lines:
            if name in walls and base in walls:
                pair = paired(name, base) if name != "langchain_aws" else ""
                print(f"  {label:38} = {walls[name] / walls[base]:6.2f}  {note}"
                      + (f"  {pair}" if pair else ""))
        rows = [[f"abatch {n} x {args.latency_ms:g} ms at C={conc}: {LABELS[name]} wall / raw "
                 "aiobotocore wall", f"{walls[name] / raw:.2f}", f"<= {target}",
                 c.verdict(walls[name] / raw, target)]
                for name, target in TARGETS.items() if name in walls]
        if rows:
            print()
            print(f"targets (issue 15; load average now {c.load()})")
            print(c.table(["target", "measured", "goal", "met?"], rows, aligns="<>><"))
    print(f"(bench took {elapsed:.0f} s)")


if __name__ == "__main__":
    main()
