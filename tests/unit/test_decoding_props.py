"""Property tests: StreamDecoder output never depends on where the bytes are split."""

from __future__ import annotations

import itertools
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sm_llm._core.decoding import StreamDecoder, StreamFormat
from sm_llm.errors import StreamError

SETTINGS = settings(
    max_examples=int(os.environ.get("SM_LLM_HYPOTHESIS_EXAMPLES", "200")), deadline=None
)

token_text = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"))


@st.composite
def json_records(draw: st.DrawFn) -> list[str]:
    """JSON records as TGI/LMI/OpenAI would send them (raw UTF-8, no newline)."""
    texts = draw(st.lists(token_text, max_size=12))
    shape = draw(st.sampled_from(["tgi", "lmi", "chat", "string"]))
    compact = draw(st.booleans())
    ascii_only = draw(st.booleans())
    sep = (",", ":") if compact else (", ", ": ")
    out = []
    for i, text in enumerate(texts):
        obj: object
        if shape == "tgi":
            obj = {"index": i, "token": {"id": i, "text": text, "special": False}}
        elif shape == "lmi":
            obj = {"token": {"id": i, "text": text, "log_prob": -0.5}}
        elif shape == "chat":
            obj = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": text}}]}
        else:
            obj = text
        out.append(json.dumps(obj, ensure_ascii=ascii_only, separators=sep))
    return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


split_points = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=30)


def decode(fmt: StreamFormat, parts: list[bytes], **kwargs: int) -> list[str]:
    decoder = StreamDecoder(fmt, **kwargs)
    out: list[str] = []
    for part in parts:
        out += decoder.feed(part)
    return out + decoder.close()


@st.composite
def framed(draw: st.DrawFn) -> tuple[StreamFormat, bytes, list[str]]:
    """Records framed as jsonl or sse in any way a real container might."""
    records = draw(json_records())
    fmt: StreamFormat = draw(st.sampled_from(["sse", "jsonl"]))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    chunks = []
    for record in records:
        if fmt == "sse":
            if draw(st.booleans()):
                chunks.append(draw(st.sampled_from([": ping", "event: token", "id: 3", ":"])) + eol)
            chunks.append(draw(st.sampled_from(["data:", "data: "])) + record + eol)
            chunks.append(draw(st.sampled_from(["", eol])))  # blank line between events
        else:
            chunks.append(record + eol + draw(st.sampled_from(["", eol, " " + eol])))
    text = "".join(chunks)
    if draw(st.booleans()):  # the last record may lack its newline
        text = text.rstrip("\r\n")
    return fmt, text.encode(), records


@SETTINGS
@given(framed(), split_points)
def test_any_split_gives_the_records(
    stream: tuple[StreamFormat, bytes, list[str]], points: list[int]
) -> None:
    fmt, data, records = stream
    assert decode(fmt, cut(data, points)) == records


@SETTINGS
@given(st.lists(token_text.filter(lambda t: t.strip(" \t"))), split_points)
def test_jsonl_lines_are_kept_verbatim(lines: list[str], points: list[int]) -> None:
    # Any non-blank line, whatever Unicode line breaks (U+2028, NEL...) it holds.
    data = "".join(line + "\n" for line in lines).encode()
    assert decode("jsonl", cut(data, points)) == lines


def outcome(fmt: StreamFormat, parts: list[bytes], limit: int) -> tuple[str, bool]:
    """Everything decoded, and whether a StreamError ended it."""
    decoder = StreamDecoder(fmt, max_record_bytes=limit)
    out: list[str] = []
    try:
        for part in parts:
            out += decoder.feed(part)
        out += decoder.close()
    except StreamError:
        return "\x00".join(out), True
    return "\x00".join(out), False


@SETTINGS
@given(
    st.sampled_from(["sse", "jsonl", "raw"]),
    st.lists(
        st.sampled_from([b"data: ", b"\n", b"\r", b"[DONE]", b"\xf0\x9f\xa6\x9c", b"\xff"])
        | st.binary(max_size=8)
    ).map(b"".join),
    split_points,
    st.sampled_from([4, 16, 1 << 20]),
)
def test_outcome_of_any_bytes_is_split_independent(
    fmt: StreamFormat, data: bytes, points: list[int], limit: int
) -> None:
    whole = outcome(fmt, [data], limit)
    if fmt == "raw":  # raw may return the same text in different pieces
        joined = outcome(fmt, cut(data, points), limit)
        assert (joined[0].replace("\x00", ""), joined[1]) == (
            whole[0].replace("\x00", ""),
            whole[1],
        )
    else:
        assert outcome(fmt, cut(data, points), limit) == whole


@SETTINGS
@given(json_records(), split_points, st.binary(), st.sampled_from(["data: [DONE]", "data:[DONE]"]))
def test_done_cuts_the_stream(
    records: list[str], points: list[int], junk: bytes, done: str
) -> None:
    data = "".join(f"data: {r}\n\n" for r in records).encode() + done.encode() + b"\n" + junk
    decoder = StreamDecoder("sse")
    out: list[str] = []
    for part in cut(data, points):
        out += decoder.feed(part)
    assert decoder.done
    assert out + decoder.close() == records


@SETTINGS
@given(st.text(st.characters(codec="utf-8")), split_points)
def test_raw_reassembles_any_text(text: str, points: list[int]) -> None:
    pieces = decode("raw", cut(text.encode(), points))
    assert "".join(pieces) == text
    assert all(pieces)


@SETTINGS
@given(json_records(), split_points, st.integers(min_value=0, max_value=12))
def test_oversized_record_fails_after_the_records_before_it(
    records: list[str], points: list[int], where: int
) -> None:
    limit = max((len(r.encode()) for r in records), default=1)
    where = min(where, len(records))
    data = b"".join(r.encode() + b"\n" for r in records)
    big = b"x" * (limit + 1)
    data = b"".join([*(r.encode() + b"\n" for r in records[:where]), big, b"\n", data])
    decoder = StreamDecoder("jsonl", max_record_bytes=limit)
    out: list[str] = []
    with pytest.raises(StreamError):
        for part in cut(data, points):
            out += decoder.feed(part)
        out += decoder.close()
    assert out == records[:where]
