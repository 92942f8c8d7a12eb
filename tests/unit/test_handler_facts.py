"""What ``sm-llm handlers``, the preset files and the README say about each handler agrees."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sm_llm import ChatSageMaker, ContentHandler, SageMakerEmbeddings, SageMakerLLM
from sm_llm.cli import main
from sm_llm.handlers import list_presets

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
WHOLE_REPLY = {"jumpstart", "jumpstart-chat", "text2text"}  # containers that do not stream
EMBEDDINGS = {"tei", "openai-embeddings", "jumpstart-embeddings"}


def handlers_rows(capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    assert main(["handlers"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert re.split(r"\s{2,}", header) == ["preset", "input", "stream", "description"]
    return {row[0]: row[1:] for row in (re.split(r"\s{2,}", line, maxsplit=3) for line in lines)}


def test_handlers_command_tells_whole_reply_and_texts(capsys: pytest.CaptureFixture[str]) -> None:
    rows = handlers_rows(capsys)
    assert sorted(rows) == list_presets()
    for name, (kind, stream, _) in rows.items():
        assert stream == ("whole reply" if name in WHOLE_REPLY else stream), name
        assert kind == ("texts" if name in EMBEDDINGS else kind), name
    assert {n for n, row in rows.items() if row[1] == "whole reply"} == WHOLE_REPLY
    assert {n for n, row in rows.items() if row[0] == "texts"} == EMBEDDINGS
    assert (rows["tgi"][:2], rows["lmi"][:2], rows["openai"][:2]) == (
        ["prompt", "sse"],
        ["prompt", "jsonl"],
        ["messages", "sse"],
    )


def _readme_table() -> dict[str, str]:
    """preset → stream column of the README's content-handler table."""
    section = README.split("## Content handlers", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[4]
    return rows


def test_readme_table_agrees_with_the_presets() -> None:
    table = _readme_table()
    assert set(WHOLE_REPLY) < set(table)
    for name, stream in table.items():
        spec = ContentHandler.from_preset(name).stream
        assert spec is not None, name
        if spec.whole_reply:
            assert stream == "whole reply", name
        elif spec.format == "sse":
            assert stream.startswith("SSE"), name
        else:
            assert stream.startswith("JSON lines"), name


@pytest.mark.parametrize("adapter", [SageMakerLLM, ChatSageMaker, SageMakerEmbeddings])
def test_readme_names_each_adapters_default_handler(adapter: type) -> None:
    default = adapter.model_fields["content_handler"].default  # type: ignore[attr-defined]
    assert isinstance(default, str)
    assert re.search(rf"`{adapter.__name__}`[^\n|]*`content_handler=\"{default}\"`", README), (
        f"README does not say that {adapter.__name__} defaults to {default!r}"
    )
