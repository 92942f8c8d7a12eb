"""sm_llm.transports.eventstream against botocore's own decoder (``EventStreamBuffer`` and the
``EventStream`` that boto3 hands over): the same messages, events and errors."""

from __future__ import annotations

import itertools
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import eventstream as bes
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser
from hypothesis import given, settings
from hypothesis import strategies as st

from sm_llm.errors import StreamError
from sm_llm.local._eventstream import encode_frame, error_frame, exception_frame, payload_part
from sm_llm.transports import mapping
from sm_llm.transports.eventstream import (
    MAX_HEADERS_LENGTH,
    MAX_PAYLOAD_LENGTH,
    EventStreamDecodeError,
    EventStreamDecoder,
    stream_error,
)

SETTINGS = settings(
    max_examples=int(os.environ.get("SM_LLM_HYPOTHESIS_EXAMPLES", "200")), deadline=None
)
STREAMS = Path(__file__).parent / "data" / "streams"
OPERATION = "InvokeEndpointWithResponseStream"

# botocore's exception class -> our EventStreamDecodeError.reason, one to one.
BOTOCORE_TO_OURS: dict[type[BaseException], str] = {
    bes.ChecksumMismatch: "checksum",
    bes.InvalidHeadersLength: "headers_length",
    bes.InvalidPayloadLength: "payload_length",
    bes.DuplicateHeader: "duplicate_header",
    KeyError: "header_format",  # botocore's header parser on an unknown type code
}


# -- an encoder for every header type (the local endpoint's writes strings only) ---------


def header(name: str, kind: int, value: Any) -> bytes:
    raw = name.encode()
    head = bytes([len(raw)]) + raw + bytes([kind])
    if kind in (0, 1):
        return head
    if kind in (6, 7):
        data = value.encode() if kind == 7 else value
        return head + struct.pack("!H", len(data)) + data
    if kind == 9:
        return head + value
    fmt = {2: "!b", 3: "!h", 4: "!i", 5: "!q", 8: "!q"}[kind]
    return head + struct.pack(fmt, value)


def frame(header_block: bytes, payload: bytes, *, total: int | None = None,
          headers_length: int | None = None) -> bytes:
    """One message; ``total``/``headers_length`` override the true lengths (CRCs stay valid)."""
    total = 16 + len(header_block) + len(payload) if total is None else total
    hl = len(header_block) if headers_length is None else headers_length
    prelude = struct.pack("!II", total, hl)
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + header_block + payload
    return message + struct.pack("!I", zlib.crc32(message))


# -- the two decoders, side by side ------------------------------------------------------

Messages = list[tuple[dict[str, Any], bytes]]


def botocore_decode(chunks: list[bytes]) -> tuple[Messages, BaseException | None]:
    buffer = EventStreamBuffer()
    out: Messages = []
    try:
        for chunk in chunks:
            buffer.add_data(chunk)
            out += [(m.headers, m.payload) for m in buffer]
    except Exception as exc:
        return out, exc
    return out, None


def our_decode(chunks: list[bytes]) -> tuple[Messages, EventStreamDecodeError | None]:
    decoder = EventStreamDecoder()
    out: Messages = []
    try:
        for chunk in chunks:
            out += [(dict(ev.headers), ev.payload) for ev in decoder.feed(chunk)]
        decoder.close()
    except EventStreamDecodeError as exc:
        return out, exc
    return out, None


def assert_same(chunks: list[bytes]) -> Messages:
    theirs, their_error = botocore_decode(chunks)
    ours, our_error = our_decode(chunks)
    assert ours == theirs
    assert [list(map(type, h.values())) for h, _ in ours] == [
        list(map(type, h.values())) for h, _ in theirs
    ]
    if their_error is None:
        assert our_error is None
    else:
        assert our_error is not None, their_error
        assert our_error.reason == BOTOCORE_TO_OURS[type(their_error)]
    return ours


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- botocore's EventStream (the parsed events boto3 yields) ------------------------------


class _Raw:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self) -> Any:
        return iter(self.chunks)

    def close(self) -> None:
        pass


_SHAPE = (
    botocore.session.get_session().get_service_model("sagemaker-runtime")
    .operation_model(OPERATION).get_event_stream_output()
)


