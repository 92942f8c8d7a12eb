"""StreamDecoder against recorded container streams, re-split at every byte."""

from __future__ import annotations

import importlib.util
import itertools
import json
import random
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from sm_llm._core.decoding import StreamDecoder, StreamFormat
from sm_llm.errors import StreamError

STREAMS_DIR = Path(__file__).parent / "data" / "streams"


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "sm_llm_test_make_streams", STREAMS_DIR / "make_streams.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make_streams = _load_generator()
STREAMS: dict[str, Any] = make_streams.build()
NAMES = sorted(STREAMS)


def decode(fmt: StreamFormat, parts: Iterable[bytes], **kwargs: Any) -> list[str]:
    """Feed every part, then close; all records in order."""
    decoder = StreamDecoder(fmt, **kwargs)
    out: list[str] = []
    for part in parts:
        out += decoder.feed(part)
    out += decoder.close()
    return out


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def token_text(records: list[str]) -> str:
    """Token text of TGI/LMI/OpenAI records (the real extraction lives elsewhere)."""
    out = []
    for record in records:
        obj = json.loads(record)
        if "token" in obj:
            tok = obj["token"]
            if not (tok.get("special") or tok.get("special_token")):
                out.append(tok["text"])
        elif obj.get("choices"):
            out.append(obj["choices"][0]["delta"].get("content") or "")
    return "".join(out)


def recorded(name: str) -> tuple[StreamFormat, bytes, list[str]]:
    stream = STREAMS[name]
    return stream.format, (STREAMS_DIR / name).read_bytes(), stream.records


# ---------------------------------------------------------------- recordings


def test_recordings_are_current() -> None:
    on_disk = {p.name for p in STREAMS_DIR.iterdir() if p.suffix in (".sse", ".jsonl")}
    assert on_disk == set(STREAMS)
    for name, stream in STREAMS.items():
        assert (STREAMS_DIR / name).read_bytes() == stream.data, name
    index = json.loads((STREAMS_DIR / "index.json").read_text(encoding="utf-8"))
    assert set(index) == set(STREAMS)


def test_recordings_are_hostile() -> None:
    data = (STREAMS_DIR / "tgi.sse").read_bytes()
    for needle in ("🦜🔥", "你好世界", "e\u0301", "\u2028", '\\"quoted\\"', "back\\\\slash"):
        assert needle.encode() in data, needle
    assert b"\\u2028" in (STREAMS_DIR / "lmi_chat.jsonl").read_bytes()
    assert "\u2028" in make_streams.TEXT


@pytest.mark.parametrize("name", NAMES)
def test_whole_stream(name: str) -> None:
    fmt, data, expected = recorded(name)
    records = decode(fmt, [data])
    assert records == expected
    assert token_text(records) == make_streams.TEXT
    finals = [json.loads(r).get("generated_text") for r in records]
    if any(finals):
        assert finals[-1] == make_streams.TEXT


@pytest.mark.parametrize("name", NAMES)
def test_every_single_split(name: str) -> None:
    fmt, data, expected = recorded(name)
    for cut in range(len(data) + 1):
        assert decode(fmt, [data[:cut], data[cut:]]) == expected, cut


@pytest.mark.parametrize("name", NAMES)
def test_one_byte_at_a_time(name: str) -> None:
    fmt, data, expected = recorded(name)
    records = decode(fmt, (data[i : i + 1] for i in range(len(data))))
    assert records == expected
    assert token_text(records) == make_streams.TEXT


@pytest.mark.parametrize("name", NAMES)
def test_random_multi_splits(name: str) -> None:
    fmt, data, expected = recorded(name)
    for seed in range(200):
        rng = random.Random(seed)
        cuts = [rng.randrange(len(data) + 1) for _ in range(rng.randint(1, 20))]
        assert decode(fmt, split_at(data, cuts)) == expected, (seed, cuts)


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith(".sse")])
def test_done_flag_matches_recording(name: str) -> None:
    _, data, _ = recorded(name)
    decoder = StreamDecoder("sse")
    decoder.feed(data)
    assert decoder.done == data.rstrip().endswith(b"[DONE]")


def test_jsonl_stream_declared_as_sse_still_decodes() -> None:
    _, data, expected = recorded("lmi.jsonl")
    assert decode("sse", [data]) == expected


# ---------------------------------------------------------------- SSE rules


