"""The event-stream encoder against the wire-doc test vector and botocore's decoder."""

from __future__ import annotations

import json
import random

from botocore.eventstream import EventStreamBuffer

from sm_llm.local._eventstream import (
    chunked,
    encode_frame,
    error_frame,
    exception_frame,
    payload_part,
)

VECTOR = (
    "0000006b00000059997770650b3a6576656e742d7479706507000b5061796c6f6164506172740d3a636f6e74"
    "656e742d747970650700186170706c69636174696f6e2f6f637465742d73747265616d0d3a6d657373616765"
    "2d747970650700056576656e746869f0e10a16"
)


def _decode(data: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(message.headers, message.payload) for message in buffer]


def test_payload_part_matches_test_vector() -> None:
    frame = payload_part(b"hi")
    assert len(frame) == 107
    assert frame.hex() == VECTOR


def test_botocore_decodes_payload_parts_of_any_size() -> None:
    rng = random.Random(7)
    payloads = [bytes(rng.randrange(256) for _ in range(n)) for n in (0, 1, 17, 4096, 70000)]
    decoded = _decode(b"".join(payload_part(p) for p in payloads))
    assert [payload for _, payload in decoded] == payloads
    assert all(headers[":event-type"] == "PayloadPart" for headers, _ in decoded)
    assert all(headers[":message-type"] == "event" for headers, _ in decoded)


def test_decoder_accepts_frames_fed_byte_by_byte() -> None:
    data = payload_part("héllo ✓".encode()) + payload_part(b"x")
    buffer = EventStreamBuffer()
    messages = []
    for i in range(len(data)):
        buffer.add_data(data[i : i + 1])
        messages.extend(buffer)
    assert [m.payload for m in messages] == ["héllo ✓".encode(), b"x"]


def test_exception_frame() -> None:
    frame = exception_frame("ModelStreamError", {"Message": "boom", "ErrorCode": "StreamBroken"})
    ((headers, payload),) = _decode(frame)
    assert headers == {
        ":exception-type": "ModelStreamError",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    assert json.loads(payload) == {"Message": "boom", "ErrorCode": "StreamBroken"}


def test_error_frame_and_unicode_headers() -> None:
    ((headers, payload),) = _decode(error_frame("Oops", "bad ✓"))
    assert headers == {":error-code": "Oops", ":error-message": "bad ✓", ":message-type": "error"}
    assert payload == b""
    ((headers, _),) = _decode(encode_frame({"k": "v"}, b""))
    assert headers == {"k": "v"}


def test_chunked() -> None:
    assert chunked(b"abc") == b"3\r\nabc\r\n"
    assert chunked(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert chunked(b"") == b"0\r\n\r\n"