def boto3_events(data: bytes) -> tuple[list[dict[str, Any]], BaseException | None]:
    events: list[dict[str, Any]] = []
    try:
        for event in EventStream(_Raw([data]), _SHAPE, EventStreamJSONParser(), OPERATION):
            events.append(event)
    except EventStreamError as exc:
        return events, exc
    return events, None


# -- (a) recorded streams -----------------------------------------------------------------


def recorded_stream(name: str, per_part: int = 2) -> bytes:
    records = [r for r in (STREAMS / name).read_bytes().splitlines(keepends=True)]
    parts = [b"".join(records[i : i + per_part]) for i in range(0, len(records), per_part)]
    return b"".join(payload_part(p) for p in parts)


RECORDED = sorted(p.name for p in STREAMS.iterdir() if p.suffix in (".sse", ".jsonl"))
ENDINGS = {
    "clean": b"",
    "model_stream_error": exception_frame(
        "ModelStreamError", {"Message": "Your model primary did not complete sending the "
                             "inference response in the allotted time.",
                             "ErrorCode": "ModelInvocationTimeExceeded"}),
    "model_stream_error_no_message": exception_frame("ModelStreamError", {"ErrorCode": "StreamBroken"}),
    "internal_stream_failure": exception_frame("InternalStreamFailure", {"Message": "internal"}),
    "unknown_exception": exception_frame("SomethingNew", {"Message": "x"}),
    "exception_not_json": encode_frame({":exception-type": "ModelStreamError",
                                        ":message-type": "exception"}, b"not json"),
    "error_frame_throttling": error_frame("ThrottlingException", "slow down"),
    "error_frame_validation": error_frame("ValidationError", "Endpoint x of account 1 not found."),
    "error_frame_other": error_frame("Mystery", "m" * 3000),
    "unknown_event_type": encode_frame({":event-type": "Other", ":message-type": "event"}, b"z"),
}


@pytest.mark.parametrize("name", RECORDED)
@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_recorded_streams_decode_as_botocore_does(name: str, ending: str) -> None:
    data = recorded_stream(name) + ENDINGS[ending] + payload_part(b"after")
    messages = assert_same([data])
    assert assert_same(cut(data, list(range(7, len(data), 97)))) == messages
    # The events and the error, as boto3's EventStream gives them and map_error maps them.
    their_events, their_error = boto3_events(data)
    decoder = EventStreamDecoder()
    ours = decoder.feed(data)
    decoder.close()
    parts = [ev.payload for ev in ours if ev.kind == "PayloadPart" and not ev.is_error]
    assert parts[: len(their_events)] == [ev["PayloadPart"]["Bytes"] for ev in their_events
                                          if "PayloadPart" in ev]
    errors = [ev for ev in ours if ev.is_error]
    if their_error is None:
        assert not errors
        return
    assert errors[0].error_response() == their_error.response
    expected = mapping.map_error(their_error, OPERATION, "ep", in_stream=True)
    got = stream_error(errors[0], OPERATION, "ep")
    assert type(got) is type(expected)
    assert (str(got), got.status_code, got.error_code, got.request_id) == (
        str(expected), expected.status_code, expected.error_code, expected.request_id)
    with_partial = stream_error(errors[0], OPERATION, None, partial_text="so far")
    expected = mapping.map_error(their_error, OPERATION, None, partial_text="so far",
                                    in_stream=True)
    assert type(with_partial) is type(expected) and str(with_partial) == str(expected)


def test_model_stream_error_fields() -> None:
    ev = EventStreamDecoder().feed(ENDINGS["model_stream_error"])[0]
    assert (ev.kind, ev.is_error, ev.error_code) == ("ModelStreamError", True,
                                                     "ModelInvocationTimeExceeded")
    assert ev.message and ev.message.startswith("Your model primary")
    failure = EventStreamDecoder().feed(ENDINGS["internal_stream_failure"])[0]
    assert (failure.kind, failure.message, failure.error_code) == (
        "InternalStreamFailure", "internal", None)
    error = stream_error(ev, OPERATION, "ep")
    assert isinstance(error, StreamError) and error.error_code == "ModelStreamError"


