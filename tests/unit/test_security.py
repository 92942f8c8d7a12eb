"""Every claim of SECURITY.md that needs no server (the rest: test_security_integration.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.load import dumpd

import sm_llm
from sm_llm import (
    ChatSageMaker,
    ConfigurationError,
    ContentHandler,
    ResponseParseError,
    SageMakerLLM,
    load_config,
)
from sm_llm._messages import ai_message
from sm_llm.chat_templates import ChatTemplate
from sm_llm.errors import StreamParseError

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ prompt.__class__.__base__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ range.__self__ }}",
    "{{ '{0.__class__.__mro__}'.format(prompt) }}",
    "{{ '{0.__class__}'.format_map([prompt]) }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os }}",
    "{% extends '/etc/hostname' %}",
    "{{ parameters.update({'x': 1}) }}",
    "{{ parameters.setdefault('x', 1) }}",
    "{{ [].append(1) }}",
    "{{ ''.join.__self__.__class__ }}",
]


LEAKS = ("<class", "<module", "<function", "<built-in", "<bound", "root:", "uid=", "__")


@pytest.mark.parametrize("template", ESCAPES)
def test_template_escapes_are_refused(template: str) -> None:
    # Request templates are strict: an unsafe access is an error.
    handler = ContentHandler(request_template=template, response={"text": "x"}, content_type="text/plain")
    with pytest.raises(ConfigurationError):
        handler.render_request("hi", parameters={"a": 1})
    # Chat templates follow transformers (lenient undefined): an unsafe access either fails
    # or renders as nothing — it never yields the object.
    try:
        out = ChatTemplate.resolve(template).render([{"role": "user", "content": "hi"}])
    except ConfigurationError:
        return
    assert not any(leak in out for leak in LEAKS), out


def _hostile_module() -> Any:
    spec = importlib.util.spec_from_file_location("hostile_cases", HOSTILE_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOSTILE_SCRIPT = Path(__file__).with_name("hostile_cases.py")
HOSTILE = _hostile_module()
WATCHDOG_SECONDS = 120


@pytest.fixture(scope="module")
def hostile_outcomes() -> dict[str, dict[str, Any]]:
    """Every case of hostile_cases.py, run once in one child process under a 64 MB memory cap,
    with a watchdog: a bound that regresses fails these tests instead of hanging the suite."""
    root = str(Path(sm_llm.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        result = subprocess.run(
            [sys.executable, str(HOSTILE_SCRIPT), *HOSTILE.CASES],
            capture_output=True, text=True, timeout=WATCHDOG_SECONDS, env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hostile cases still running after {WATCHDOG_SECONDS} s: a bound regressed")
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return outcomes


def _refused_quickly(outcome: dict[str, Any], error: str) -> None:
    assert outcome["error"] == error, outcome
    assert not outcome["memory_error"], outcome  # refused by a bound, not by running out
    assert outcome["cpu_seconds"] < 1.0, outcome


@pytest.mark.parametrize("kind", ["request", "chat"])
@pytest.mark.parametrize("case", list(HOSTILE.TEMPLATES))
def test_template_bombs_are_refused_within_a_second_in_bounded_memory(
    hostile_outcomes: dict[str, dict[str, Any]], kind: str, case: str
) -> None:
    _refused_quickly(hostile_outcomes[f"{kind}_{case}"], "ConfigurationError")
    assert hostile_outcomes[f"{kind}_{case}"]["message"].startswith(
        "request template of 'custom' " if kind == "request" else "chat template 'inline' "
    )


@pytest.mark.parametrize(
    ("case", "where"),
    [
        ("config_alias_bomb", "bomb.yaml:"),
        ("handler_alias_bomb", "handler.yaml:"),
        ("config_deep_sequence", "bomb.yaml:4: "),
        ("handler_deep_sequence", "handler.yaml:3: "),
        ("config_big_integer", "bomb.yaml:4: "),
        ("handler_big_integer", "handler.yaml:3: "),
    ],
)
def test_yaml_bombs_are_configuration_errors_naming_file_and_line(
    hostile_outcomes: dict[str, dict[str, Any]], case: str, where: str
) -> None:
    outcome = hostile_outcomes[case]
    _refused_quickly(outcome, "ConfigurationError")
    assert re.search(rf"{re.escape(where)}\d*:? ?not valid YAML", outcome["message"]), outcome


def test_expression_bombs_are_refused(hostile_outcomes: dict[str, dict[str, Any]]) -> None:
    _refused_quickly(hostile_outcomes["expression_chain"], "ConfigurationError")  # at load: too complex
    assert "too complex" in hostile_outcomes["expression_chain"]["message"]
    _refused_quickly(hostile_outcomes["expression_wide"], "ResponseParseError")  # at run time: too large
    assert "would build more than" in hostile_outcomes["expression_wide"]["message"]


def test_large_inputs_still_render() -> None:
    # The budget grows with the inputs: a 5 MB prompt or conversation is not a bomb.
    prompt = "word " * 1_000_000
    body = ContentHandler.from_preset("tgi").render_request(prompt, parameters={"max_new_tokens": 5})
    assert json.loads(body)["inputs"] == prompt
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": prompt[:50_000]} for i in range(100)]
    rendered = ChatTemplate.resolve("chatml").render(messages)
    assert rendered.count("<|im_start|>") == 101 and len(rendered) > 5_000_000
    tools = [{"type": "function", "function": {"name": f"f{i}", "parameters": {}}} for i in range(200)]
    body = ContentHandler.from_preset("openai").render_request(messages=messages[:3], tools=tools)
    assert len(json.loads(body)["tools"]) == 200


@pytest.mark.parametrize(
    "template",
    [
        "{% set ns = namespace(a=1) %}{% set ns.b = namespace() %}",
        "{% set ns = namespace(a=namespace()) %}",
        "{% set ns = namespace() %}{{ [ns, ns] }}",
    ],
)
def test_a_namespace_cannot_be_stored_in_another_value(template: str) -> None:
    # Namespaces are the one mutable value: inside another value they could grow it unseen.
    with pytest.raises(ConfigurationError, match="namespace cannot be stored"):
        ContentHandler(request_template=template, response={"text": "x"}, content_type="text/plain").render_request("hi")


def test_bounded_templates_render_as_jinja_does() -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    templates = [
        "{% autoescape true %}{{ '<b>' ~ prompt }}{% endautoescape %}",
        "{{ [prompt, 1, (2, 3), {'k': prompt}] }}|{{ (prompt ~ 1 ~ none) * 2 }}|{{ '%-6s|%3d' % (prompt, 7) }}",
        "{% for x in [[1, [2]], 3] recursive %}{{ loop.length }}{{ loop(x) if x is iterable else x }}{% endfor %}",
        "{{ '{0:>5}{1!r}'.format(prompt, [1]) }}{{ prompt|center(7) }}{{ 'a\tb'.expandtabs(4) }}",
        "{% macro m(x) %}<{{ x }}>{% endmacro %}{% set c %}{{ m(prompt) }}{% endset %}{{ c ~ c }}",
    ]
    for template in templates:
        expected = ImmutableSandboxedEnvironment().from_string(template).render(prompt="hi")
        handler = ContentHandler(request_template=template, response={"text": "x"}, content_type="text/plain")
        assert handler.render_request("hi").decode() == expected


def test_small_yaml_anchors_and_aliases_still_load(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "defaults: &d {region_name: us-east-1, max_tokens: 64}\n"
        "models:\n  a: {<<: *d, kind: llm, endpoint_name: ep-a}\n  b: {<<: *d, kind: llm, endpoint_name: ep-b}\n",
        encoding="utf-8",
    )
    assert load_config(path, name="b").max_tokens == 64


def test_expressions_nested_too_deeply_are_configuration_errors() -> None:
    # (before: "!!!…a" raised a bare RecursionError while compiling)
    for expression in ("!" * 1000 + "a", "[" * 300 + "a" + "]" * 300, "f(" * 300 + "@" + ")" * 300, "a" * 2000 + "[?b]"):
        with pytest.raises(ConfigurationError, match="JMESPath"):
            ContentHandler.from_dict({"request_template": "{{ prompt|tojson }}", "response": {"text": expression}})


def test_deeply_nested_replies_are_parse_errors() -> None:
    handler = ContentHandler.from_preset("openai")
    with pytest.raises(ResponseParseError, match="nested too deeply"):
        handler.parse_response(b"[" * 100_000)
    with pytest.raises(StreamParseError, match="nested too deeply") as info:
        handler.parse_stream_record('{"a":' * 100_000)
    assert isinstance(info.value, ResponseParseError)
    arguments = "[" * 100_000
    reply = {"choices": [{"message": {"content": None, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": arguments}}]}}]}
    parsed = handler.parse_response(json.dumps(reply).encode())
    message = ai_message(parsed.text, tool_calls=parsed.tool_calls, usage=None, response_metadata={})
    assert not message.tool_calls and "malformed arguments" in message.invalid_tool_calls[0]["error"]


CANARY = "canary-9d1e-secret"


@pytest.mark.parametrize("cls", [SageMakerLLM, ChatSageMaker])
def test_secrets_never_leak(cls: type) -> None:
    adapter = cls(
        endpoint_name="ep",
        region_name="us-east-1",
        aws_access_key_id=f"AKIA{CANARY}",
        aws_secret_access_key=CANARY,
        aws_session_token=f"token-{CANARY}",
    )
    texts = [
        repr(adapter),
        str(adapter),
        repr(adapter._settings()),
        str(adapter.model_dump()),
        json.dumps(adapter.to_config()),
        adapter.to_yaml(),
        json.dumps(dumpd(adapter)),
        str(adapter._get_ls_params()),
        str(adapter._identifying_params) if hasattr(adapter, "_identifying_params") else "",
    ]
    for text in texts:
        assert CANARY not in text
    assert adapter.aws_secret_access_key.get_secret_value() == CANARY  # still usable


def test_error_snippets_are_bounded() -> None:
    with pytest.raises(ResponseParseError) as info:
        ContentHandler.from_preset("tgi").parse_response(b"<html>" + b"x" * 100_000)
    assert len(info.value.body_snippet) <= 201
    assert len(str(info.value)) < 500


def test_local_endpoint_refuses_remote_bind() -> None:
    from sm_llm.local import LocalEndpoint

    for host in ("0.0.0.0", "192.168.1.10", "::"):
        with pytest.raises(ConfigurationError, match="allow_remote"):
            LocalEndpoint(host=host)


BAD_URLS = [
    "ftp://127.0.0.1:9000",
    "gopher://127.0.0.1:70/_x",
    "file:///etc/passwd",
    "127.0.0.1:8080",
    "http://",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:8080\n",
    "http://127.0.0.1\t:8080",
]


@pytest.mark.parametrize("url", BAD_URLS, ids=repr)
@pytest.mark.parametrize("cls", [SageMakerLLM, ChatSageMaker])
def test_endpoint_url_must_be_http_with_a_host(cls: type, url: str) -> None:
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        cls(endpoint_name="ep", region_name="us-east-1", endpoint_url=url)


@pytest.mark.parametrize("url", BAD_URLS, ids=repr)
def test_local_upstream_must_be_http_with_a_host(url: str) -> None:
    from sm_llm.local import LocalEndpoint

    with pytest.raises(ConfigurationError, match="upstream"):
        LocalEndpoint(upstream=url)


@pytest.mark.parametrize("field", ["timeout", "connect_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), float("-inf")])
def test_non_finite_timeouts_refused_at_construction(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=field):
        SageMakerLLM(endpoint_name="ep", region_name="us-east-1", **{field: value})


def test_expression_results_are_bounded_at_run_time() -> None:
    reply = json.dumps("x" * 200_000).encode()
    for expression in ("join(@, [@, @, @, @, @, @, @, @])", "[@, @, @, @, @, @, @, @, @, @, @, @, @, @, @, @]"):
        handler = ContentHandler.from_dict({"request_template": "{{ prompt|tojson }}", "response": {"text": expression}})
        with pytest.raises(ResponseParseError, match="would build more than"):
            handler.parse_response(reply)
    small = ContentHandler.from_dict({"request_template": "{{ prompt|tojson }}", "response": {"text": "join('-', [@, @])"}})
    assert small.parse_response(b'"ab"').text == "ab-ab"


def test_every_yaml_reader_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from sm_llm import cli
    from sm_llm.local import ServerConfig

    deep = "x: " + "[" * 1000 + "]" * 1000 + "\n"  # before: a bare RecursionError from each reader
    path = tmp_path / "deep.yaml"
    path.write_text(deep, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"deep\.yaml:1: not valid YAML: nested more than 100"):
        ServerConfig.from_yaml(path)
    with pytest.raises(ConfigurationError, match=r"<string>:1: not valid YAML: nested more than 100"):
        load_config(deep)
    (tmp_path / "t.jinja").write_text("{{ messages[0]['content'] }}", encoding="utf-8")
    (tmp_path / "t.yaml").write_text(deep, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"t\.yaml:1: not valid YAML"):
        ChatTemplate.resolve(str(tmp_path / "t.jinja"))
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # cli.main replaces it
    assert cli.main(["config", "check", str(path)]) == 2
    assert "deep.yaml:1: not valid YAML: nested more than 100" in capsys.readouterr().err
