"""Per-call overhead over raw boto3, import time, and peak memory of a 50 MB stream.

Run ``.venv/bin/python bench/overhead.py [--calls N] [--rounds R] [--import-runs K]
[--stub-calls N] [--stream-mb MB] [--memory-diag] [--profile CALLS] [--skip-import]
[--skip-memory]``.

Everything talks to the local endpoint, run as ``sm-llm local serve`` in its own
process on a free loopback port, with no injected latency; all text calls use the
``tgi`` endpoint and body (``{"inputs": ..., "parameters": {"details": true}}``).

1.  Per call, wall (``time.perf_counter``) and client CPU (``time.process_time``) over
    ``--calls`` sequential calls, rounds interleaved (every contender once per round,
    order rotated, one unmeasured warm-up round), median of ``--rounds`` rounds:

    raw boto3             ``invoke_endpoint`` + ``Body.read()`` + ``json.loads``: the floor.
    sm_llm invoke         ``SageMakerLLM.invoke``.
    langchain-aws invoke  ``SagemakerEndpoint.invoke``, minimal TGI ``LLMContentHandler``.
    diag: ._generate      both adapters' ``_generate([prompt])``, i.e. without langchain-core's
                          ``invoke``/``generate`` layer (callbacks, run ids, LLMResult): it
                          splits each overhead into the adapter's part and langchain-core's.
    raw boto3 (openai)    the floor for chat: the same on the ``openai`` endpoint with an
                          OpenAI ``{"messages": [...]}`` body.
    sm_llm chat invoke    ``ChatSageMaker(content_handler="openai").invoke``.
    raw boto3 stream      ``invoke_endpoint_with_response_stream`` + every event's bytes
                          (no decoding): the floor for streams.
    sm_llm stream         ``list(SageMakerLLM.stream(...))``.

    "Overhead" is a contender's time minus its floor. Target: sm_llm invoke overhead /
    langchain-aws invoke overhead <= 0.9 on the botocore transport (issue 15; wall and
    CPU both shown).

    The same ratio is then measured in-process with every client replaced by a stub that
    returns a canned reply: only the adapters' (and langchain-core's) Python runs, so the
    figure is free of socket, server and machine-load noise (the two-core machine is
    shared; the networked figures move by +-20 % between runs).

2.  ``import sm_llm``: ``python -c "import sm_llm"`` minus ``python -c "pass"``, each in a
    fresh process, median of ``--import-runs``; for scale, langchain-core's ``BaseLLM`` and
    ``BaseChatModel`` (what any LangChain model imports: the floor) and langchain-aws's
    ``SagemakerEndpoint``; and what sm_llm loads beyond the floor (``-X importtime`` self
    times of the modules the floor does not import, summed per top-level package).

3.  Peak memory of consuming ``SageMakerLLM.stream(...)`` over a ~``--stream-mb`` MB reply,
    in a fresh process: the local ``tgi`` endpoint echoes its prompt one word per token,
    each token an SSE record of ~125 bytes on the wire, so a prompt of ~400k one-letter
    words (800 KB) with ``max_tokens`` above that yields ~50 MB. Peak RSS of the
    measured call minus RSS just before it (Linux: the RSS high-water mark is reset via
    ``/proc/self/clear_refs`` first; elsewhere ``ru_maxrss``). The prompt is built before
    the measurement. Raw boto3 over the same reply is the floor. Target: < 20 MB.
    ``--memory-diag`` adds a run where ``StreamAssembler`` does not keep the emitted pieces
    (monkeypatched in that child only), to show what that list costs.

``--profile N`` also prints a cProfile of ``SageMakerLLM.invoke`` over N calls.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c

PROMPT = "the quick brown fox jumps over the lazy dog and runs far away"
OVERHEAD_TARGET = 0.9
HTTPX_WHOLE_TARGET = 0.8  # transport="httpx": the whole call's CPU against raw boto3's
STREAM_TARGET = 0.5  # client CPU per token against langchain-aws's
MEMORY_TARGET_MB = 20.0
RECORD_BYTES = 125  # wire bytes per one-letter token record of the local tgi stream


def tgi_body(prompt: str, **extra: Any) -> bytes:
    return json.dumps({"inputs": prompt, "parameters": {"details": True}, **extra}).encode()


# -- 1. per-call -------------------------------------------------------------------------


def contenders(url: str) -> dict[str, tuple[str, Callable[[], Any]]]:
    import boto3

    from sm_llm import ChatSageMaker, SageMakerLLM

    client = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=url)
    expected = "Echo: " + PROMPT

    def raw() -> str:
        response = client.invoke_endpoint(EndpointName="tgi", Body=tgi_body(PROMPT),
                                          ContentType="application/json",
                                          Accept="application/json")
        return str(json.loads(response["Body"].read())[0]["generated_text"])

    chat_body = json.dumps({"messages": [{"role": "user", "content": PROMPT}]}).encode()

    def raw_openai() -> str:
        response = client.invoke_endpoint(EndpointName="openai", Body=chat_body,
                                          ContentType="application/json",
                                          Accept="application/json")
        return str(json.loads(response["Body"].read())["choices"][0]["message"]["content"])

    def raw_stream() -> int:
        response = client.invoke_endpoint_with_response_stream(
            EndpointName="tgi", Body=tgi_body(PROMPT, stream=True), ContentType="application/json")
        return sum(len(e["PayloadPart"]["Bytes"]) for e in response["Body"] if "PayloadPart" in e)

    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=url, region_name="us-east-1")
    httpx_llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=url, region_name="us-east-1",
                             transport="httpx")
    chat = ChatSageMaker(endpoint_name="openai", content_handler="openai", endpoint_url=url,
                         region_name="us-east-1")


    lc = c.langchain_aws_tgi(url)

    def sm_stream() -> str:
        return "".join(llm.stream(PROMPT))

    checks: dict[str, tuple[str, Callable[[], Any]]] = {
        "raw": ("raw boto3 (tgi)", raw),
        "sm_llm": ("sm_llm SageMakerLLM.invoke (botocore)", lambda: llm.invoke(PROMPT)),
        "sm_httpx": ("sm_llm SageMakerLLM.invoke (httpx)", lambda: httpx_llm.invoke(PROMPT)),
        "lc": ("langchain-aws SagemakerEndpoint.invoke", lambda: lc.invoke(PROMPT)),
        "sm_gen": ("  diag: sm_llm ._generate([p])", lambda: llm._generate([PROMPT])),
        "lc_gen": ("  diag: langchain-aws ._generate([p])", lambda: lc._generate([PROMPT])),
        "raw_openai": ("raw boto3 (openai)", raw_openai),
        "chat": ("sm_llm ChatSageMaker.invoke (openai)", lambda: chat.invoke(PROMPT)),
        "raw_stream": ("raw boto3 stream (bytes only)", raw_stream),
        "stream": ("sm_llm SageMakerLLM.stream", sm_stream),
    }
    # Every contender must get the whole right answer before it is timed.
    for key in ("raw", "sm_llm", "sm_httpx", "lc", "stream"):
        assert checks[key][1]() == expected, key
    assert checks["raw_openai"][1]() and checks["chat"][1]().content, "chat"
    assert checks["raw_stream"][1]() > 0
    return checks


def per_call(url: str, calls: int, rounds: int) -> dict[str, dict[str, float]]:
    fns = contenders(url)
    keys = list(fns)
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in range(rounds + 1):  # round 0 warms up and is dropped
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            fn = fns[key][1]
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if r:
                samples[key].append((wall / calls, cpu / calls))
    return {
        key: {"label": fns[key][0],  # type: ignore[dict-item]
              "wall": c.median([s[0] for s in samples[key]]),
              "cpu": c.median([s[1] for s in samples[key]]),
              "wall_min": min(s[0] for s in samples[key]),
              "cpu_min": min(s[1] for s in samples[key]),
              "wall_max": max(s[0] for s in samples[key])}
        for key in keys
    }


def stubbed(calls: int, rounds: int) -> dict[str, dict[str, float]]:
    """Per-call CPU of the adapters' own Python: every client is a stub whose
    ``invoke_endpoint`` returns a canned TGI reply (no botocore, no socket, no server)."""
    import io as _io

    from sm_llm import SageMakerLLM

    reply = json.dumps([{"generated_text": "Echo: " + PROMPT, "details": {
        "finish_reason": "eos_token", "generated_tokens": 13, "seed": None, "prefill": [],
        "tokens": []}}]).encode()

    class Stub:
        def invoke_endpoint(self, **params: Any) -> dict[str, Any]:
            return {"Body": _io.BytesIO(reply), "ContentType": "application/json",
                    "InvokedProductionVariant": "AllTraffic",
                    "ResponseMetadata": {"RequestId": "stub", "HTTPStatusCode": 200}}


    stub = Stub()
    llm = SageMakerLLM(endpoint_name="tgi", region_name="us-east-1", client=stub)
    lc = c.langchain_aws_tgi(client=stub)

    def raw() -> str:
        response = stub.invoke_endpoint(EndpointName="tgi", Body=tgi_body(PROMPT),
                                        ContentType="application/json", Accept="application/json")
        return str(json.loads(response["Body"].read())[0]["generated_text"])

    fns: dict[str, Callable[[], Any]] = {
        "raw": raw, "sm_llm": lambda: llm.invoke(PROMPT), "lc": lambda: lc.invoke(PROMPT),
        "sm_gen": lambda: llm._generate([PROMPT]), "lc_gen": lambda: lc._generate([PROMPT]),
    }
    assert raw() == llm.invoke(PROMPT) == lc.invoke(PROMPT) == "Echo: " + PROMPT
    samples: dict[str, list[float]] = defaultdict(list)
    for r in range(rounds + 1):
        for key, fn in fns.items():
            gc.collect()
            cpu = time.process_time()
            for _ in range(calls):
                fn()
            if r:
                samples[key].append((time.process_time() - cpu) / calls)
    return {key: {"cpu": c.median(v), "min": min(v)} for key, v in samples.items()}


# -- 1b. a long stream: client CPU per token ----------------------------------------------


def langchain_aws_tgi_stream(url: str, tokens: int) -> Any:
    """langchain-aws's ``SagemakerEndpoint(streaming=True)`` with the hand-written TGI
    streaming handler of AWS's examples: its ``LineIterator`` hands over each SSE line."""
    from langchain_aws.llms.sagemaker_endpoint import LLMContentHandler, SagemakerEndpoint

    class TGIStreamHandler(LLMContentHandler):  # type: ignore[misc]
        content_type = "application/json"
        accepts = "application/json"

        def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
            return json.dumps({"inputs": prompt, "parameters": model_kwargs, "stream": True}).encode()

        def transform_output(self, output: bytes) -> str:
            if not output.startswith(b"data:"):
                return ""
            token = json.loads(output[5:])["token"]
            return "" if token["special"] else str(token["text"])

    return SagemakerEndpoint(endpoint_name="tgi", region_name="us-east-1", endpoint_url=url,
                             content_handler=TGIStreamHandler(), streaming=True,
                             model_kwargs={"details": True, "max_new_tokens": tokens})


