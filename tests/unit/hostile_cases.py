"""Hostile templates, YAML files and expressions, run in a child process under a memory cap.

``python hostile_cases.py NAME...`` sets ``RLIMIT_AS`` to the process's size after
imports plus :data:`MEMORY_CAP`, runs each named case and prints one JSON object:
``{name: {"error": ..., "message": ..., "cpu_seconds": ..., "memory_error": ...}}``.
``tests/unit/test_security.py`` runs it with a watchdog and checks the outcomes, so
a regression fails a test instead of swapping or hanging the suite.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

MEMORY_CAP = 64 * 1024 * 1024
"""Address space the cases may use beyond the process's size after imports."""

# Request and chat templates (``prompt`` is "hi" in both).
TEMPLATES: dict[str, str] = {
    "percent_width": "{{ '%0400000000d' % 1 }}",
    "percent_repeat": "{{ ('%s' * 100000) % ((prompt * 1000,) * 100000) }}",
    "center_filter": "{{ prompt|center(400000000) }}",
    "center_method": "{{ prompt.center(400000000) }}",
    "ljust_method": "{{ prompt.ljust(400000000) }}",
    "zfill_method": "{{ prompt.zfill(400000000) }}",
    "format_width": "{{ '{:>400000000}'.format(prompt) }}",
    "format_repeat": "{{ ('{0}' * 100000).format(prompt * 1000) }}",
    "join_repeated_list": "{{ ([prompt] * 100000)|join(prompt * 1000) }}",
    "join_method": "{{ (prompt * 1000).join([prompt] * 100000) }}",
    "replace_empty": "{{ (prompt * 1000).replace('', prompt * 1000) }}",
    "indent_lines": "{{ ('\\n' * 100000)|indent(100000, true, true) }}",
    "batch_fill": "{{ [1]|batch(400000000, 'x')|list }}",
    "tilde_doubling": (
        "{% set ns = namespace(s=prompt) %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        "{{ ns.s|length }}"
    ),
    "plus_doubling": (
        "{% set ns = namespace(s=prompt) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
        "{{ ns.s|length }}"
    ),
    "list_doubling": (
        "{% set ns = namespace(l=[prompt]) %}{% for i in range(64) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
        "{{ ns.l }}"
    ),
    "display_chain": "{% set a = [prompt * 1000, prompt * 1000] %}"
    + "".join(f"{{% set {n} = [{p}, {p}] %}}" for p, n in zip("abcdefghijklmnopqrstuvwxy", "bcdefghijklmnopqrstuvwxyz", strict=True))
    + "{{ z == z[:] }}",
    "fromkeys": "{{ {}.fromkeys(range(100000), prompt * 1000) }}",
    "power_chain": "{{ 2 ** 64 ** 64 ** 64 ** 64 ** 64 ** 64 ** 64 }}",
    "power_big": "{{ 7 ** 99999999 }}",
    "multiply_repeat": "{{ 'a' * 1000000000 }}",
    "multiply_list": "{{ [0] * 1000000000 }}",
    "huge_range": "{{ range(1000000000) | list }}",
    "power_in_variable": "{% set n = 99999999 %}{{ 7 ** n }}",
    "nested_ranges_with_text": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "nested_ranges_silent": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "literal_text_loop": "{% for i in range(100000) %}" + "x" * 4096 + "{% endfor %}",
    "macro_fan_out": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "macro_growing_string": (
        "{% macro f(s, n) %}{% if n %}{{ f(s ~ 'x', n - 1) }}{% endif %}{% endmacro %}{{ f(prompt * 400000, 200) }}"
    ),
    "lipsum": "{{ lipsum(1000000) }}",
}

_BOMB_LINES = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'] + [
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)
]
ALIAS_BOMB = "\n".join(_BOMB_LINES)
"""Nine levels of nine aliases: 387,420,489 strings once expanded."""

_HANDLER = (
    "request_template: '{{ {\"inputs\": prompt, \"parameters\": parameters}|tojson }}'\n"
    "response: {text: generated_text}\n"
)


def _config_file(folder: Path, body: str) -> Path:
    path = folder / "bomb.yaml"
    path.write_text(f"kind: llm\nendpoint_name: ep\nregion_name: us-east-1\n{body}\n", encoding="utf-8")
    return path