@pytest.mark.parametrize("done", [b"data: [DONE]", b"data:[DONE]", b"data: [DONE]  \r"])
def test_done_ends_stream_and_ignores_the_rest(done: bytes) -> None:
    data = b'data: {"a":1}\n\n' + done + b'\n\ndata: {"b":2}\n\n\xff\xfe garbage'
    for cut in range(len(data) + 1):
        decoder = StreamDecoder("sse")
        out = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert decoder.done
        out += decoder.feed(b'data: {"c":3}\n') + decoder.close()
        assert out == ['{"a":1}']


def test_done_without_trailing_newline_is_seen_on_close() -> None:
    decoder = StreamDecoder("sse")
    assert decoder.feed(b'data:{"a":1}\n\ndata:[DONE]') == ['{"a":1}']
    assert not decoder.done
    assert decoder.close() == []
    assert decoder.done


def test_sse_ignores_fields_comments_and_blank_lines() -> None:
    data = (
        b": keep-alive\n\nevent: token\nid: 7\nretry: 1000\nevent\nid\n\n"
        b"data\ndata:\ndata: \n:\n \t \n\r\ndata: x\n"
    )
    assert decode("sse", [data]) == ["x"]


def test_sse_strips_exactly_one_space() -> None:
    data = b"data:a\ndata: b\ndata:  c\ndata:\td\n"
    assert decode("sse", [data]) == ["a", "b", " c", "\td"]


def test_sse_data_lines_are_not_joined() -> None:
    assert decode("sse", [b'data: {"a":1}\ndata: {"b":2}\n\n']) == ['{"a":1}', '{"b":2}']


def test_sse_bare_lines_are_records() -> None:
    data = b'{"token":{"text":"x"}}\n[DONE]\nfoo: bar\n'
    assert decode("sse", [data]) == ['{"token":{"text":"x"}}', "[DONE]", "foo: bar"]


# ---------------------------------------------------------------- line rules


@pytest.mark.parametrize("fmt", ["sse", "jsonl"])
def test_no_trailing_newline_is_flushed_on_close(fmt: StreamFormat) -> None:
    prefix = b"data: " if fmt == "sse" else b""
    decoder = StreamDecoder(fmt)
    assert decoder.feed(prefix + b'{"a":1}\n' + prefix + b'{"b":') == ['{"a":1}']
    assert decoder.feed(b"2}") == []
    assert decoder.close() == ['{"b":2}']


def test_jsonl_keeps_data_prefix_and_skips_blank_lines() -> None:
    data = b'\n  \n\t\r\n{"a":1}\r\ndata: {"b":2}\n\n'
    assert decode("jsonl", [data]) == ['{"a":1}', 'data: {"b":2}']


@pytest.mark.parametrize("fmt", ["sse", "jsonl"])
def test_only_newline_ends_a_line(fmt: StreamFormat) -> None:
    # str.splitlines() would split on every one of these.
    value = '{"t":"a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei\rj"}'
    prefix = "data:" if fmt == "sse" else ""
    data = (prefix + value + "\n").encode()
    for cut in range(len(data) + 1):
        assert decode(fmt, [data[:cut], data[cut:]]) == [value]


@pytest.mark.parametrize("fmt", ["sse", "jsonl", "raw"])
def test_empty_feeds_change_nothing(fmt: StreamFormat) -> None:
    decoder = StreamDecoder(fmt)
    assert decoder.feed(b"") == []
    assert decoder.close() == []
    data = b'data: {"a":"\xe4\xbd\xa0"}\n'
    parts = [b"", data[:3], b"", b"", data[3:], b""]
    assert "".join(decode(fmt, parts)) == "".join(decode(fmt, [data]))


@pytest.mark.parametrize("fmt", ["sse", "jsonl"])
@pytest.mark.parametrize("data", [b"", b"\n", b"\n\n\n", b"\r\n\r\n", b"  \n\t\n", b" "])
def test_blank_only_streams(fmt: StreamFormat, data: bytes) -> None:
    assert decode(fmt, [data]) == []
    assert decode(fmt, [data[i : i + 1] for i in range(len(data))]) == []


@pytest.mark.parametrize("fmt", ["sse", "jsonl"])
def test_invalid_utf8_raises_after_the_good_records(fmt: StreamFormat) -> None:
    data = b'{"a":1}\n{"b":"\xff"}\n{"c":3}\n'
    for cut in range(len(data) + 1):
        decoder = StreamDecoder(fmt)
        out: list[str] = []
        with pytest.raises(StreamError, match="invalid UTF-8"):
            for part in (data[:cut], data[cut:]):
                out += decoder.feed(part)
            out += decoder.close()
        assert out == ['{"a":1}'], cut


