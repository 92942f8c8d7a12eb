"""The fault soak: many mixed requests against a misbehaving local endpoint.

Every request must end in exactly one of: the correct result, or a typed
``sm_llm.errors`` exception. Never a hang, a bare botocore/urllib3 exception,
a duplicated token or a silently truncated result. Run by
``tests/integration/test_soak_short.py`` (short) and ``tests/soak/test_soak.py``.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sm_llm import AsyncInferenceConfig, ChatSageMaker, SageMakerLLM
from sm_llm.errors import SageMakerError, StreamError
from sm_llm.local import FaultConfig, LocalEndpoint, LocalS3, S3AsyncBackend

KINDS = ("invoke", "stream", "ainvoke", "astream", "chat_invoke", "chat_astream", "job", "ajob")
WORDS = ["alpha", "beta", "gamma", "delta", "🦜", "你好", "epsilon", "zeta"]
HANG_AFTER = 30.0


def soak_faults(seed: int) -> FaultConfig:
    """A seeded mix of latency, error statuses, resets, truncation and mid-stream failures."""
    return FaultConfig(
        seed=seed,
        latency_ms=2,
        error_rates={
            "ThrottlingException": 0.04,
            "ModelNotReadyException": 0.02,
            "ServiceUnavailable": 0.04,
            "InternalFailure": 0.03,
            "ModelError": 0.03,
            "ConnectionReset": 0.03,
            "TruncatedBody": 0.03,
        },
        stream_error_rate=0.1,
        stream_split_seed=seed,
        stream_max_part=16,
    )


@dataclass
class Tally:
    """How every request ended."""

    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def bad(self) -> int:
        return sum(self.outcomes[k] for k in ("hang", "untyped", "wrong", "duplicated", "truncated"))

    def __str__(self) -> str:
        total = sum(self.outcomes.values())
        parts = ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
        errors = ", ".join(f"{k}={v}" for k, v in self.errors.most_common())
        return f"{total} requests: {parts}\n  typed errors: {errors or 'none'}"


def _check_stream(pieces: list[str], expected: str, error: BaseException | None, tally: Tally, label: str) -> None:
    text = "".join(pieces)
    if error is None:
        if text == expected:
            tally.outcomes["ok"] += 1
        elif expected.startswith(text):
            tally.outcomes["truncated"] += 1
            tally.problems.append(f"{label}: truncated {text!r}")
        else:
            tally.outcomes["duplicated" if len(text) > len(expected) else "wrong"] += 1
            tally.problems.append(f"{label}: got {text!r}")
        return
    if not isinstance(error, SageMakerError):
        tally.outcomes["untyped"] += 1
        tally.problems.append(f"{label}: {type(error).__module__}.{type(error).__name__}: {error}")
        return
    if isinstance(error, StreamError) and error.partial_text != text:
        tally.outcomes["wrong"] += 1
        tally.problems.append(f"{label}: partial_text {error.partial_text!r} != yielded {text!r}")
        return
    if not expected.startswith(text):
        tally.outcomes["duplicated"] += 1
        tally.problems.append(f"{label}: yielded {text!r} before failing")
        return
    tally.outcomes["typed_error"] += 1
    tally.errors[type(error).__name__] += 1


async def run_soak(url: str, requests: int, seed: int, concurrency: int = 24, transport: str = "botocore") -> Tally:
    """Run ``requests`` mixed calls (sync in threads, async on the loop) and tally them.

    The endpoint at ``url`` must serve async inference inline (no S3 input needed).
    """
    rng = random.Random(seed)
    common: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1", "max_retries": 3, "timeout": 20,
                              "read_timeout": 10, "transport": transport}
    llm = SageMakerLLM(endpoint_name="tgi", content_handler="tgi", max_tokens=64, **common)
    jobs = llm.model_copy(update={"async_inference": AsyncInferenceConfig(
        inline_body=True, poll_interval=0.02, max_poll_interval=0.2, timeout=20,
        s3_endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"),
    )})
    chat = ChatSageMaker(endpoint_name="openai", content_handler="openai", max_tokens=64, **common)
    tally = Tally()
    limit = asyncio.Semaphore(concurrency)
    pool = ThreadPoolExecutor(max_workers=concurrency)
    loop = asyncio.get_running_loop()

    async def one(index: int) -> None:
        kind = rng.choice(KINDS)
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) + f" n{index}"
        expected = "Echo:" + "".join(" " + w for w in prompt.split())
        label = f"#{index} {kind}"
        pieces: list[str] = []

        def sync_stream() -> None:
            for piece in llm.stream(prompt):
                pieces.append(piece)

        async def async_stream(source: Callable[[], Any]) -> None:
            async for piece in source():
                pieces.append(piece if isinstance(piece, str) else str(piece.content))

        async with limit:
            try:
                if kind == "invoke":
                    result: Any = await asyncio.wait_for(loop.run_in_executor(pool, llm.invoke, prompt), HANG_AFTER)
                elif kind == "ainvoke":
                    result = await asyncio.wait_for(llm.ainvoke(prompt), HANG_AFTER)
                elif kind == "job":
                    result = await asyncio.wait_for(loop.run_in_executor(pool, jobs.invoke, prompt), HANG_AFTER)
                elif kind == "ajob":
                    result = await asyncio.wait_for(jobs.ainvoke(prompt), HANG_AFTER)
                elif kind == "chat_invoke":
                    result = (await asyncio.wait_for(chat.ainvoke(prompt), HANG_AFTER)).content
                elif kind == "stream":
                    await asyncio.wait_for(loop.run_in_executor(pool, sync_stream), HANG_AFTER)
                    result = None
                elif kind == "astream":
                    await asyncio.wait_for(async_stream(lambda: llm.astream(prompt)), HANG_AFTER)
                    result = None
                else:
                    await asyncio.wait_for(async_stream(lambda: chat.astream(prompt)), HANG_AFTER)
                    result = None
            except TimeoutError:
                tally.outcomes["hang"] += 1
                tally.problems.append(f"{label}: no result within {HANG_AFTER}s")
                return
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if kind.endswith(("invoke", "job")):
                    _check_stream([], expected, exc, tally, label)
                else:
                    _check_stream(pieces, expected, exc, tally, label)
                return
        if result is None:
            _check_stream(pieces, expected, None, tally, label)
        elif result == expected:
            tally.outcomes["ok"] += 1
        else:
            tally.outcomes["wrong"] += 1
            tally.problems.append(f"{label}: got {result!r}, expected {expected!r}")

    try:
        await asyncio.gather(*(one(i) for i in range(requests)))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        await llm.aclose()
        await chat.aclose()
        await jobs.aclose()
    return tally


class SoakEndpoint:
    """A LocalEndpoint with the soak faults and an async-inference backend on a local S3."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> str:
        self._s3 = LocalS3().__enter__()
        os.environ["AWS_ENDPOINT_URL_S3"] = self._s3.url
        self._backend = S3AsyncBackend(self._s3.url).__enter__()
        self._endpoint = LocalEndpoint(faults=soak_faults(self.seed), async_backend=self._backend).__enter__()
        return self._endpoint.url

    def __exit__(self, *exc_info: object) -> None:
        self._endpoint.__exit__(*exc_info)
        self._backend.__exit__(*exc_info)
        self._s3.__exit__(*exc_info)
        os.environ.pop("AWS_ENDPOINT_URL_S3", None)