def _handler_file(folder: Path, body: str) -> Path:
    path = folder / "handler.yaml"
    path.write_text(_HANDLER + body + "\n", encoding="utf-8")
    return path


def _load_config(body: str) -> Callable[[Path], object]:
    def run(folder: Path) -> object:
        from sm_llm import load_config

        return load_config(_config_file(folder, body))

    return run


def _handler(body: str) -> Callable[[Path], object]:
    def run(folder: Path) -> object:
        from sm_llm import ContentHandler

        handler = ContentHandler.from_file(_handler_file(folder, body))
        return handler.render_request("hi", parameters=handler.build_parameters({}))

    return run


def _template(source: str, chat: bool) -> Callable[[Path], object]:
    def run(folder: Path) -> object:
        from sm_llm import ContentHandler
        from sm_llm.chat_templates import ChatTemplate

        if chat:
            return ChatTemplate.resolve(source).render([{"role": "user", "content": "hi"}], prompt="hi")
        handler = ContentHandler(request_template=source, response={"text": "x"}, content_type="text/plain")
        return handler.render_request("hi")

    return run


def _expression(expression: str, body: bytes) -> Callable[[Path], object]:
    def run(folder: Path) -> object:
        from sm_llm import ContentHandler

        handler = ContentHandler.from_dict({"request_template": "{{ prompt|tojson }}", "response": {"text": expression}})
        return handler.parse_response(body)

    return run


_DEEP = "[" * 3000 + "]" * 3000
_TO_STRING_CHAIN = " | ".join(["to_string([@, @])"] * 24)
_WIDE = "to_string([" + ", ".join(["@"] * 16) + "])"

CASES: dict[str, Callable[[Path], object]] = {
    **{f"request_{name}": _template(source, chat=False) for name, source in TEMPLATES.items()},
    **{f"chat_{name}": _template(source, chat=True) for name, source in TEMPLATES.items()},
    "config_alias_bomb": _load_config(f"metadata:\n{textwrap.indent(ALIAS_BOMB, '  ')}"),
    "handler_alias_bomb": _handler(f"default_parameters:\n{textwrap.indent(ALIAS_BOMB, '  ')}"),
    "config_deep_sequence": _load_config(f"tags: {_DEEP}"),
    "handler_deep_sequence": _handler(f"default_parameters: {{deep: {_DEEP}}}"),
    "config_big_integer": _load_config(f"max_tokens: {'9' * 5000}"),
    "handler_big_integer": _handler(f"default_parameters: {{n: {'9' * 5000}}}"),
    "expression_chain": _expression(_TO_STRING_CHAIN, b'{"generated_text": "' + b"x" * 27 + b'"}'),
    "expression_wide": _expression(f"{_WIDE} | {_WIDE} | {_WIDE}", b'"' + b"x" * 20_000 + b'"'),
}


def _chain_has_memory_error(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, MemoryError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _warm_up(folder: Path) -> None:
    """Import and exercise everything once, so the cap is measured after the imports."""
    from sm_llm import ContentHandler, load_config
    from sm_llm.chat_templates import ChatTemplate

    ChatTemplate.resolve("{{ messages[0]['content'] ~ prompt }}").render([{"role": "user", "content": "a"}], prompt="b")
    ContentHandler.from_file(_handler_file(folder, "default_parameters: {a: 1}")).render_request("hi")
    load_config(_config_file(folder, "max_tokens: 5"))
    ContentHandler(request_template="{{ prompt }}", response={"text": "to_string([@])"}).parse_response(b"[]")


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main(names: list[str]) -> None:
    """Run the named cases under the memory cap; print their outcomes as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _warm_up(folder)
        limit = _address_space() + MEMORY_CAP
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        resource.setrlimit(resource.RLIMIT_CPU, (60, resource.getrlimit(resource.RLIMIT_CPU)[1]))  # a second watchdog
        results: dict[str, dict[str, object]] = {}
        for name in names:
            start = time.process_time()
            try:
                CASES[name](folder)
                error, message, memory = "", "no error", False
            except BaseException as exc:  # every outcome is reported
                error, message, memory = type(exc).__name__, str(exc)[:300], _chain_has_memory_error(exc)
            results[name] = {
                "error": error,
                "message": message,
                "cpu_seconds": round(time.process_time() - start, 3),
                "memory_error": memory,
            }
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))
