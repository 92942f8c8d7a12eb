"""Event-stream frame decoding: µs per event, sm_llm's decoder against botocore's.

Run ``.venv/bin/python bench/eventstream_decode.py [--events N] [--runs N]``.

The input is ``--events`` (default 4,000) ``PayloadPart`` frames, each carrying one TGI
token record (``data:{...}\\n\\n``, about 130 bytes), framed by the local endpoint's
encoder. Two deliveries: one frame per read (as a chunked body usually arrives) and
64 KiB reads (frames split anywhere). Measured, best of ``--runs`` interleaved runs:

- ours: ``sm_llm.transports.eventstream.EventStreamDecoder.feed`` (CRC-checked, headers parsed),
  taking each event's payload;
- botocore ``EventStreamBuffer``: ``add_data`` + iteration, taking each message's payload
  (what today's transport pays per event before its response parser);
- botocore ``EventStream``: the ``Body`` boto3 returns, which also runs the response
  parser per event (the whole per-event cost of today's transport).

No server, no network. Target (issue 15): under 1 µs per event for ours.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable, Iterator

import _common as c
import botocore.session
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.parsers import EventStreamJSONParser

from sm_llm.local._eventstream import payload_part
from sm_llm.transports.eventstream import EventStreamDecoder

OPERATION = "InvokeEndpointWithResponseStream"
_SHAPE = (
    botocore.session.get_session().get_service_model("sagemaker-runtime")
    .operation_model(OPERATION).get_event_stream_output()
)


def frames(events: int) -> tuple[list[bytes], int]:
    """``events`` PayloadPart frames, one TGI token record each; and their payload bytes."""
    out, payload = [], 0
    for i in range(events):
        record = {"index": i, "token": {"id": 1000 + i % 97, "text": " token", "logprob": -0.25,
                                        "special": False}, "generated_text": None,
                  "details": None}
        data = b"data:" + json.dumps(record, separators=(",", ":")).encode() + b"\n\n"
        out.append(payload_part(data))
        payload += len(data)
    return out, payload


def reads(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours(chunks: list[bytes]) -> int:
    decoder = EventStreamDecoder()
    total = 0
    for chunk in chunks:
        for event in decoder.feed(chunk):
            total += len(event.payload)
    decoder.close()
    return total


def event_stream_buffer(chunks: list[bytes]) -> int:
    buffer = EventStreamBuffer()
    total = 0
    for chunk in chunks:
        buffer.add_data(chunk)
        for message in buffer:
            total += len(message.payload)
    return total


class _Raw:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def stream(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        pass


def event_stream(chunks: list[bytes]) -> int:
    total = 0
    for event in EventStream(_Raw(chunks), _SHAPE, EventStreamJSONParser(), OPERATION):
        total += len(event["PayloadPart"]["Bytes"])
    return total


CONTENDERS: list[tuple[str, Callable[[list[bytes]], int]]] = [
    ("ours (EventStreamDecoder)", ours),
    ("botocore EventStreamBuffer", event_stream_buffer),
    ("botocore EventStream (boto3 Body)", event_stream),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)

    stream, expected = frames(args.events)
    deliveries = {"one frame per read": stream, "64 KiB reads": reads(b"".join(stream), 65_536)}
    best: dict[tuple[str, str], float] = {}
    for chunks in deliveries.values():
        for _, fn in CONTENDERS:
            assert fn(chunks) == expected, fn.__name__
    for _ in range(args.runs):  # interleaved: every contender once per round
        for delivery, chunks in deliveries.items():
            for name, fn in CONTENDERS:
                gc.collect()
                start = time.perf_counter()
                fn(chunks)
                elapsed = time.perf_counter() - start
                key = (delivery, name)
                best[key] = min(best.get(key, elapsed), elapsed)

    print(f"{args.events} PayloadPart events, {sum(map(len, stream)) / 1e3:.0f} kB framed; "
          f"best of {args.runs} interleaved runs; {c.machine()}; load {c.load()}")
    for delivery in deliveries:
        print()
        print(f"{delivery}:")
        ref = best[(delivery, CONTENDERS[1][0])] / args.events * 1e6
        for name, _ in CONTENDERS:
            us = best[(delivery, name)] / args.events * 1e6
            print(f"  {name:36}{us:8.2f} µs/event   {us / ref:5.2f}x EventStreamBuffer")
        ours_us = best[(delivery, CONTENDERS[0][0])] / args.events * 1e6
        print(f"  ours / EventStreamBuffer = {ours_us / ref:.3f} "
              f"(EventStreamBuffer is {ref / ours_us:.1f}x slower); "
              f"target ours < 1 µs/event: {'met' if ours_us < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
