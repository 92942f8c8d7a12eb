"""Generate the recorded container streams in this directory, byte for byte.

Run ``python tests/unit/data/streams/make_streams.py`` to rewrite the files and
``index.json``. ``tests/unit/test_decoding.py`` checks that the committed files
still equal :func:`build`'s output, so the two never drift apart.

The shapes follow /work/shared/reference/sagemaker-wire.md section 5: TGI
``data:{...}`` events (serde_json: compact, raw UTF-8), LMI jsonlines (Python
``json.dumps``: ``", "``/``": "`` separators, raw UTF-8), vLLM/OpenAI
``data: {...}`` chunks ending in ``data: [DONE]`` (pydantic: compact, raw UTF-8),
LMI chat jsonlines (vLLM chunks with the ``data: `` stripped). The token texts
are hostile on purpose: 4-byte emoji, ZWJ sequences, CJK, RTL, combining marks,
U+2028/U+2029 (raw, and JSON-escaped in ``lmi_chat.jsonl``), quotes,
backslashes, escaped newlines and text that looks like SSE framing.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

TOKENS: list[str] = [
    "Hello",
    ",",
    " world",
    "!",
    " 🦜",
    "🔥",
    " 你好",
    "世界",
    "。",
    " cafe\u0301",  # e + COMBINING ACUTE ACCENT
    "\u0301\u0302",  # combining marks with no base in this token
    " 👩\u200d👧",  # ZWJ sequence
    " 🇯🇵",  # regional-indicator flag
    " مرحبا",
    ' "quoted"',
    " back\\slash\\",
    " a\u2028b\u2029c",  # LINE/PARAGRAPH SEPARATOR: not line ends in jsonl/sse
    "\n",
    "\n\n",
    " data: [DONE]",  # looks like framing, but is JSON-escaped token text
    "\r\n: not a comment",
    ' {"json": [1, 2]}',
    "\t\u00e9\u00df\u0416",
    " \U0001f600\U0001f9e0",
    "\u00a0end",
]
TEXT = "".join(TOKENS)


@dataclass(frozen=True)
class Stream:
    """One recorded stream: its bytes and what decoding it must give."""

    format: str  # StreamDecoder format
    content_type: str
    data: bytes
    records: list[str]  # what StreamDecoder returns for it
    text: str  # the token text reassembled from the records


def _tgi_dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _lmi_dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _logprobs(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [round(-rng.random() * 3, 8) for _ in range(len(TOKENS) + 1)]


def _tgi_records() -> list[str]:
    lps = _logprobs(1)
    out = []
    for i, text in enumerate(TOKENS):
        tok = {"id": 1000 + 37 * i, "text": text, "logprob": lps[i], "special": False}
        out.append({"index": i + 1, "token": tok, "generated_text": None, "details": None})
    eos = {"id": 2, "text": "</s>", "logprob": lps[-1], "special": True}
    details = {
        "finish_reason": "eos_token",
        "generated_tokens": len(TOKENS) + 1,
        "seed": None,
        "input_length": 7,
    }
    out.append({"index": len(TOKENS) + 1, "token": eos, "generated_text": TEXT, "details": details})
    return [_tgi_dumps(o) for o in out]


def _lmi_records() -> list[str]:
    lps = _logprobs(2)
    objs: list[dict[str, Any]] = [
        {"token": {"id": 304 + i, "text": t, "log_prob": lps[i]}} for i, t in enumerate(TOKENS)
    ]
    objs[-1]["generated_text"] = TEXT
    objs[-1]["details"] = {
        "finish_reason": "length",
        "generated_tokens": len(TOKENS),
        "inputs": "Say hello 👋 in 中文",
    }
    return [_lmi_dumps(o) for o in objs]


def _chat_records(*, usage: bool, escape_separators: bool = False) -> list[str]:
    head = {
        "id": "chatcmpl-5f1c0e9a",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "meta-llama/Llama-3.1-8B-Instruct",
    }
    choices = [{"index": 0, "delta": {"role": "assistant", "content": ""}}]
    choices += [{"index": 0, "delta": {"content": t}} for t in TOKENS]
    objs = []
    for c in choices:
        objs.append({**head, "choices": [{**c, "logprobs": None, "finish_reason": None}]})
    last = {"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "stop"}
    objs.append({**head, "choices": [{**last, "stop_reason": None}]})
    if usage:
        n = len(TOKENS) + 1
        u = {"prompt_tokens": 12, "total_tokens": 12 + n, "completion_tokens": n}
        objs.append({**head, "choices": [], "usage": u})
    out = [_tgi_dumps(o) for o in objs]
    if escape_separators:  # valid JSON too; JS-safe serializers emit it
        out = [r.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") for r in out]
    return out


def _tgi_chat_records() -> list[str]:
    head = {
        "object": "chat.completion.chunk",
        "id": "",
        "created": 1735689600,
        "model": "tgi",
        "system_fingerprint": "3.0.1-sha-bb9095a",
    }
    out = []
    for i, t in enumerate(TOKENS):
        delta = {"role": "assistant", "content": t}
        fin = "stop" if i == len(TOKENS) - 1 else None
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}
        out.append(_tgi_dumps({**head, "choices": [choice], "usage": None}))
    return out


def build() -> dict[str, Stream]:
    """Every recorded stream by file name."""
    sse, jsonl = "text/event-stream", "application/jsonlines"
    tgi, lmi = _tgi_records(), _lmi_records()
    vllm, lmi_chat = _chat_records(usage=True), _chat_records(usage=False, escape_separators=True)
    tgi_chat = _tgi_chat_records()

    def lines(recs: list[str], prefix: str = "", sep: str = "\n") -> bytes:
        return "".join(prefix + r + sep for r in recs).encode()

    keepalive = []
    for i, r in enumerate(vllm):
        if i % 4 == 0:
            keepalive.append(": ping\n\n")
        keepalive.append(f"event: message\nid: {i}\n" + ("retry: 3000\n" if i == 0 else ""))
        keepalive.append(f"data: {r}\n\n")
    keepalive.append(":\n\nevent: done\ndata: [DONE]\n\n")

    streams = {
        "tgi.sse": (sse, lines(tgi, "data:", "\n\n"), tgi),
        "tgi_crlf.sse": (sse, lines(tgi, "data:", "\r\n\r\n"), tgi),
        "tgi_no_trailing_newline.sse": (sse, lines(tgi, "data:", "\n\n")[:-2], tgi),
        "tgi_chat.sse": (sse, lines(tgi_chat, "data:", "\n\n") + b"data:[DONE]\n\n", tgi_chat),
        "lmi.jsonl": (jsonl, lines(lmi), lmi),
        "lmi_crlf.jsonl": (jsonl, lines(lmi, sep="\r\n"), lmi),
        "lmi_no_trailing_newline.jsonl": (jsonl, lines(lmi)[:-1], lmi),
        "lmi_chat.jsonl": (jsonl, lines(lmi_chat), lmi_chat),
        "lmi_sse_chat.sse": (sse, lines(lmi_chat, "data: ") + b"data: [DONE]\n\n", lmi_chat),
        "vllm_chat.sse": (sse, lines(vllm, "data: ", "\n\n") + b"data: [DONE]\n\n", vllm),
        "vllm_chat_keepalive.sse": (sse, "".join(keepalive).encode(), vllm),
    }
    return {
        name: Stream(name.rsplit(".", 1)[1], ctype, data, recs, TEXT)
        for name, (ctype, data, recs) in streams.items()
    }


def main() -> None:
    """Write every stream and ``index.json`` next to this file."""
    index = {}
    for name, s in build().items():
        (HERE / name).write_bytes(s.data)
        index[name] = {
            "format": s.format,
            "content_type": s.content_type,
            "records": len(s.records),
            "text": s.text,
        }
    (HERE / "index.json").write_text(
        json.dumps(index, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
