"""The README's local recipes, run as written in a fresh shell against a started
``sm-llm local serve``.

A block is picked by the comment just above it:

- ``<!-- tested: server -->``: the one command that starts the server (run in the background);
- ``<!-- tested: shell[; prints: TEXT] -->``: run by ``bash -eu`` in the checkout;
- ``<!-- tested: python[; prints: TEXT] -->``: saved to a file and run by ``python``.

The one change made to the text: port 8080 becomes a free port (another run may hold 8080).
They run once, as written: the README's text names no transport (the default, botocore).
The environment is a fresh shell's: ``PATH`` (this interpreter's ``bin`` first, where
``sm-llm`` is), ``HOME`` an empty directory (no ``~/.aws``), no ``AWS_*`` variable.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(
    r"<!-- tested: (?P<kind>server|shell|python)(?:; prints: (?P<prints>.*?))? -->\n"
    r"```(?:bash|python)\n(?P<body>.*?)\n```",
    re.DOTALL,
)


def _blocks() -> list[tuple[str, str, str | None]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(m["kind"], m["body"], m["prints"]) for m in _BLOCK.finditer(text)]


BLOCKS = _blocks()
RECIPES = [block for block in BLOCKS if block[0] != "server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def port(fresh_env: dict[str, str]) -> Iterator[int]:
    """The README's server command, started as written (on a free port) and stopped after."""
    (command,) = [body for kind, body, _ in BLOCKS if kind == "server"]
    chosen = _free_port()
    server = subprocess.Popen(
        ["bash", "-c", "exec " + command.replace("8080", str(chosen))],
        cwd=ROOT, env=fresh_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{chosen}/ping", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"the README's server did not start: {server.communicate()[0]}")
                time.sleep(0.1)
        yield chosen
    finally:
        server.terminate()
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def test_the_readme_marks_its_local_recipes() -> None:
    kinds = [kind for kind, _, _ in BLOCKS]
    assert kinds.count("server") == 1 and "shell" in kinds and "python" in kinds, kinds
    (command,) = [body for kind, body, _ in BLOCKS if kind == "server"]
    assert command.startswith("sm-llm local serve --port 8080") and "\n" not in command


@pytest.mark.parametrize(("kind", "body", "prints"), RECIPES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(RECIPES)])
def test_recipe_runs_as_written(
    kind: str, body: str, prints: str | None, port: int, fresh_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / ("recipe.sh" if kind == "shell" else "recipe.py")
    script.write_text(body.replace("8080", str(port)), encoding="utf-8")
    command = ["bash", "-eu", str(script)] if kind == "shell" else ["python", str(script)]
    result = subprocess.run(
        command, cwd=ROOT, env=fresh_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{body}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    if prints:
        assert prints in result.stdout, result.stdout
