"""YAML configuration: round trips, interpolation, error reports with file:line, schema."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sm_llm import ChatSageMaker, ConfigurationError, ContentHandler, SageMakerLLM, load_config
from sm_llm.cli import main
from sm_llm.config import config_schema

DATA = Path(__file__).parent / "data" / "configs"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CANARY = "canary-secret-7f3a"

# Every config-able field set to a non-default value, per kind.
COMMON: dict[str, Any] = {
    "endpoint_name": "my-endpoint",
    "model_kwargs": {"top_k": 5, "repetition_penalty": 1.1},
    "temperature": 0.3,
    "max_tokens": 77,
    "top_p": 0.9,
    "stop": ["END", "\n\n"],
    "streaming": True,
    "timeout": 12.5,
    "connect_timeout": 3.0,
    "read_timeout": 90.0,
    "max_retries": 5,
    "max_connections": 16,
    "region_name": "eu-west-1",
    "credentials_profile_name": "prod",
    "endpoint_url": "http://127.0.0.1:9000",
    "target_variant": "blue",
    "target_container_hostname": "c-1",
    "inference_component_name": "ic-1",
    "custom_attributes": {"trace": "t1"},
    "enable_explanations": "`true`",
    "session_id": "sess-1",
    "inference_id": "req-1",
}
KINDS: dict[str, dict[str, Any]] = {
    "llm": {**COMMON, "content_handler": "lmi", "target_model": "a.tar.gz"},
    "chat": {**COMMON, "content_handler": "tgi", "chat_template": "llama3", "chat_template_kwargs": {"bos_token": ""}},
}


def _stop_key(value: dict[str, Any]) -> dict[str, Any]:
    return value


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_every_field(kind: str) -> None:
    adapter = load_config({"kind": kind, **KINDS[kind]})
    config = adapter.to_config()
    assert config == {"kind": kind, **KINDS[kind]}
    again = load_config(yaml.safe_load(adapter.to_yaml()))
    assert again.to_config() == config
    assert type(again) is type(adapter)


def test_inline_handler_round_trips() -> None:
    handler = {"name": "mine", "request_template": "{{ {'q': prompt} | tojson }}", "response": {"text": "answer"}}
    adapter = load_config({"kind": "llm", "endpoint_name": "ep", "content_handler": handler})
    assert isinstance(adapter.handler, ContentHandler) and adapter.handler.name == "mine"
    assert load_config(adapter.to_config()).handler == adapter.handler


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_TEST_EP", "from-env")
    monkeypatch.delenv("SM_TEST_UNSET", raising=False)
    monkeypatch.setenv("SM_TEST_EMPTY", "")
    adapter = load_config(
        "kind: llm\nendpoint_name: ${SM_TEST_EP}\nregion_name: ${SM_TEST_UNSET:-us-west-2}\n"
        "credentials_profile_name: ${SM_TEST_EMPTY:-fallback}\ninference_id: pre-${SM_TEST_EP}-post\n"
    )
    assert (adapter.endpoint_name, adapter.region_name) == ("from-env", "us-west-2")
    assert adapter.credentials_profile_name == "fallback"
    assert adapter.inference_id == "pre-from-env-post"


def test_missing_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SM_TEST_NOPE", raising=False)
    with pytest.raises(ConfigurationError) as info:
        load_config("kind: llm\nendpoint_name: ep\nregion_name: ${SM_TEST_NOPE}\n")
    assert "<string>:3 region_name: environment variable SM_TEST_NOPE is not set" in str(info.value)


MALFORMED = {
    "unknown_key.yaml": "unknown_key.yaml:3 max_tokenz: unknown field for kind llm (did you mean max_tokens",
    "wrong_type.yaml": "wrong_type.yaml:3 temperature: must be a valid number",
    "bad_preset.yaml": "bad_preset.yaml:3 content_handler: unknown content handler preset 'tgx'",
    "bad_routing.yaml": "bad_routing.yaml:3 target_variant: target_variant='blue_green' is not allowed",
    "negative_max_tokens.yaml": "negative_max_tokens.yaml:7 models.summariser.max_tokens: must be greater than 0",
    "syntax_error.yaml": "syntax_error.yaml:3: not valid YAML",
    "bad_kind.yaml": "bad_kind.yaml:1 kind: must be one of llm, chat, embeddings",
    "bad_endpoint_name.yaml": "bad_endpoint_name.yaml:2 endpoint_name:",
    "missing_template.yaml": "missing_template.yaml:4 chat_template:",
    "bad_custom_attributes.yaml": "bad_custom_attributes.yaml:3 custom_attributes:",
    "top_level_typo.yaml": "top_level_typo.yaml:1 defualts: unknown top-level key",
    "chat_template_on_llm.yaml": "chat_template_on_llm.yaml:3 chat_template: unknown field for kind llm",
    "not_a_mapping.yaml": "not_a_mapping.yaml:1 (top): a configuration must be a mapping",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_report_file_line_and_path(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(DATA / name)
    assert MALFORMED[name] in str(info.value), str(info.value)


def test_every_problem_reported_at_once() -> None:
    text = "kind: llm\nendpoint_name: ep\nmax_tokens: 0\ntemperature: warm\ntarget_variant: a_b\nbogus: 1\n"
    with pytest.raises(ConfigurationError) as info:
        load_config(text)
    message = str(info.value)
    assert message.startswith("4 problems")
    for fragment in (":3 max_tokens", ":4 temperature", ":5 target_variant", ":6 bogus"):
        assert fragment in message


def test_models_defaults_and_name(tmp_path: Path) -> None:
    handler = tmp_path / "handlers" / "mine.yaml"
    handler.parent.mkdir()
    handler.write_text("name: mine\nrequest_template: '{{ {\"x\": prompt} | tojson }}'\nresponse: {text: y}\n")
    path = tmp_path / "agent.yaml"
    path.write_text(
        "defaults:\n  region_name: us-east-1\n  model_kwargs: {seed: 1}\n"
        "models:\n  a:\n    endpoint_name: ep-a\n    content_handler: handlers/mine.yaml\n"
        "    model_kwargs: {top_k: 3}\n  b:\n    kind: chat\n    endpoint_name: ep-b\n"
    )
    a = load_config(path, name="a")
    assert isinstance(a, SageMakerLLM) and a.handler.name == "mine"
    assert a.model_kwargs == {"seed": 1, "top_k": 3} and a.region_name == "us-east-1"
    assert isinstance(SageMakerLLM.from_yaml(path, name="a"), SageMakerLLM)
    assert isinstance(ChatSageMaker.from_yaml(path, name="b"), ChatSageMaker)
    with pytest.raises(ConfigurationError, match="pass name="):
        load_config(path)
    with pytest.raises(ConfigurationError, match="no model named 'c'"):
        load_config(path, name="c")
    with pytest.raises(ConfigurationError, match="not a SageMakerLLM"):
        SageMakerLLM.from_yaml(path, name="b")


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` in process: exit code, stdout, stderr."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_secrets_never_written_or_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "s.yaml"
    path.write_text(f"kind: chat\nendpoint_name: ep\naws_access_key_id: AKIA{CANARY}\naws_secret_access_key: {CANARY}\n")
    with pytest.warns(UserWarning, match="literal secret"):
        adapter = load_config(path)
    for text in (adapter.to_yaml(), json.dumps(adapter.to_config()), repr(adapter), str(adapter), caplog.text):
        assert CANARY not in text
    code, out, err = _cli(capsys, monkeypatch, "config", "check", str(path))
    assert code == 0, err
    assert CANARY not in out + err + caplog.text
    assert "aws_secret_access_key: '****'" in out
    assert err.startswith("sm-llm: warning: ") and "literal secret" in err


def test_no_warning_for_interpolated_secret(monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder) -> None:
    monkeypatch.setenv("SM_TEST_SECRET", CANARY)
    adapter = load_config("kind: llm\nendpoint_name: ep\naws_secret_access_key: ${SM_TEST_SECRET}\n")
    assert adapter.aws_secret_access_key.get_secret_value() == CANARY
    assert not [w for w in recwarn if "literal secret" in str(w.message)]


def test_schema_accepts_examples_and_rejects_malformed() -> None:
    schema = config_schema()
    validator = jsonschema.Draft202012Validator(schema)
    examples = sorted(EXAMPLES.glob("*.yaml"))
    for path in examples:
        document = yaml.safe_load(path.read_text())
        errors = list(validator.iter_errors(document))
        assert not errors, (path.name, errors[0].message)
    for document in (
        {"kind": "llm", "endpoint_name": "ep", "max_tokenz": 5},
        {"kind": "llm", "endpoint_name": "ep", "temperature": "hot"},
        {"kind": "vision", "endpoint_name": "ep"},
        {"kind": "llm"},
        {"defualts": {}, "models": {}},
        {"models": {"a": {"kind": "chat", "endpoint_name": "ep", "max_tokens": -1}}},
    ):
        assert list(validator.iter_errors(document)), document
    for document in ({"kind": "chat", "endpoint_name": "ep"}, {"endpoint_name": "ep"}, {"models": {"a": {"endpoint_name": "x"}}}):
        assert not list(validator.iter_errors(document)), document


def test_cli_schema_and_check_errors(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _cli(capsys, monkeypatch, "config", "schema")
    assert code == 0 and json.loads(out) == config_schema()
    code, out, err = _cli(capsys, monkeypatch, "config", "check", str(DATA / "negative_max_tokens.yaml"))
    assert code == 2 and out == ""
    assert "negative_max_tokens.yaml:7 models.summariser.max_tokens: must be greater than 0" in err


_HANDLER = "name: {name}\nrequest_template: '{{{{ {{\"x\": prompt}} | tojson }}}}'\nresponse: {{text: y}}\n"


def test_every_path_field_is_relative_to_the_file_never_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    for root, name in ((project, "real"), (elsewhere, "decoy")):
        (root / "h").mkdir(parents=True)
        (root / "h" / "handler").write_text(_HANDLER.format(name=name))  # no .yaml suffix
        (root / "h" / "handler.yml").write_text(_HANDLER.format(name=name))
        (root / "t").mkdir()
        (root / "t" / "chat.txt").write_text(f"{name}:{{{{ messages[-1]['content'] }}}}")
        (root / "chat.txt").write_text(f"{name}:{{{{ messages[-1]['content'] }}}}")
    path = project / "agent.yaml"
    path.write_text(
        "models:\n"
        "  a: {kind: chat, endpoint_name: ep, content_handler: h/handler, chat_template: t/chat.txt}\n"
        "  b: {kind: chat, endpoint_name: ep, content_handler: h/handler.yml, chat_template: chat.txt}\n"
        "  c: {kind: chat, endpoint_name: ep, content_handler: tgi, chat_template: llama3}\n"
        "  d: {kind: chat, endpoint_name: ep, content_handler: tgi, chat_template: '{{ messages[0].content }}'}\n"
    )
    monkeypatch.chdir(elsewhere)  # the decoys sit in the current directory
    for name in ("a", "b"):
        chat = load_config(path, name=name)
        assert isinstance(chat, ChatSageMaker) and chat.handler.name == "real"
        assert chat._template is not None and chat._template.source.startswith("real:")
        assert str(chat.chat_template).startswith(str(project.resolve()))
    c = load_config(path, name="c")  # presets and inline templates are not paths
    assert c.content_handler == "tgi" and c.chat_template == "llama3"
    assert load_config(path, name="d").chat_template == "{{ messages[0].content }}"
