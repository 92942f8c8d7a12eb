"""Many concurrent streams from one asyncio process: client CPU per token, time to first
token and peak RSS.

Run ``.venv/bin/python bench/streams.py [--streams N] [--tokens T] [--token-ms MS]
[--rounds R] [--server replay|local] [--only NAME]``.

Defaults (issue 15): 1,000 concurrent streams of 200 tokens at 20 ms per token, i.e. a
chatbot backend holding 1,000 conversations at 50 tokens/s each, 50,000 tokens/s in all.
Every stream is opened at the same moment from one asyncio process. The server runs in
its own process; each contender runs in a fresh child process (this script re-invoked
with ``--contender NAME``) which first warms up with ``N`` concurrent one-token streams
(imports, clients and the ``N`` pooled connections are not measured), then opens the
``N`` measured streams at once and consumes them to the end.

Contenders (all send the same TGI body with ``"stream": true``; every stream must
deliver its ``T`` tokens):

``sm_llm botocore``  ``SageMakerLLM(max_connections=N).astream(prompt)`` on aiobotocore.
``sm_llm httpx``     the same with ``transport="httpx"``.
``raw aiobotocore``  ``invoke_endpoint_with_response_stream`` with ``AioConfig(max_pool_connections=N)``
                     and ``async for event in response["Body"]`` (botocore's event-stream
                     parsing): the payload bytes of every ``PayloadPart``, nothing decoded.
                     The floor.

Figures per contender (median of ``--rounds`` rounds, rounds interleaved):

* client CPU per token: ``time.process_time`` over the measured streams / tokens received;
* time to first token, p50 / p99 over the ``N`` streams: from the moment all streams are
  launched to the stream's first text (sm_llm) or first ``PayloadPart`` (raw). The server
  waits ``MS`` before every token, so ``MS`` is the floor;
* wall: launch to the last stream's end (ideal: ``T x MS``);
* peak RSS of the child process (``VmHWM``) and the extra peak over its RSS just before
  the measured streams (the high-water mark is reset first, Linux).

Goals: no stream starved — p99 TTFT <= 2x p50, and client CPU per token <= 0.4x raw
aiobotocore's.

Server (``--server``): ``replay`` (the default) is ``bench/_common.py serve-streams``, an
asyncio HTTP/1.1 server that answers ``InvokeEndpointWithResponseStream`` with the local
endpoint's own ``tgi`` stream — the same event-stream frames, SSE records and headers
(built with ``sm_llm.local``'s TGI container and frame encoder), each token paced
``MS`` after the previous one. ``local`` is ``sm-llm local serve`` with
``token_delay_ms: MS``: a thread per connection, which on two cores cannot pace 50,000
tokens/s (see bench/README.md), so its figures measure the server, not the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

CONTENDERS = ["sm_llm_botocore", "sm_llm_httpx", "raw_aiobotocore"]
LABELS = {
    "sm_llm_botocore": "sm_llm astream (botocore: aiobotocore)",
    "sm_llm_httpx": "sm_llm astream (httpx)",
    "raw_aiobotocore": "raw aiobotocore (botocore event parsing)",
}
TTFT_SPREAD = 2.0
CPU_TARGET = 0.4


def prompt_for(tokens: int) -> str:
    """A prompt the echo model answers with ``tokens`` tokens (greeting + words) when
    ``max_new_tokens`` is ``tokens``."""
    return " ".join(["w"] * max(1, tokens - 1))


def tgi_stream_body(tokens: int) -> bytes:
    return json.dumps({"inputs": prompt_for(tokens), "stream": True,
                       "parameters": {"details": True, "max_new_tokens": tokens}}).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# -- contenders (each in its own process) -------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


async def _measure(one: Any, streams: int, tokens: int) -> dict[str, Any]:
    """Warm up with ``streams`` one-token streams, then time ``streams`` streams of ``tokens``."""
    warm = await asyncio.gather(*(one(1, None) for _ in range(streams)))
    assert all(n == 1 for n, _ in warm), f"warm-up streams delivered {sorted(set(warm))[:3]}"
    import gc

    gc.collect()
    _reset_peak()
    before = _rss()
    cpu, start = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(one(tokens, start) for _ in range(streams)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    counts = [n for n, _ in results]
    if any(n != tokens for n in counts):
        raise AssertionError(f"streams delivered {min(counts)}..{max(counts)} tokens, not {tokens}")
    ttft = [t for _, t in results]
    return {"wall": wall, "cpu": cpu, "tokens": sum(counts), "ttft_p50": percentile(ttft, 0.5),
            "ttft_p99": percentile(ttft, 0.99), "ttft_max": max(ttft), "rss_before": before,
            "peak": _peak()}


def run_sm_llm(url: str, streams: int, tokens: int, transport: str) -> dict[str, Any]:
    from sm_llm import SageMakerLLM

    async def main() -> dict[str, Any]:
        # one pooled connection per stream, plus a few for the warm-up's stragglers
        llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=url, region_name="us-east-1",
                           max_connections=streams + 10, transport=transport, read_timeout=300)
        expected = "Echo:" + " w" * (tokens - 1)

        async def one(n: int, start: float | None) -> tuple[int, float]:
            first = 0.0
            parts: list[str] = []
            async for piece in llm.astream(prompt_for(n), max_tokens=n):
                if piece:
                    if not parts and start is not None:
                        first = time.perf_counter() - start
                    parts.append(piece)
            if start is not None and "".join(parts) != expected:
                raise AssertionError(f"wrong text: {''.join(parts)[:80]!r}")
            return len(parts), first

        result = await _measure(one, streams, tokens)
        await llm.aclose()
        return result

    return asyncio.run(main())


def run_raw(url: str, streams: int, tokens: int) -> dict[str, Any]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    async def main() -> dict[str, Any]:
        config = AioConfig(max_pool_connections=streams + 10, read_timeout=300)
        async with get_session().create_client("sagemaker-runtime", region_name="us-east-1",
                                               endpoint_url=url, config=config) as client:
            bodies = {n: tgi_stream_body(n) for n in (1, tokens)}

            async def one(n: int, start: float | None) -> tuple[int, float]:
                first = 0.0
                count = 0
                response = await client.invoke_endpoint_with_response_stream(
                    EndpointName="tgi", Body=bodies[n], ContentType="application/json")
                async for event in response["Body"]:
                    part = event.get("PayloadPart")
                    if part and part["Bytes"]:
                        if not count and start is not None:
                            first = time.perf_counter() - start
                        count += 1
                return count, first

            return await _measure(one, streams, tokens)

    return asyncio.run(main())


def contender(args: argparse.Namespace) -> None:
    c.dummy_aws_env()
    c.raise_fd_limit()
    if args.contender == "raw_aiobotocore":
        result = run_raw(args.url, args.streams, args.tokens)
    else:
        result = run_sm_llm(args.url, args.streams, args.tokens,
                            args.contender.removeprefix("sm_llm_"))
    c.emit_result(result)


# -- driver --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    parser.add_argument("--token-ms", type=float, default=20.0, help="server delay before each token")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, a fresh process each")
    parser.add_argument("--server", choices=["replay", "local"], default="replay")
    parser.add_argument("--only", action="append", choices=CONTENDERS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contender:
        contender(args)
        return

    c.dummy_aws_env()
    c.raise_fd_limit()
    names = args.only or CONTENDERS
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    ideal = args.tokens * args.token_ms / 1000
    load_before = c.load()
    started = time.perf_counter()
    server = (c.StreamServerProcess(args.token_ms) if args.server == "replay"
              else c.ServerProcess({"token_delay_ms": args.token_ms}))
    with server:
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                child = ["--contender", name, "--url", server.url, "--streams", str(args.streams),
                         "--tokens", str(args.tokens), "--token-ms", str(args.token_ms)]
                runs[name].append(c.run_child(Path(__file__), child, timeout=120 + 20 * ideal))
    elapsed = time.perf_counter() - started

    server_name = ("bench/_common.py serve-streams (asyncio replay of the local tgi stream)"
                   if args.server == "replay" else "sm-llm local serve (token_delay_ms)")
    print(f"{args.streams} concurrent streams x {args.tokens} tokens, {args.token_ms:g} ms per token "
          f"(ideal wall {ideal:.1f} s), one asyncio process per contender; server: {server_name}, "
          f"own process; median of {args.rounds} interleaved rounds")
    print(f"machine: {c.machine()}; load average before/after: {load_before} / {c.load()}")
    print()
    med: dict[str, dict[str, float]] = {}
    rows = []
    for name in names:
        rs = runs[name]
        m = med[name] = {k: c.median([r[k] for r in rs]) for k in
                         ("wall", "cpu", "tokens", "ttft_p50", "ttft_p99", "ttft_max", "peak", "rss_before")}
        per_token = [r["cpu"] / r["tokens"] for r in rs]
        m["cpu_token"] = c.median(per_token)
        rows.append([LABELS[name], f"{m['cpu_token'] * 1e6:.1f}",
                     f"{min(per_token) * 1e6:.1f}-{max(per_token) * 1e6:.1f}",
                     f"{m['cpu']:.1f}", f"{m['wall']:.1f}", f"{m['ttft_p50'] * 1e3:.0f}",
                     f"{m['ttft_p99'] * 1e3:.0f}", f"{m['ttft_max'] * 1e3:.0f}",
                     f"{m['peak'] / 2**20:.0f}", f"{(m['peak'] - m['rss_before']) / 2**20:.0f}"])
    print(c.table(["contender", "CPU µs/token", "min-max", "CPU s", "wall s", "TTFT p50 ms",
                   "p99 ms", "max ms", "peak RSS MB", "extra MB"], rows))
    print()
    rows = []
    raw = med.get("raw_aiobotocore")
    for name in names:
        if name == "raw_aiobotocore":
            continue
        m = med[name]
        spread = m["ttft_p99"] / m["ttft_p50"]
        rows.append([f"{LABELS[name]}: TTFT p99 / p50", f"{spread:.2f}", f"<= {TTFT_SPREAD:g}",
                     c.verdict(spread, TTFT_SPREAD)])
        if raw:
            ratio = m["cpu_token"] / raw["cpu_token"]
            rows.append([f"{LABELS[name]}: CPU/token / raw aiobotocore's", f"{ratio:.2f}",
                         f"<= {CPU_TARGET:g}", c.verdict(ratio, CPU_TARGET)])
    if raw:
        spread = raw["ttft_p99"] / raw["ttft_p50"]
        rows.append(["raw aiobotocore: TTFT p99 / p50", f"{spread:.2f}", "(floor)", ""])
    print(c.table(["target", "measured", "goal", "met?"], rows, aligns="<>><"))
    print(f"(bench took {elapsed:.0f} s)")


if __name__ == "__main__":
    main()