def test_payload_part_fast_path_and_general_parser_agree() -> None:
    reordered = encode_frame({":message-type": "event", ":event-type": "PayloadPart",
                              ":content-type": "application/octet-stream"}, b"abc")
    fast, general = EventStreamDecoder().feed(payload_part(b"abc") + reordered)
    assert (fast.kind, fast.payload, dict(fast.headers)) == (
        general.kind, general.payload, dict(general.headers))


# -- (b) hypothesis frames, split everywhere ----------------------------------------------

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
    lambda s: len(s.encode()) < 256)
values: dict[int, st.SearchStrategy[Any]] = {
    0: st.just(True), 1: st.just(False),
    2: st.integers(-(2**7), 2**7 - 1), 3: st.integers(-(2**15), 2**15 - 1),
    4: st.integers(-(2**31), 2**31 - 1), 5: st.integers(-(2**63), 2**63 - 1),
    6: st.binary(max_size=40), 7: st.text(st.characters(codec="utf-8"), max_size=20),
    8: st.integers(-(2**63), 2**63 - 1), 9: st.binary(min_size=16, max_size=16),
}


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    chosen = draw(st.dictionaries(names, st.integers(0, 9), max_size=8))
    block = b"".join(header(n, k, draw(values[k])) for n, k in chosen.items())
    return frame(block, draw(st.binary(max_size=64)))


@SETTINGS
@given(st.lists(frames(), min_size=1, max_size=3))
def test_generated_frames_split_at_every_offset(stream: list[bytes]) -> None:
    data = b"".join(stream)
    whole = assert_same([data])
    assert len(whole) == len(stream)
    for i in range(len(data) + 1):
        assert assert_same([data[:i], data[i:]]) == whole


@SETTINGS
@given(st.lists(frames(), min_size=1, max_size=6),
       st.lists(st.integers(0, 1 << 16), max_size=40))
def test_generated_frames_split_anywhere(stream: list[bytes], points: list[int]) -> None:
    data = b"".join(stream)
    assert len(assert_same(cut(data, points))) == len(stream)
    assert len(assert_same([bytes([b]) for b in data])) == len(stream)


# -- (c) corruption -----------------------------------------------------------------------


@SETTINGS
@given(st.lists(frames(), min_size=1, max_size=3), st.data())
def test_any_flipped_byte_is_rejected_by_both(stream: list[bytes], data: st.DataObject) -> None:
    which = data.draw(st.integers(0, len(stream) - 1))
    target = bytearray(stream[which])
    where = data.draw(st.sampled_from(["total", "headers_length", "prelude_crc", "headers",
                                       "payload", "message_crc", "anywhere"]))
    hl = struct.unpack_from("!I", target, 4)[0]
    span = {"total": (0, 4), "headers_length": (4, 8), "prelude_crc": (8, 12),
            "headers": (12, 12 + hl), "payload": (12 + hl, len(target) - 4),
            "message_crc": (len(target) - 4, len(target)), "anywhere": (0, len(target))}[where]
    if span[0] >= span[1]:
        span = (0, len(target))
    target[data.draw(st.integers(*span[:1], span[1] - 1))] ^= data.draw(st.integers(1, 255))
    corrupted = b"".join([*stream[:which], bytes(target), *stream[which + 1:]])
    chunks = cut(corrupted, data.draw(st.lists(st.integers(0, 1 << 12), max_size=5)))
    _, their_error = botocore_decode(chunks)
    ours, our_error = our_decode(chunks)
    assert type(their_error) is bes.ChecksumMismatch
    assert our_error is not None and our_error.reason == "checksum"
    assert len(ours) == which  # the frames before it were delivered first
    assert isinstance(our_error, StreamError)


