"""Runtime side of fault injection: seeded draws, the ``fail_next`` queue, stream shaping."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass

from sm_llm.local._config import FaultConfig
from sm_llm.local._containers import Piece

__all__ = ["FaultState", "StreamFault", "shape_stream"]

_STREAM_MESSAGES = {
    "ModelInvocationTimeExceeded": (
        "Your model primary did not complete sending the inference response in the allotted time."
    ),
    "StreamBroken": "Your model primary closed the response stream before it was complete.",
}
_DEFAULT_RANDOM_PART = 8


@dataclass(frozen=True)
class StreamFault:
    """An exception frame to end a stream with."""

    exception_type: str
    message: str
    error_code: str | None = None

    @classmethod
    def model_stream_error(cls, code: str) -> StreamFault:
        """A ``ModelStreamError`` with the service's message for ``code``."""
        return cls("ModelStreamError", _STREAM_MESSAGES.get(code, code), code)

    def body(self) -> dict[str, str]:
        """The exception frame's JSON payload."""
        if self.error_code is None:
            return {"Message": self.message}
        return {"Message": self.message, "ErrorCode": self.error_code}


class FaultState:
    """A private copy of a :class:`FaultConfig` plus its RNGs; thread-safe."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = (config or FaultConfig()).model_copy(deep=True)
        self._lock = threading.Lock()
        seed = self.config.seed
        self._errors = random.Random(f"{seed}:errors")
        self._variants = random.Random(f"{seed}:variants")
        split = self.config.stream_split_seed
        self._splits = None if split is None else random.Random(f"{split}:split")

    def next_fault(self) -> str | None:
        """The injected fault code for the next request, if any (queue first, then rates)."""
        with self._lock:
            if self.config.fail_next:
                return str(self.config.fail_next.pop(0))
            rates = self.config.error_rates
            if not rates:
                return None
            draw, total = self._errors.random(), 0.0
            for code, rate in rates.items():
                total += rate
                if draw < total:
                    return str(code)
            return None

    def choose_variant(self, names: Sequence[str], weights: Sequence[float]) -> str:
        """A weighted, seeded choice of production variant."""
        with self._lock:
            return self._variants.choices(list(names), weights=list(weights))[0]

    def stream_config(self) -> FaultConfig:
        """The fault config for one stream: ``stream_error_rate`` drawn per stream."""
        config = self.config
        if config.stream_error_rate <= 0 or config.stream_error_after_tokens is not None:
            return config
        with self._lock:
            fails = self._errors.random() < config.stream_error_rate
            after = self._errors.randint(0, 5)
        return config.model_copy(update={"stream_error_after_tokens": after}) if fails else config

    def split_rng(self) -> random.Random | None:
        """An RNG for re-chunking one stream (``None`` when splitting is off)."""
        if self._splits is None:
            return None
        with self._lock:
            return random.Random(self._splits.getrandbits(64))


def _paced(
    pieces: Iterable[Piece], config: FaultConfig, wait: Callable[[float], bool], out: list[StreamFault]
) -> Iterator[bytes]:
    """Apply token delay and the mid-stream error; record the error in ``out``."""
    limit = config.stream_error_after_tokens
    tokens = 0
    iterator = iter(pieces)
    try:
        for piece in iterator:
            if piece.token:
                if limit is not None and tokens >= limit:
                    break
                if config.token_delay_ms > 0 and wait(config.token_delay_ms / 1000.0):
                    return
                tokens += 1
            if piece.data:
                yield piece.data
    except Exception:
        out.append(StreamFault.model_stream_error("StreamBroken"))
        return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    if limit is not None:
        if config.stream_error_type == "InternalStreamFailure":
            out.append(StreamFault("InternalStreamFailure", "Internal stream failure."))
        else:
            out.append(StreamFault.model_stream_error(config.stream_error_code))


def _strip_final_newline(chunks: Iterable[bytes], faults: list[StreamFault]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        chunk = pending + chunk
        kept = chunk.rstrip(b"\r\n")
        pending = chunk[len(kept) :]
        if kept:
            yield kept
    if faults and pending:
        yield pending


def _rechunk(chunks: Iterable[bytes], rng: random.Random | None, max_part: int) -> Iterator[bytes]:
    if rng is None:
        for chunk in chunks:
            if max_part <= 0:
                yield chunk
            else:
                for start in range(0, len(chunk), max_part):
                    yield chunk[start : start + max_part]
        return
    upper = max_part if max_part > 0 else _DEFAULT_RANDOM_PART
    buffer = b""
    size = rng.randint(1, upper)
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield buffer[:size]
            buffer = buffer[size:]
            size = rng.randint(1, upper)
    if buffer:
        yield buffer


def shape_stream(
    pieces: Iterable[Piece],
    config: FaultConfig,
    split: random.Random | None,
    wait: Callable[[float], bool],
) -> Generator[bytes | StreamFault, None, None]:
    """Turn a container's pieces into payload-part bytes, then maybe one :class:`StreamFault`.

    ``wait(seconds)`` sleeps and returns True when the server is stopping (the
    stream is then abandoned).
    """
    faults: list[StreamFault] = []
    chunks: Iterable[bytes] = _paced(pieces, config, wait, faults)
    if config.stream_omit_trailing_newline:
        chunks = _strip_final_newline(chunks, faults)
    yield from _rechunk(chunks, split, config.stream_max_part)
    yield from faults
