"""The whole client-side stream path, with no sockets.

bytes → ``StreamPipeline`` (``StreamDecoder(handler.stream.format)`` →
``handler.parse_stream_record`` → ``StreamAssembler``), driven by
``StreamPipeline.steps`` — the loop ``Engine.stream`` runs. Every recorded stream that a preset reads is
re-split at every byte, at random multi-splits and one byte at a time; the
pieces emitted, the text, finish reason, usage and model name must never depend
on where the ``PayloadPart`` boundaries fell.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sm_llm._core.pipeline import StreamPiece, StreamPipeline
from sm_llm.errors import StreamError
from sm_llm.handlers import ContentHandler, StreamDelta

STREAMS_DIR = Path(__file__).parent / "data" / "streams"
_GENERATOR = "sm_llm_test_make_streams"  # the name test_decoding.py loads it under


def _load_generator() -> Any:
    if _GENERATOR in sys.modules:
        return sys.modules[_GENERATOR]
    spec = importlib.util.spec_from_file_location(_GENERATOR, STREAMS_DIR / "make_streams.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make_streams = _load_generator()
STREAMS: dict[str, Any] = make_streams.build()
TOKENS: list[str] = make_streams.TOKENS
TEXT: str = make_streams.TEXT
N = len(TOKENS)


@dataclass(frozen=True)
class Expected:
    preset: str
    finish_reason: str
    usage: dict[str, int] | None
    model_name: str | None = None


_TGI = Expected(
    "tgi", "stop", {"prompt_tokens": 7, "completion_tokens": N + 1, "total_tokens": N + 8}
)
_LMI = Expected("lmi", "length", {"completion_tokens": N})
_VLLM = Expected(
    "openai",
    "stop",
    {"prompt_tokens": 12, "completion_tokens": N + 1, "total_tokens": N + 13},
    "meta-llama/Llama-3.1-8B-Instruct",
)
_LMI_CHAT = Expected("openai", "stop", None, "meta-llama/Llama-3.1-8B-Instruct")

# Every recorded stream a preset reads, and what reading it must give.
CASES: dict[str, Expected] = {
    "tgi.sse": _TGI,  # TGI: eos_token → "stop"
    "tgi_crlf.sse": _TGI,
    "tgi_no_trailing_newline.sse": _TGI,
    "lmi.jsonl": _LMI,
    "lmi_crlf.jsonl": _LMI,
    "lmi_no_trailing_newline.jsonl": _LMI,
    "vllm_chat.sse": _VLLM,
    "vllm_chat_keepalive.sse": _VLLM,
    "tgi_chat.sse": Expected("openai", "stop", None, "tgi"),  # usage: null in every chunk
    "lmi_chat.jsonl": _LMI_CHAT,  # jsonl read by the openai preset's SSE decoder
    "lmi_sse_chat.sse": _LMI_CHAT,
}
NAMES = sorted(CASES)


@dataclass(frozen=True)
class Outcome:
    pieces: tuple[str, ...]  # every non-empty piece emitted, the final flush included
    text: str
    finish_reason: str | None
    usage: dict[str, int] | None
    model_name: str | None
    stopped: bool


class MemoParser:
    """``handler.parse_stream_record``, remembered per record string.

    It is a pure function of the record, so remembering changes no outcome; it
    spares parsing the same ~30 records again for each of thousands of splits.
    Decoding and assembly still run in full for every split, and the whole-stream
    and one-byte-at-a-time runs parse every record afresh.
    """

    def __init__(self, handler: ContentHandler) -> None:
        self._parse = handler.parse_stream_record
        self._seen: dict[str, StreamDelta] = {}

    def __call__(self, record: str) -> StreamDelta:
        delta = self._seen.get(record)
        if delta is None:  # a StreamError is raised afresh every time
            delta = self._seen[record] = self._parse(record)
        return delta


def run(
    handler: ContentHandler,
    parts: Iterable[bytes],
    stop: list[str] | None = None,
    parse: Callable[[str], StreamDelta] | None = None,
) -> Outcome:
    """Drive the production pipeline: ``StreamPipeline.steps`` then ``end``, as ``Engine.stream``."""
    pipeline = StreamPipeline(handler, stop, parse=parse)
    pieces: list[str] = []
    for step in pipeline.steps(parts):
        assert isinstance(step, StreamPiece)
        if step.text:
            pieces.append(step.text)
    end = pipeline.end()
    if end.text:
        pieces.append(end.text)
    assert "".join(pieces) == pipeline.partial_text
    return Outcome(tuple(pieces), pipeline.partial_text, end.finish_reason, end.usage, end.model_name, end.stopped)


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def single_splits(data: bytes) -> Iterable[tuple[int, list[bytes]]]:
    for cut in range(len(data) + 1):
        yield cut, [data[:cut], data[cut:]]


def random_splits(data: bytes, trials: int = 150) -> Iterable[tuple[int, list[bytes]]]:
    for seed in range(trials):
        rng = random.Random(seed)
        cuts = [rng.randrange(len(data) + 1) for _ in range(rng.randint(2, 40))]
        yield seed, split_at(data, cuts)


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def load(name: str) -> tuple[ContentHandler, bytes, Expected]:
    expected = CASES[name]
    return ContentHandler.from_preset(expected.preset), (STREAMS_DIR / name).read_bytes(), expected


# ------------------------------------------------------------------ recordings


def test_every_preset_readable_recording_is_covered() -> None:
    # A new recording must be classified here (or be deliberately unreadable).
    assert set(CASES) == set(STREAMS)


@pytest.mark.parametrize("name", NAMES)
def test_whole_stream(name: str) -> None:
    handler, data, expected = load(name)
    out = run(handler, [data])
    assert out.pieces == tuple(t for t in TOKENS if t)
    assert out.text == TEXT
    assert out.finish_reason == expected.finish_reason
    assert out.usage == expected.usage
    assert out.model_name == expected.model_name
    assert not out.stopped
    # The recording's own final text, where the container sends one, agrees.
    finals = [json.loads(r).get("generated_text") for r in STREAMS[name].records]
    if expected.preset in ("tgi", "lmi"):
        assert finals[-1] == out.text
    else:
        assert not any(finals)


@pytest.mark.parametrize("name", NAMES)
def test_every_single_split(name: str) -> None:
    handler, data, _ = load(name)
    whole, parse = run(handler, [data]), MemoParser(handler)
    for cut, parts in single_splits(data):
        assert run(handler, parts, parse=parse) == whole, cut


@pytest.mark.parametrize("name", NAMES)
def test_random_multi_splits(name: str) -> None:
    handler, data, _ = load(name)
    whole, parse = run(handler, [data]), MemoParser(handler)
    for seed, parts in random_splits(data):
        assert run(handler, parts, parse=parse) == whole, seed


@pytest.mark.parametrize("name", NAMES)
def test_one_byte_at_a_time(name: str) -> None:
    handler, data, _ = load(name)
    assert run(handler, bytewise(data)) == run(handler, [data])


# ------------------------------------------------------------------ stop sequences

# Each spans records: the end of one token and the start of the next ("好世" is
# " 你好" + "世界"), or several (the tail of " a\u2028b\u2029c", "\n", "\n\n" and the
# head of " data: [DONE]"). "world?" shares a prefix with "world!" and must be
# held back, then released.
STOPS = {
    "two-records": (["好世"], "Hello, world! 🦜🔥 你"),
    "near-miss-first": (["world?", "好世"], "Hello, world! 🦜🔥 你"),
    "many-records": (["c\n\n\n d"], TEXT[: TEXT.index("c\n\n\n d")]),
}


def test_stop_sequences_straddle_records() -> None:
    for stops, _ in STOPS.values():
        stop = stops[-1]
        assert stop in TEXT
        assert not any(stop in token for token in TOKENS)


# The CRLF and unterminated variants add nothing to stop handling beyond the
# first case, so the extra stops run on one stream of each shape.
SHAPES = ["lmi.jsonl", "lmi_chat.jsonl", "tgi.sse", "tgi_chat.sse", "vllm_chat_keepalive.sse"]
STOP_CASES = [
    *((name, "two-records") for name in NAMES),
    *((name, case) for name in SHAPES for case in sorted(STOPS) if case != "two-records"),
]


@pytest.mark.parametrize(("name", "stop_case"), STOP_CASES)
def test_stop_sequence_at_every_split(name: str, stop_case: str) -> None:
    handler, data, _ = load(name)
    stops, expected_text = STOPS[stop_case]
    whole = run(handler, [data], stops)
    assert whole.text == expected_text
    assert whole.stopped
    assert whole.finish_reason == "stop"
    assert whole.usage is None  # the stop came before the records that carry usage
    parse = MemoParser(handler)
    for cut, parts in single_splits(data):
        assert run(handler, parts, stops, parse) == whole, cut
    for seed, parts in random_splits(data, trials=30):
        assert run(handler, parts, stops, parse) == whole, seed
    assert run(handler, bytewise(data), stops) == whole


# ------------------------------------------------------------------ in-band errors

_AFTER = 5  # tokens streamed before the error
_PARTIAL = "".join(TOKENS[:_AFTER])


def _tgi_error_stream() -> bytes:
    good = make_streams._tgi_records()
    bad = '{"error":"overloaded","error_type":"overloaded"}'
    return "".join(f"data:{r}\n\n" for r in [*good[:_AFTER], bad, *good[_AFTER:]]).encode()


def _lmi_error_stream() -> bytes:
    good = make_streams._lmi_records()[:_AFTER]
    bad = {
        "token": {"id": -1, "text": "", "log_prob": -1, "special_token": True},
        "generated_text": _PARTIAL,
        "details": {"finish_reason": "error", "generated_tokens": _AFTER, "inputs": "hi"},
    }
    lines = [*good, json.dumps(bad, ensure_ascii=False)]
    return "".join(f"{line}\n" for line in lines).encode()


def _openai_error_stream() -> bytes:
    good = make_streams._chat_records(usage=True)[: _AFTER + 1]  # role chunk + 5 tokens
    bad = '{"error":{"message":"boom","type":"InternalServerError","code":500}}'
    return "".join(f"data: {r}\n\n" for r in [*good, bad]).encode() + b"data: [DONE]\n\n"


ERRORS = {
    "tgi": (_tgi_error_stream, "overloaded"),
    "lmi": (_lmi_error_stream, "ended the stream with an error"),
    "openai": (_openai_error_stream, "boom"),
}


@pytest.mark.parametrize("preset", sorted(ERRORS))
def test_in_band_error_after_tokens_at_every_split(preset: str) -> None:
    make, message = ERRORS[preset]
    handler, data = ContentHandler.from_preset(preset), make()
    parse = MemoParser(handler)
    splits = itertools.chain(
        single_splits(data), random_splits(data, trials=30), [(-1, bytewise(data))]
    )
    for cut, parts in splits:
        with pytest.raises(StreamError, match=message) as info:
            run(handler, parts, parse=parse)
        assert info.value.partial_text == _PARTIAL, cut


def test_in_band_error_without_trailing_newline() -> None:
    handler = ContentHandler.from_preset("lmi")
    data, parse = _lmi_error_stream().rstrip(b"\n"), MemoParser(handler)
    for cut, parts in single_splits(data):
        with pytest.raises(StreamError) as info:
            run(handler, parts, parse=parse)
        assert info.value.partial_text == _PARTIAL, cut


def test_invalid_utf8_fails_the_same_way_at_every_split() -> None:
    # The record after the good ones ends inside a 3-byte character: the error is
    # reported once the earlier tokens are out, with one message whatever the split.
    handler = ContentHandler.from_preset("tgi")
    good = "".join(f"data:{r}\n\n" for r in make_streams._tgi_records()[:_AFTER]).encode()
    data = good + b'data:{"index":6,"token":{"text":"\xe4\xbd\n\n' + good
    parse, messages = MemoParser(handler), set()
    for cut, parts in itertools.chain(single_splits(data), [(-1, bytewise(data))]):
        with pytest.raises(StreamError, match="invalid UTF-8") as info:
            run(handler, parts, parse=parse)
        assert info.value.partial_text == _PARTIAL, cut
        messages.add(str(info.value))
    assert len(messages) == 1, messages
