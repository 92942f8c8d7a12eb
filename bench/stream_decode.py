"""Stream decoding throughput: records/s of the client-side stream path.

Run ``.venv/bin/python bench/stream_decode.py [--records N] [--runs N]
[--breakdown] [--profile]``.

The input is the recorded TGI stream of ``tests/unit/data/streams`` (``tgi.sse``:
``data:{...}`` events separated by a blank line, trailing newline present), with
its tokens repeated until there are about ``--records`` records. Consecutive
events are grouped 1 to 3 per ``PayloadPart`` (as TGI flushes them), each part is
wrapped in an AWS event-stream frame (wire reference §2.1 to 2.3) and each frame is
handed over as one network read, as urllib3 yields a chunked body.

Measured, each the best of ``--runs`` interleaved runs (``time.perf_counter``):

a.  bare events: botocore ``EventStreamBuffer`` over the framed bytes; the
    payload bytes of each event are taken out, nothing else. The floor.
b.  LineIterator alone: langchain-aws's ``LineIterator`` over pre-built
    ``{"PayloadPart": {"Bytes": ...}}`` dicts (what botocore's ``EventStream``
    yields), so line splitting only: no event parsing, no JSON, no text.
b'. (a) feeding (b).
c.  full path (ours): (a) + ``StreamDecoder`` + the ``tgi`` preset's
    ``parse_stream_record`` + ``StreamAssembler.add`` + one ``GenerationChunk``
    per emitted piece.
d.  ``StreamDecoder`` alone on (b)'s input: line splitting against line splitting.
e.  (c) without the event parsing, on (b)'s input.
A, B, C: as deployed: botocore's ``EventStream`` (the ``Body`` boto3 returns,
    which also runs the response parser per event) alone, feeding
    ``LineIterator``, and feeding our path the way ``sm_llm.transports`` does.

Targets: ``c / a`` (full path time / bare event time) <= 1.5, and ``c / b``
(full path time / LineIterator-alone time) <= 1.0. ``--breakdown`` adds the
stages of (c) one at a time; ``--profile`` prints a cProfile of (c).
If langchain-aws is not installed, its rows say so and the rest still runs.
"""

from __future__ import annotations

import argparse
import binascii
import cProfile
import gc
import importlib.util
import io
import json
import pstats
import random
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import botocore.session
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.parsers import EventStreamJSONParser
from langchain_core.outputs import GenerationChunk

from sm_llm._core.decoding import StreamDecoder
from sm_llm._core.pipeline import StreamAssembler
from sm_llm.handlers import ContentHandler

try:
    from langchain_aws.llms.sagemaker_endpoint import LineIterator
except ImportError:  # the "bench" extra is not installed
    LineIterator = None

ROOT = Path(__file__).resolve().parent.parent
STREAMS_DIR = ROOT / "tests" / "unit" / "data" / "streams"


# -- input -------------------------------------------------------------------------