def test_invalid_utf8_in_unterminated_last_line() -> None:
    decoder = StreamDecoder("jsonl")
    assert decoder.feed(b"{}\n\xc3(") == ["{}"]
    with pytest.raises(StreamError):
        decoder.close()


# ---------------------------------------------------------------- bounded memory


@pytest.mark.parametrize("fmt", ["sse", "jsonl"])
def test_unterminated_record_over_limit_raises(fmt: StreamFormat) -> None:
    decoder = StreamDecoder(fmt, max_record_bytes=100)
    assert decoder.feed(b"x" * 60) == []
    with pytest.raises(StreamError, match="max_record_bytes=100"):
        decoder.feed(b"x" * 41)
    with pytest.raises(StreamError):  # final: the decoder stays failed
        decoder.feed(b"\n")
    with pytest.raises(StreamError):
        decoder.close()


def test_record_of_exactly_the_limit_is_fine() -> None:
    assert decode("jsonl", [b"x" * 100 + b"\n", b"y" * 100], max_record_bytes=100) == [
        "x" * 100,
        "y" * 100,
    ]


@pytest.mark.parametrize("fmt", ["sse", "jsonl"])
def test_oversized_record_error_is_split_independent(fmt: StreamFormat) -> None:
    data = b"a\nbb\n" + b"z" * 50 + b"\nc\n"
    for cuts in [[], *([i] for i in range(len(data) + 1)), list(range(len(data)))]:
        decoder = StreamDecoder(fmt, max_record_bytes=10)
        out: list[str] = []
        with pytest.raises(StreamError, match="max_record_bytes"):
            for part in split_at(data, cuts):
                out += decoder.feed(part)
            out += decoder.close()
        assert out == ["a", "bb"], cuts


def test_oversized_data_after_done_is_ignored() -> None:
    data = b"data: a\ndata: [DONE]\n" + b"z" * 50 + b"\n" + b"z" * 50
    for cut in range(len(data) + 1):
        assert decode("sse", [data[:cut], data[cut:]], max_record_bytes=20) == ["a"]


def test_many_small_parts_of_one_big_record_stay_linear() -> None:
    record = b'{"t":"' + "你".encode() * 100_000 + b'"}'
    parts = [record[i : i + 7] for i in range(0, len(record), 7)]
    assert decode("jsonl", [*parts, b"\n"]) == [record.decode()]


# ---------------------------------------------------------------- raw


def test_raw_every_split_inside_multibyte_characters() -> None:
    text = "a🦜b你好\u0301é🔥"
    data = text.encode()
    for cut in range(len(data) + 1):
        decoder = StreamDecoder("raw")
        pieces = decoder.feed(data[:cut]) + decoder.feed(data[cut:]) + decoder.close()
        assert "".join(pieces) == text
        assert "\ufffd" not in "".join(pieces)
    assert "".join(decode("raw", (data[i : i + 1] for i in range(len(data))))) == text


def test_raw_returns_text_as_soon_as_characters_complete() -> None:
    decoder = StreamDecoder("raw")
    assert decoder.feed(b"ok\xf0\x9f") == ["ok"]
    assert decoder.feed(b"\xa6") == []
    assert decoder.feed(b"\x9c!") == ["🦜!"]
    assert decoder.close() == []
    assert not decoder.done


def test_raw_ending_inside_a_character_raises() -> None:
    decoder = StreamDecoder("raw")
    assert decoder.feed(b"ok\xf0\x9f") == ["ok"]
    with pytest.raises(StreamError, match="invalid UTF-8"):
        decoder.close()


def test_raw_invalid_byte_raises_after_the_good_text() -> None:
    decoder = StreamDecoder("raw")
    assert decoder.feed(b"ab\xffcd") == ["ab"]
    with pytest.raises(StreamError):
        decoder.feed(b"more")


def test_raw_keeps_framing_verbatim() -> None:
    data = b"data: x\r\n\n: y\ndata: [DONE]\n"
    assert "".join(decode("raw", [data])) == data.decode()


# ---------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("fmt", ["sse", "jsonl", "raw"])
def test_feeding_after_close_raises(fmt: StreamFormat) -> None:
    decoder = StreamDecoder(fmt)
    decoder.feed(b"data: a\n")
    decoder.close()
    assert decoder.close() == []
    with pytest.raises(StreamError, match="after close"):
        decoder.feed(b"data: b\n")
    with pytest.raises(StreamError):
        decoder.feed(b"")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="stream_format"):
        StreamDecoder("json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_record_bytes"):
        StreamDecoder("jsonl", max_record_bytes=0)