STREAM_LABELS = {
    "raw": "raw boto3 stream (botocore events, bytes only)",
    "sm_llm": "sm_llm SageMakerLLM.stream (botocore)",
    "sm_httpx": "sm_llm SageMakerLLM.stream (httpx)",
    "lc": "langchain-aws SagemakerEndpoint.stream",
}


def stream_tokens(url: str, tokens: int, rounds: int) -> dict[str, dict[str, float]]:
    """Client CPU per token of one ``tokens``-token stream (the local tgi endpoint, no
    delay), per contender, rounds interleaved, median."""
    import boto3

    from sm_llm import SageMakerLLM

    prompt = " ".join(["w"] * (tokens - 1))  # the echo model: greeting + one token per word
    expected = "Echo:" + " w" * (tokens - 1)
    body = json.dumps({"inputs": prompt, "stream": True,
                       "parameters": {"details": True, "max_new_tokens": tokens}}).encode()
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=url)
    llms = {t: SageMakerLLM(endpoint_name="tgi", endpoint_url=url, region_name="us-east-1",
                            max_tokens=tokens, transport=t) for t in ("botocore", "httpx")}
    lc = langchain_aws_tgi_stream(url, tokens)

    def raw() -> int:
        response = client.invoke_endpoint_with_response_stream(
            EndpointName="tgi", Body=body, ContentType="application/json")
        return sum(1 for e in response["Body"] if "PayloadPart" in e)

    def text(pieces: Any) -> int:
        out = [p for p in pieces if p]
        assert "".join(out) == expected, "".join(out)[:80]
        return len(out)

    fns: dict[str, Callable[[], int]] = {
        "raw": raw,
        "sm_llm": lambda: text(llms["botocore"].stream(prompt)),
        "sm_httpx": lambda: text(llms["httpx"].stream(prompt)),
        "lc": lambda: text(lc.stream(prompt)),
    }
    for key, fn in fns.items():  # warm-up, and every contender gets every token
        assert fn() == tokens, key
    keys = list(fns)
    samples: dict[str, list[float]] = defaultdict(list)
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            gc.collect()
            cpu = time.process_time()
            n = fns[key]()
            samples[key].append((time.process_time() - cpu) / n)
    return {key: {"cpu": c.median(v), "min": min(v), "max": max(v)} for key, v in samples.items()}


