"""The files of :mod:`sm_llm.batch`: JSONL records read in streaming passes, ids kept as
8-byte hashes, an output read back on resume (a torn last line cut off) and appended to
with whole, unbuffered lines — and the shape of those lines (one home for the real-time
and the asynchronous-inference runs)."""

from __future__ import annotations

import json
import os
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from hashlib import blake2b
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseLLM
from langchain_core.messages import AIMessage, convert_to_messages
from langchain_core.prompt_values import ChatPromptValue

from sm_llm.errors import ConfigurationError

__all__ = [
    "INPUTS", "IdHashes", "LineWriter", "Record", "Records", "check_input", "check_shape", "error_line", "id_hash",
    "model_input", "read_done", "record_key", "reply_line", "success_line",
]

Record = Mapping[str, Any]
INPUTS = ("prompt", "messages")


# -- ids --------------------------------------------------------------------------------


def record_key(record: Record, where: str) -> str:
    """The record's id as canonical JSON text (``1`` and ``"1"`` differ)."""
    value = record.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        got = "no id" if value is None else f"id {value!r} (ids are non-empty strings or integers)"
        raise ConfigurationError(f"{where} has {got}")
    return json.dumps(value, ensure_ascii=False)


def id_hash(key: str) -> int:
    return int.from_bytes(blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


class IdHashes:
    """A sorted array of 64-bit id hashes: 8 bytes per id."""

    def __init__(self) -> None:
        self._items = array("Q")
        self._sorted = True

    def __len__(self) -> int:
        return len(self._items)

    def add(self, key: str) -> None:
        self._items.append(id_hash(key))
        self._sorted = False

    def _sort(self) -> None:
        if not self._sorted:
            self._items = array("Q", sorted(self._items))
            self._sorted = True

    def __contains__(self, key: str) -> bool:
        self._sort()
        value, items = id_hash(key), self._items
        index = bisect_left(items, value)
        return index < len(items) and items[index] == value

    def repeated(self) -> set[int]:
        """Hashes that occur more than once."""
        self._sort()
        items = self._items
        return {items[i] for i in range(1, len(items)) if items[i] == items[i - 1]}


# -- input ------------------------------------------------------------------------------


def check_shape(record: Any, where: str) -> str:
    if not isinstance(record, dict):
        raise ConfigurationError(f"{where} is not a JSON object")
    key = record_key(record, where)
    given = [name for name in INPUTS if name in record]
    if len(given) != 1:
        raise ConfigurationError(
            f"{where} (id {key}) needs exactly one of \"prompt\" or \"messages\""
            + (", not both" if given else "")
        )
    if "prompt" in record and not isinstance(record["prompt"], str):
        raise ConfigurationError(f"{where} (id {key}): \"prompt\" must be a string")
    if "messages" in record and not isinstance(record["messages"], list):
        raise ConfigurationError(f"{where} (id {key}): \"messages\" must be a list of messages")
    return key


class Records:
    """Records from a JSONL file (read again on each pass) or an iterable."""

    def __init__(self, records: str | os.PathLike[str] | Iterable[Record]) -> None:
        self.path: Path | None = None
        self.records: Iterable[Record] = ()
        if isinstance(records, (str, os.PathLike)):
            self.path = Path(records)
        else:
            self.records = records
        self.reiterable = self.path is not None or isinstance(records, Sequence)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``(where, record)`` pairs; ``where`` names the line or position for errors."""
        if self.path is None:
            for index, record in enumerate(self.records):
                yield f"record {index}", record
            return
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise ConfigurationError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        with handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{self.path}:{number}"
                try:
                    yield where, json.loads(line)
                except ValueError as exc:
                    raise ConfigurationError(f"{where} is not JSON: {exc}") from None


def check_input(source: Records, done: IdHashes | None) -> tuple[int, int]:
    """One streaming pass: every record well-formed, ids present and unique. Returns the
    number of records and how many of them the output already holds."""
    hashes, count, skipped = IdHashes(), 0, 0
    for where, record in source:
        key = check_shape(record, where)
        hashes.add(key)
        count += 1
        skipped += done is not None and key in done
    repeated = hashes.repeated()
    if repeated:  # confirm on the text (a 64-bit collision is possible, if unlikely)
        first: dict[str, str] = {}
        for where, record in source:
            key = record_key(record, where)
            if id_hash(key) in repeated:
                if key in first:
                    raise ConfigurationError(f"duplicate id {key}: {first[key]} and {where}; ids must be unique")
                first[key] = where
    return count, skipped


def model_input(model: Any, record: Record) -> Any:
    """What ``model`` is called with for ``record``: its prompt, or its messages (as one
    prompt string for an LLM, as messages for a chat model)."""
    if "prompt" in record:
        return record["prompt"]
    if isinstance(model, BaseLLM):
        return ChatPromptValue(messages=convert_to_messages(record["messages"])).to_string()
    return convert_to_messages(record["messages"])


# -- output lines -----------------------------------------------------------------------


def error_line(record_id: Any, exc: BaseException) -> dict[str, Any]:
    """The output line of a failed record."""
    return {
        "id": record_id,
        "error": {
            "type": type(exc).__name__,
            "message": str(exc),
            "retryable": bool(getattr(exc, "is_retryable", False)),
            "status_code": getattr(exc, "status_code", None),
        },
    }


def _usage(usage: Mapping[str, Any] | None) -> dict[str, int] | None:
    """Token counts under one pair of names, whatever the container called them."""
    if not usage:
        return None
    found = {
        "input_tokens": usage.get("input_tokens", usage.get("prompt_tokens")),
        "output_tokens": usage.get("output_tokens", usage.get("completion_tokens")),
    }
    return {name: int(value) for name, value in found.items() if isinstance(value, int)} or None


def success_line(record_id: Any, output: Any, info: Mapping[str, Any], usage: Any) -> dict[str, Any]:
    """The output line of an answered record: ``info`` is the reply's metadata
    (``generation_info`` / ``response_metadata``)."""
    metadata = {k: v for k, v in info.items() if k not in ("finish_reason", "usage", "model_provider")}
    return {
        "id": record_id,
        "output": output,
        "usage": _usage(usage or info.get("usage")),
        "finish_reason": info.get("finish_reason"),
        "metadata": metadata,
    }


def reply_line(record_id: Any, reply: Any) -> dict[str, Any]:
    """The output line of a chat model's (or any runnable's) reply."""
    if isinstance(reply, AIMessage):
        line = success_line(record_id, reply.content, reply.response_metadata, reply.usage_metadata)
        if reply.tool_calls:
            line["tool_calls"] = reply.tool_calls
        return line
    return success_line(record_id, reply if isinstance(reply, str) else str(reply), {}, None)


# -- output -----------------------------------------------------------------------------


def read_done(path: Path) -> IdHashes:
    """Ids already in the output; a torn last line (no newline: a crash mid-write) is cut off."""
    done = IdHashes()
    try:
        handle = path.open("rb+")
    except FileNotFoundError:
        return done
    except OSError as exc:
        raise ConfigurationError(f"cannot open {path}: {exc.strerror or exc}") from exc
    with handle:
        size = handle.seek(0, os.SEEK_END)
        end, step = size, 1 << 16
        while end > 0:  # find the last newline from the end
            start = max(0, end - step)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end < size:
            handle.truncate(end)
        handle.seek(0)
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                done.add(record_key(record, f"{path}:{number}"))
            except (ValueError, ConfigurationError, AttributeError):
                raise ConfigurationError(
                    f"{path}:{number} is not an output line of sm_llm.batch; pass another output "
                    "file, or resume=False (--no-resume) to overwrite it"
                ) from None
    return done


# What ``json.dumps(line, ensure_ascii=False, default=str)`` builds on every call (the same
# bytes); the encoder keeps no state between calls.
_LINE = json.JSONEncoder(ensure_ascii=False, default=str)


class LineWriter:
    """Whole lines appended with unbuffered writes: a kill leaves whole lines (or a torn
    last one that resume cuts off)."""

    def __init__(self, path: Path, *, append: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        try:
            self.fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def write(self, line: Mapping[str, Any]) -> None:
        data = memoryview((_LINE.encode(line) + "\n").encode("utf-8"))
        while data:
            data = data[os.write(self.fd, data):]

    def close(self) -> None:
        os.close(self.fd)