PP = header(":event-type", 7, "PayloadPart") + header(":message-type", 7, "event")
CRAFTED: dict[str, tuple[bytes, str]] = {
    # valid CRCs, bad structure: botocore's outcome mapped by BOTOCORE_TO_OURS
    "headers_length_over_limit": (frame(b"\x00" * (MAX_HEADERS_LENGTH + 1), b""),
                                  "headers_length"),
    "payload_over_limit": (frame(PP, b"\x00" * (MAX_PAYLOAD_LENGTH + 1)), "payload_length"),
    "duplicate_header": (frame(PP + header(":message-type", 7, "x"), b""), "duplicate_header"),
    "unknown_header_type": (frame(PP + b"\x01a\x0a", b""), "header_format"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_malformed_frames_are_rejected_by_both(case: str) -> None:
    data, reason = CRAFTED[case]
    _, their_error = botocore_decode([data])
    _, our_error = our_decode([data])
    assert their_error is not None and BOTOCORE_TO_OURS[type(their_error)] == reason
    assert our_error is not None and our_error.reason == reason


STRICTER: dict[str, tuple[bytes, str]] = {
    # botocore accepts these (garbage headers, or a message cut from its neighbour) or
    # fails with a bare Python error; we refuse them with a reason.
    "total_below_headers": (frame(PP, b"", total=16 + len(PP) - 1), "total_length"),
    "total_twelve": (frame(b"", b"", total=12), "total_length"),
    "string_past_block": (frame(header("a", 7, "abc")[:-1], b"xyz"), "header_format"),
    "uuid_past_block": (frame(header("u", 9, b"\x00" * 16)[:-3], b""), "header_format"),
    "int_past_block": (frame(header("i", 5, 7)[:-1], b""), "header_format"),
    "name_past_block": (frame(b"\x09ab", b""), "header_format"),
    "name_not_utf8": (frame(b"\x01\xff\x00", b""), "header_format"),
    "string_not_utf8": (frame(b"\x01s\x07\x00\x01\xff", b""), "header_format"),
}


@pytest.mark.parametrize("case", sorted(STRICTER))
def test_stricter_than_botocore_on_inconsistent_frames(case: str) -> None:
    data, reason = STRICTER[case]
    _, our_error = our_decode([data + payload_part(b"next")])
    assert our_error is not None and our_error.reason == reason


# -- (d) bounds, truncation, state --------------------------------------------------------


def test_a_1_gib_frame_is_refused_on_its_prelude() -> None:
    prelude = struct.pack("!II", 1 << 30, 0)
    prelude += struct.pack("!I", zlib.crc32(prelude))
    _, their_error = botocore_decode([prelude])
    assert type(their_error) is bes.InvalidPayloadLength
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamDecodeError) as caught:
        decoder.feed(prelude)
    assert caught.value.reason == "payload_length"
    assert decoder.buffered == 0  # nothing of it buffered
    with pytest.raises(EventStreamDecodeError):  # the decoder stays failed
        decoder.feed(payload_part(b"x"))


def test_largest_allowed_frame_is_accepted() -> None:
    data = frame(PP, b"\x01" * MAX_PAYLOAD_LENGTH)
    ours = assert_same(cut(data, [5, 1000, 1 << 20]))
    assert len(ours[0][1]) == MAX_PAYLOAD_LENGTH


@pytest.mark.parametrize("cut_at", [1, 11, 12, 20, -1])
def test_a_stream_ending_inside_a_frame_fails_at_close(cut_at: int) -> None:
    data = payload_part(b"whole") + payload_part(b"cut")
    end = len(payload_part(b"whole")) + cut_at if cut_at > 0 else len(data) + cut_at
    decoder = EventStreamDecoder()
    assert [ev.payload for ev in decoder.feed(data[:end])] == [b"whole"]
    with pytest.raises(EventStreamDecodeError) as caught:
        decoder.close()
    assert caught.value.reason == "truncated" and isinstance(caught.value, StreamError)


def test_events_before_a_bad_frame_come_first_then_the_error() -> None:
    bad = bytearray(payload_part(b"bad"))
    bad[-1] ^= 1
    decoder = EventStreamDecoder()
    assert [ev.payload for ev in decoder.feed(payload_part(b"ok") + bytes(bad))] == [b"ok"]
    with pytest.raises(EventStreamDecodeError) as caught:
        decoder.close()
    assert caught.value.reason == "checksum" and "message checksum" in str(caught.value)


def test_error_event_fields_survive_json_edge_cases() -> None:
    for body, message in ((b"", ""), (b"[1]", ""), (b'{"Message": 5}', "5"),
                          (json.dumps({"message": "lower"}).encode(), "")):
        data = encode_frame({":exception-type": "InternalStreamFailure",
                             ":message-type": "exception"}, body)
        (event,) = EventStreamDecoder().feed(data)
        assert (event.is_error, event.message) == (True, message)