def _make_streams() -> Any:
    spec = importlib.util.spec_from_file_location("make_streams", STREAMS_DIR / "make_streams.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tgi_events(records: int) -> tuple[list[bytes], str]:
    """SSE events (``data:{...}\\n\\n``) of a TGI stream of about ``records`` records,
    built from the recorded ``tgi.sse``; and the text it carries."""
    recorded = (STREAMS_DIR / "tgi.sse").read_bytes()
    events = [e + b"\n\n" for e in recorded.split(b"\n\n") if e]
    assert b"".join(events) == recorded, "tgi.sse should end with a newline"
    tokens = [json.loads(e[5:]) for e in events[:-1]]
    last = json.loads(events[-1][5:])
    repeats = max(1, records // len(tokens))
    out, texts = [], []
    for i in range(repeats * len(tokens)):
        obj = dict(tokens[i % len(tokens)], index=i + 1)
        texts.append(obj["token"]["text"])
        out.append(obj)
    text = "".join(texts)
    details = dict(last["details"], generated_tokens=len(out) + 1)
    out.append(dict(last, index=len(out) + 1, generated_text=text, details=details))
    dumps = _make_streams()._tgi_dumps  # TGI's compact serde_json style
    return [b"data:" + dumps(o).encode() + b"\n\n" for o in out], text


def payload_parts(events: list[bytes], seed: int = 0) -> list[bytes]:
    """Consecutive events grouped 1-3 per PayloadPart."""
    rng = random.Random(seed)
    parts, i = [], 0
    while i < len(events):
        n = rng.randint(1, 3)
        parts.append(b"".join(events[i : i + n]))
        i += n
    return parts


def _string_header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v


_PAYLOAD_HEADERS = b"".join(
    _string_header(k, v)
    for k, v in (
        (":event-type", "PayloadPart"),
        (":content-type", "application/octet-stream"),
        (":message-type", "event"),
    )
)


def payload_part_frame(payload: bytes) -> bytes:
    """One ``PayloadPart`` event-stream message (wire reference §2.1, §2.3)."""
    total = 12 + len(_PAYLOAD_HEADERS) + len(payload) + 4
    prelude = struct.pack("!II", total, len(_PAYLOAD_HEADERS))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + _PAYLOAD_HEADERS + payload
    return message + struct.pack("!I", binascii.crc32(message))


# -- the measured paths --------------------------------------------------------------


def event_payloads(frames: Iterable[bytes]) -> Iterator[bytes]:
    """(a): parse the event-stream messages; yield each one's payload bytes."""
    buffer = EventStreamBuffer()
    for chunk in frames:
        buffer.add_data(chunk)
        for message in buffer:
            yield message.payload


class _RawStream:
    """What botocore's ``EventStream`` reads: an object whose ``stream()`` yields chunks."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    def stream(self) -> Iterator[bytes]:
        return iter(self._frames)

    def close(self) -> None:
        pass


_RESPONSE_STREAM = (
    botocore.session.get_session()
    .get_service_model("sagemaker-runtime")
    .operation_model("InvokeEndpointWithResponseStream")
    .get_event_stream_output()
)


def botocore_event_stream(frames: list[bytes]) -> EventStream:
    """The ``response["Body"]`` boto3 hands over, reading ``frames``."""
    return EventStream(
        _RawStream(frames),
        _RESPONSE_STREAM,
        EventStreamJSONParser(),
        "InvokeEndpointWithResponseStream",
    )


def sm_llm_parts(frames: list[bytes]) -> Iterator[bytes]:
    """PayloadPart bytes as ``BotocoreTransport.invoke_stream`` takes them out."""
    for event in botocore_event_stream(frames):
        part = event.get("PayloadPart")
        if part is not None:
            yield part.get("Bytes", b"")


def boto_events(frames: list[bytes], events: list[dict[str, Any]]) -> int:
    return sum(len(p) for p in sm_llm_parts(frames))


def full_path_boto(frames: list[bytes], events: list[dict[str, Any]]) -> str:
    return _ours(sm_llm_parts(frames))


def line_iterator_boto(frames: list[bytes], events: list[dict[str, Any]]) -> int:
    assert LineIterator is not None
    return sum(1 for _ in LineIterator(botocore_event_stream(frames)))


def bare_events(frames: list[bytes], events: list[dict[str, Any]]) -> int:
    size = 0
    for payload in event_payloads(frames):
        size += len(payload)
    return size


def line_iterator_alone(frames: list[bytes], events: list[dict[str, Any]]) -> int:
    assert LineIterator is not None
    lines = 0
    for _ in LineIterator(events):
        lines += 1
    return lines


def events_and_line_iterator(frames: list[bytes], events: list[dict[str, Any]]) -> int:
    assert LineIterator is not None
    lines = 0
    for _ in LineIterator({"PayloadPart": {"Bytes": p}} for p in event_payloads(frames)):
        lines += 1
    return lines


def _ours(payloads: Iterable[bytes], upto: int = 4) -> str:
    """Our path over ``payloads``; ``upto`` stops after a stage (for --breakdown):
    1 decoder, 2 + parse_stream_record, 3 + StreamAssembler.add, 4 + GenerationChunk."""
    handler = ContentHandler.from_preset("tgi")
    assert handler.stream is not None
    parse = handler.parse_stream_record
    decoder = StreamDecoder(handler.stream.format)
    assembler = StreamAssembler(None)
    for payload in payloads:
        records = decoder.feed(payload)
        if upto == 1:
            continue
        for record in records:
            delta = parse(record)
            if upto == 2:
                continue
            piece = assembler.add(delta)
            if piece and upto == 4:
                GenerationChunk(text=piece)  # handed to the caller, who may drop it
        if decoder.done or assembler.stopped:
            break
    else:
        for record in decoder.close():
            if upto > 1:
                piece = assembler.add(parse(record))
                if piece and upto == 4:
                    GenerationChunk(text=piece)
    tail = assembler.finish()
    if tail and upto == 4:
        GenerationChunk(text=tail)
    return assembler.text


def full_path(frames: list[bytes], events: list[dict[str, Any]]) -> str:
    return _ours(event_payloads(frames))


def ours_without_events(frames: list[bytes], events: list[dict[str, Any]]) -> str:
    return _ours(e["PayloadPart"]["Bytes"] for e in events)


def decoder_alone(frames: list[bytes], events: list[dict[str, Any]]) -> int:
    decoder = StreamDecoder("sse")
    records = 0
    for event in events:
        records += len(decoder.feed(event["PayloadPart"]["Bytes"]))
    return records + len(decoder.close())


def _stage(upto: int) -> Callable[[list[bytes], list[dict[str, Any]]], str]:
    def run(frames: list[bytes], events: list[dict[str, Any]]) -> str:
        return _ours(event_payloads(frames), upto)

    return run


Path_ = tuple[str, str, Callable[[list[bytes], list[dict[str, Any]]], Any], bool]
PATHS: list[Path_] = [
    ("a", "bare events (EventStreamBuffer)", bare_events, False),
    ("b", "LineIterator alone (langchain-aws)", line_iterator_alone, True),
    ("b'", "events + LineIterator", events_and_line_iterator, True),
    ("c", "full path (ours)", full_path, False),
    ("d", "StreamDecoder alone, input as b", decoder_alone, False),
    ("e", "full path minus events, input as b", ours_without_events, False),
    ("A", "botocore EventStream (boto3's Body)", boto_events, False),
    ("B", "EventStream + LineIterator", line_iterator_boto, True),
    ("C", "full path (ours) over EventStream", full_path_boto, False),
]
# Cumulative stages of (c), for --breakdown: each row adds one stage to the one above.
STAGES: list[Path_] = [
    ("s1", "events + StreamDecoder", _stage(1), False),
    ("s2", "  + parse_stream_record (tgi)", _stage(2), False),
    ("s3", "  + StreamAssembler.add", _stage(3), False),
    ("c", "  + GenerationChunk (= c)", full_path, False),
]


# -- driver --------------------------------------------------------------------------


def measure(
    paths: list[Path_], runs: int, frames: list[bytes], events: list[dict[str, Any]]
) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(runs):  # interleaved: every path once per round
        for key, _, fn, needs_peer in paths:
            if needs_peer and LineIterator is None:
                continue
            gc.collect()
            start = time.perf_counter()
            fn(frames, events)
            elapsed = time.perf_counter() - start
            best[key] = min(best.get(key, elapsed), elapsed)
    return best


def _table(paths: list[Path_], best: dict[str, float], records: int, *, delta: bool) -> None:
    last = "µs added" if delta else "x (a)"
    header = f"{'':4}{'path':38}{'ms/run':>9}{'records/s':>12}{'µs/record':>11}{last:>10}"
    print(header)
    print("-" * len(header))
    previous = best["a"]
    for key, label, _, _ in paths:
        if key not in best:
            print(f"{key:4}{label:38}{'not installed (pip install langchain-aws)':>44}")
            continue
        t = best[key]
        extra = f"{(t - previous) / records * 1e6:10.2f}" if delta else f"{t / best['a']:10.2f}"
        previous = t
        print(
            f"{key:4}{label:38}{t * 1e3:9.2f}{records / t:12,.0f}{t / records * 1e6:11.2f}{extra}"
        )


def _verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "MISSED"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--records", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--breakdown", action="store_true", help="time (c) stage by stage")
    parser.add_argument("--profile", action="store_true", help="cProfile the full path")
    args = parser.parse_args(argv)

    sse_events, text = tgi_events(args.records)
    parts = payload_parts(sse_events)
    frames = [payload_part_frame(p) for p in parts]
    events = [{"PayloadPart": {"Bytes": p}} for p in parts]
    records = len(sse_events)

    # Every path must see the whole stream before it is timed.
    assert full_path(frames, events) == text
    assert ours_without_events(frames, events) == text
    assert decoder_alone(frames, events) == records
    assert bare_events(frames, events) == sum(map(len, parts))
    assert boto_events(frames, events) == sum(map(len, parts))
    assert full_path_boto(frames, events) == text
    if LineIterator is not None:
        lines = 2 * records  # the event line and the blank line after it
        assert line_iterator_alone(frames, events) == lines
        assert events_and_line_iterator(frames, events) == lines
        assert line_iterator_boto(frames, events) == lines

    best = measure([*PATHS, *(STAGES[:-1] if args.breakdown else [])], args.runs, frames, events)
    print(
        f"TGI SSE stream: {records} records, {len(parts)} PayloadParts "
        f"({records / len(parts):.2f} records/part), {sum(map(len, frames)) / 1e6:.2f} MB "
        f"framed; best of {args.runs} interleaved runs; Python {sys.version.split()[0]}"
    )
    print()
    _table(PATHS, best, records, delta=False)
    print()
    c, a = best["c"], best["a"]
    print(
        f"full path time / bare event time           c / a  = {c / a:5.2f}  target <= 1.50: {_verdict(c / a, 1.5)}"
    )
    if "b" in best:
        b = best["b"]
        print(
            f"full path time / LineIterator-alone time   c / b  = {c / b:5.2f}  target <= 1.00: {_verdict(c / b, 1.0)}"
        )
        print(f"  no event parsing in ours either:         e / b  = {best['e'] / b:5.2f}")
        print(f"  line splitting only, StreamDecoder:      d / b  = {best['d'] / b:5.2f}")
        b_events = best["b'"]
        print(f"  both behind event parsing:               c / b' = {c / b_events:5.2f}")
    else:
        print("full path time / LineIterator-alone time: LineIterator not installed")
    print("as deployed (events from boto3's EventStream):")
    print(f"  full path time / EventStream time        C / A  = {best['C'] / best['A']:5.2f}")
    if "B" in best:
        print(f"  full path time / EventStream+LineIter.   C / B  = {best['C'] / best['B']:5.2f}")

    if args.breakdown:
        print()
        print("where the time of (c) goes (each row adds one stage):")
        _table([PATHS[0], *STAGES], best, records, delta=True)

    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(full_path, frames, events)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(25)
        print()
        print(out.getvalue())


if __name__ == "__main__":
    main()
