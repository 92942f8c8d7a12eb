"""The progress bar batch and wait_all share: tqdm when installed, else a throttled line."""

from __future__ import annotations

import sys

import pytest

from sm_llm.engine.polling import ProgressBar


def test_plain_line_without_tqdm_is_throttled_and_ends_with_the_final_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails
    bar = ProgressBar(1000, "force", desc="batch", unit="rec")
    for _ in range(999):
        bar.advance(1, 0)
    bar.advance(1, 1)
    bar.close()
    err = capsys.readouterr().err
    assert err.count("\r") < 20  # not one line per record
    assert err.rsplit("\r", 1)[-1].startswith("batch: 1000/1000 done, 1 failed, ")
    assert "/s" in err.rsplit("\r", 1)[-1]


def test_tqdm_bar_names_what_it_counts(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    bar = ProgressBar(4, "force", desc="batch", unit="rec")
    bar.advance(4, 0)
    bar.close()
    assert "batch: 100%" in capsys.readouterr().err
