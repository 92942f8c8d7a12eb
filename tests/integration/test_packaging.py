"""A non-editable install ships the presets: build the wheel, install it apart, load them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

CHECK = """
import sys, sm_llm
from sm_llm.handlers import ContentHandler, list_presets, templates_dir
target = sys.argv[1]
assert sm_llm.__file__.startswith(target), sm_llm.__file__
assert str(templates_dir()).startswith(target), templates_dir()
names = list_presets()
expected = {"jumpstart", "jumpstart-chat", "lmi", "openai", "text2text", "tgi", "tei",
            "openai-embeddings", "jumpstart-embeddings"}
assert expected <= set(names), names
for name in names:
    ContentHandler.from_preset(name)
chat = list_presets("chat")
assert {"llama3", "llama2", "mistral", "chatml"} <= set(chat), chat
from sm_llm.chat_templates import ChatTemplate
for name in chat:
    ChatTemplate.resolve(name).render([{"role": "user", "content": "hi"}])
print("ok", len(names), len(chat))
"""


def test_wheel_ships_presets(wheel: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "sm_llm/templates/handlers/tgi.yaml" in names
    assert "sm_llm/py.typed" in names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    # Run outside the repo, with the installed copy first on the path.
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(target)],
        cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("ok ")