def profile_invoke(url: str, calls: int) -> str:
    from sm_llm import SageMakerLLM

    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=url, region_name="us-east-1")
    for _ in range(20):
        llm.invoke(PROMPT)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        llm.invoke(PROMPT)
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    out.write("\n--- sm_llm-owned functions by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(r"sm_llm/", 30)
    return out.getvalue()


# -- 2. import time ----------------------------------------------------------------------


FLOOR_IMPORT = "from langchain_core.language_models import BaseLLM, BaseChatModel"
IMPORTS = [("pass", "pass"), ("sm_llm", "import sm_llm"),
           ("langchain-core BaseLLM + BaseChatModel", FLOOR_IMPORT),
           ("langchain_aws SagemakerEndpoint",
            "from langchain_aws.llms.sagemaker_endpoint import SagemakerEndpoint")]


def _time_python(code: str) -> float:
    import subprocess

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=c.ROOT,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_times(runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        for name, code in IMPORTS:  # interleaved
            times[name].append(_time_python(code))
    return {name: c.median(v) for name, v in times.items()}


def _self_times(code: str) -> dict[str, float]:
    import subprocess

    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          capture_output=True, text=True, timeout=60, cwd=c.ROOT, check=True)
    times = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s+(\S+)", line)
        if match:
            times[match.group(2)] = int(match.group(1)) / 1e6
    return times


def import_breakdown() -> list[tuple[str, float]]:
    """What ``import sm_llm`` imports beyond langchain-core's model classes: ``-X
    importtime`` self times of the modules the floor does not import, per package."""
    floor = _self_times(FLOOR_IMPORT)
    per: dict[str, float] = defaultdict(float)
    for module, seconds in _self_times("import sm_llm").items():
        if module not in floor:
            per[module.split(".")[0]] += seconds
    return sorted(per.items(), key=lambda kv: -kv[1])


# -- 3. streaming memory (child process) ---------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> bool:
    """Reset the RSS high-water mark (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def memory_child(kind: str, url: str, words: int) -> dict[str, Any]:
    import resource

    import boto3

    from sm_llm import SageMakerLLM

    prompt = " ".join(["a"] * words)
    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=url, region_name="us-east-1",
                       max_tokens=words + 10,
                       transport="httpx" if kind == "sm_llm_httpx" else "botocore")
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=url)

    def raw(p: str, max_tokens: int) -> tuple[int, int]:
        body = json.dumps({"inputs": p, "parameters": {"details": True,
                                                       "max_new_tokens": max_tokens},
                           "stream": True}).encode()
        response = client.invoke_endpoint_with_response_stream(
            EndpointName="tgi", Body=body, ContentType="application/json")
        size = parts = 0
        for event in response["Body"]:
            if "PayloadPart" in event:
                size += len(event["PayloadPart"]["Bytes"])
                parts += 1
        return size, parts

    if kind == "sm_llm_nokeep":  # diag: what keeping the emitted text (for partial_text) costs
        from sm_llm._core.pipeline import StreamAssembler

        def discard(self: Any, piece: str) -> None:
            self.emitted_any = True

        StreamAssembler._keep = discard  # type: ignore[method-assign]

    def ours(p: str) -> tuple[int, int]:
        chars = chunks = 0
        for piece in llm.stream(p):
            chars += len(piece)
            chunks += 1
        return chars, chunks

    # warm-up: clients, imports, first-call caches
    raw("a b c", 10) if kind == "raw" else ours("a b c")
    gc.collect()
    exact = _reset_peak()
    before = _rss()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    size, count = raw(prompt, words + 10) if kind == "raw" else ours(prompt)
    elapsed = time.perf_counter() - start
    peak = _peak() if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"kind": kind, "before": before, "peak": peak, "peak_before": peak_before,
            "exact": exact, "size": size, "count": count, "seconds": elapsed}


# -- driver --------------------------------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per contender per round")
    parser.add_argument("--rounds", type=int, default=11, help="interleaved measured rounds")
    parser.add_argument("--stub-calls", type=int, default=1000,
                        help="calls per round of the stubbed-client measurement")
    parser.add_argument("--import-runs", type=int, default=5)
    parser.add_argument("--stream-mb", type=float, default=50.0)
    parser.add_argument("--profile", type=int, default=0, metavar="CALLS",
                        help="also cProfile SageMakerLLM.invoke over CALLS calls")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--stream-tokens", type=int, default=4000,
                        help="tokens of the CPU-per-token stream")
    parser.add_argument("--stream-rounds", type=int, default=5)
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--memory-diag", action="store_true",
                        help="also stream with StreamAssembler not keeping the emitted text (diagnostic)")
    parser.add_argument("--memory-child", choices=["sm_llm", "sm_llm_httpx", "raw", "sm_llm_nokeep"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--words", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    c.dummy_aws_env()
    if args.memory_child:
        c.emit_result(memory_child(args.memory_child, args.url, args.words))
        return

    load_before = c.load()
    started = time.perf_counter()
    with c.ServerProcess({}) as server:
        results = per_call(server.url, args.calls, args.rounds)
        streams = ({} if args.skip_stream
                   else stream_tokens(server.url, args.stream_tokens, args.stream_rounds))
        memory = []
        if not args.skip_memory:
            words = int(args.stream_mb * 1e6 / RECORD_BYTES)
            for kind in ("raw", "sm_llm", "sm_llm_httpx",
                         *(["sm_llm_nokeep"] if args.memory_diag else [])):
                memory.append(c.run_child(Path(__file__), [
                    "--memory-child", kind, "--url", server.url, "--words", str(words)],
                    timeout=300))
        profile = profile_invoke(server.url, args.profile) if args.profile else ""
    stub = stubbed(args.stub_calls, args.rounds)
    imports = {} if args.skip_import else import_times(args.import_runs)
    breakdown = [] if args.skip_import else import_breakdown()
    elapsed = time.perf_counter() - started

    print(f"local endpoint (sm-llm local serve) in its own process, no injected latency; "
          f"{args.calls} sequential calls per contender per round, median of {args.rounds} "
          f"interleaved rounds")
    print(f"machine: {c.machine()}; load average before/after: {load_before} / {c.load()}")
    print()
    targets: list[list[str]] = []
    floors = {"sm_llm": "raw", "sm_httpx": "raw", "lc": "raw", "sm_gen": "raw", "lc_gen": "raw",
              "chat": "raw_openai", "stream": "raw_stream"}
    rows = []
    for key, r in results.items():
        floor = floors.get(key)
        over_wall = over_cpu = ""
        if floor:
            over_wall = _us(r["wall"] - results[floor]["wall"])
            over_cpu = _us(r["cpu"] - results[floor]["cpu"])
        rows.append([r["label"], _us(r["wall"]), _us(r["cpu"]), over_wall, over_cpu,
                     f"{_us(r['wall_min'])}-{_us(r['wall_max'])}"])
    print(c.table(["per call", "wall µs", "CPU µs", "overhead wall µs", "overhead CPU µs",
                   "wall min-max µs"], rows))
    print()

    def overhead(key: str, what: str) -> float:
        return results[key][what] - results[floors[key]][what]

    for key, transport in (("sm_llm", "botocore"), ("sm_httpx", "httpx")):
        for what in ("wall", "cpu"):
            ours, theirs = overhead(key, what), overhead("lc", what)
            ratio = ours / theirs if theirs > 0 else float("nan")
            # a negative overhead (faster than the floor it includes) is load noise, not a result
            noise = ours <= 0 or theirs <= 0
            verdict = "n/a (noise: an overhead <= 0)" if noise else c.verdict(ratio, OVERHEAD_TARGET)
            goal = f"target <= {OVERHEAD_TARGET}: {verdict}" if transport == "botocore" else "(no target)"
            print(f"sm_llm ({transport:8}) overhead / langchain-aws overhead ({what:4}) = "
                  f"{_us(ours)} / {_us(theirs)} µs = {ratio:.2f}  {goal}")
            if transport == "botocore":
                targets.append([f"invoke overhead over raw boto3 / langchain-aws's, botocore ({what}, "
                                "networked)", f"{ratio:.2f}", f"<= {OVERHEAD_TARGET}", verdict])
    whole = results["sm_httpx"]["cpu"] / results["raw"]["cpu"]
    print(f"sm_llm (httpx) whole invoke CPU / raw boto3 whole call CPU = "
          f"{_us(results['sm_httpx']['cpu'])} / {_us(results['raw']['cpu'])} µs = {whole:.2f}  "
          f"target <= {HTTPX_WHOLE_TARGET}: {c.verdict(whole, HTTPX_WHOLE_TARGET)}")
    targets.append(["httpx: whole invoke CPU / raw boto3's whole call CPU", f"{whole:.2f}",
                    f"<= {HTTPX_WHOLE_TARGET}", c.verdict(whole, HTTPX_WHOLE_TARGET)])
    for key in ("sm_llm", "sm_httpx"):
        w, cpu = results[key]["wall"] / results["raw"]["wall"], results[key]["cpu"] / results["raw"]["cpu"]
        print(f"  {results[key]['label']} / raw boto3, whole call: wall {w:.2f}, CPU {cpu:.2f}")
    best = [(results[k]["wall_min"] - results["raw"]["wall_min"],
             results[k]["cpu_min"] - results["raw"]["cpu_min"]) for k in ("sm_llm", "lc")]
    print(f"  same from each contender's least-disturbed round: wall {best[0][0] / best[1][0]:.2f}, "
          f"CPU {best[0][1] / best[1][1]:.2f}")
    print("where the overhead goes (CPU µs per call): adapter = ._generate - raw boto3; "
          "langchain-core = .invoke - ._generate")
    for key, gen, name in (("sm_llm", "sm_gen", "sm_llm"), ("lc", "lc_gen", "langchain-aws")):
        adapter = results[gen]["cpu"] - results["raw"]["cpu"]
        core = results[key]["cpu"] - results[gen]["cpu"]
        print(f"  {name:14} adapter {_us(adapter):>5}  +  langchain-core invoke layer {_us(core):>5}")

    print()
    print(f"the same without botocore, socket or server (clients stubbed with a canned reply; "
          f"{args.stub_calls} calls x {args.rounds} rounds, CPU µs per call, median):")
    base = stub["raw"]["cpu"]
    rows = []
    for key, label in (("raw", "raw (stub + json.loads)"), ("sm_llm", "sm_llm invoke"),
                       ("lc", "langchain-aws invoke"), ("sm_gen", "  diag: sm_llm ._generate"),
                       ("lc_gen", "  diag: langchain-aws ._generate")):
        over = "" if key == "raw" else f"{(stub[key]['cpu'] - base) * 1e6:.1f}"
        rows.append([label, f"{stub[key]['cpu'] * 1e6:.1f}", over])
    print(c.table(["stubbed client", "CPU µs", "overhead µs"], rows))
    ours, theirs = stub["sm_llm"]["cpu"] - base, stub["lc"]["cpu"] - base
    ratio = ours / theirs
    print(f"sm_llm overhead / langchain-aws overhead (stubbed) = {ours * 1e6:.1f} / "
          f"{theirs * 1e6:.1f} µs = {ratio:.2f}  target <= {OVERHEAD_TARGET}: "
          f"{c.verdict(ratio, OVERHEAD_TARGET)}")
    targets.append(["invoke overhead / langchain-aws's, stubbed clients (CPU)", f"{ratio:.2f}",
                    f"<= {OVERHEAD_TARGET}", c.verdict(ratio, OVERHEAD_TARGET)])

    if streams:
        print()
        print(f"one stream of {args.stream_tokens:,} tokens (local tgi endpoint, no delay): client CPU "
              f"per token, median of {args.stream_rounds} interleaved rounds")
        rows = [[STREAM_LABELS[k], f"{v['cpu'] * 1e6:.1f}", f"{v['min'] * 1e6:.1f}-{v['max'] * 1e6:.1f}"]
                for k, v in streams.items()]
        print(c.table(["stream", "CPU µs/token", "min-max"], rows))
        for key, transport in (("sm_llm", "botocore"), ("sm_httpx", "httpx")):
            ratio = streams[key]["cpu"] / streams["lc"]["cpu"]
            print(f"sm_llm ({transport}) CPU/token / langchain-aws CPU/token = {ratio:.2f}  "
                  f"target <= {STREAM_TARGET}: {c.verdict(ratio, STREAM_TARGET)}")
            targets.append([f"stream {args.stream_tokens:,} tokens: CPU/token / langchain-aws's "
                            f"({transport})", f"{ratio:.2f}", f"<= {STREAM_TARGET}",
                            c.verdict(ratio, STREAM_TARGET)])

    if imports:
        print()
        base = imports["pass"]
        rows = [[name, f"{(t - base) * 1e3:,.0f}"] for name, t in imports.items() if name != "pass"]
        print(f"import time (fresh process, minus `python -c pass` = {base * 1e3:.0f} ms; "
              f"median of {args.import_runs})")
        print(c.table(["import", "ms"], rows))
        total = sum(t for _, t in breakdown)
        top = ", ".join(f"{name} {t * 1e3:.0f}" for name, t in breakdown[:8])
        print(f"modules `import sm_llm` loads beyond langchain-core's BaseLLM/BaseChatModel "
              f"(-X importtime self ms, total {total * 1e3:.0f}): {top}")

    if memory:
        print()
        rows = []
        for m in memory:
            extra = (m["peak"] - m["before"]) / 2**20
            label = {"raw": "raw boto3 stream (bytes only)",
                     "sm_llm": "sm_llm SageMakerLLM.stream (botocore)",
                     "sm_llm_httpx": "sm_llm SageMakerLLM.stream (httpx)",
                     "sm_llm_nokeep": "diag: botocore, emitted text not kept"}[m["kind"]]
            unit = "MB on the wire" if m["kind"] == "raw" else "chars of text"
            verdict = ""
            if m["kind"] in ("sm_llm", "sm_llm_httpx"):
                verdict = f"target < {MEMORY_TARGET_MB:g}: {c.verdict(extra, MEMORY_TARGET_MB)}"
                targets.append([f"memory: extra peak RSS streaming a ~{args.stream_mb:g} MB reply "
                                f"({label.split('(')[1].rstrip(')')})", f"{extra:.1f} MB",
                                f"< {MEMORY_TARGET_MB:g} MB", c.verdict(extra, MEMORY_TARGET_MB)])
            size = f"{m['size'] / 1e6:.1f} MB" if m["kind"] == "raw" else f"{m['size']:,}"
            rows.append([label, f"{m['count']:,}", size + f" ({unit})", f"{m['seconds']:.1f}",
                         f"{m['before'] / 2**20:.0f}", f"{m['peak'] / 2**20:.0f}",
                         f"{extra:.1f}", verdict])
        exact = all(m["exact"] for m in memory)
        print(f"streaming a ~{args.stream_mb:g} MB reply (local tgi endpoint, one-letter tokens; "
              f"fresh process each; peak = {'VmHWM after reset' if exact else 'ru_maxrss'})")
        print(c.table(["consumer", "parts/chunks", "size", "s", "RSS before MB", "peak MB",
                       "extra peak MB", ""], rows))
    print()
    print(f"targets (issue 15; load average now {c.load()})")
    print(c.table(["target", "measured", "goal", "met?"], targets, aligns="<>><"))
    if profile:
        print()
        print(f"cProfile of SageMakerLLM.invoke over {args.profile} calls:")
        print(profile)
    print(f"(bench took {elapsed:.0f} s)")


if __name__ == "__main__":
    main()
