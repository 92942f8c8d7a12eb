"""The CPU-saving parts of ``sm-llm batch``: GC tuning that is undone afterwards, and
output lines byte-identical to ``json.dumps(line, ensure_ascii=False, default=str)``."""

from __future__ import annotations

import gc
import json
from datetime import date
from pathlib import Path

from sm_llm._batch_files import LineWriter
from sm_llm._cli_batch import _batch_gc


def test_batch_gc_freezes_and_raises_the_young_threshold_then_restores_both() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with _batch_gc():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (20_000, *before[1:])
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_batch_gc_restores_after_an_error() -> None:
    before = gc.get_threshold()
    try:
        with _batch_gc():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_line_writer_bytes_are_json_dumps_ensure_ascii_false_default_str(tmp_path: Path) -> None:
    line = {"id": 7, "output": "héllo \u2603 \"q\"\n", "usage": None, "metadata": {"day": date(2026, 1, 2)}}
    path = tmp_path / "out.jsonl"
    writer = LineWriter(path, append=False)
    writer.write(line)
    writer.close()
    assert path.read_bytes() == (json.dumps(line, ensure_ascii=False, default=str) + "\n").encode("utf-8")
