"""ChatTemplate: presets and inline templates render exactly what transformers renders.

The expectations in data/chat_templates/expected.json were recorded with
transformers' own renderer by data/chat_templates/generate.py; transformers is
never imported here.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sm_llm.chat_templates import ChatTemplate
from sm_llm.errors import ConfigurationError
from sm_llm.handlers import list_presets, templates_dir

DATA = Path(__file__).parent / "data" / "chat_templates"
RECORDED = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
CASES = RECORDED["cases"]
PRESETS = ["chatml", "llama2", "llama3", "mistral"]
HELLO = [{"role": "user", "content": "Hello!"}]


def _template(case: dict[str, Any]) -> ChatTemplate:
    if "preset" in case:
        return ChatTemplate.resolve(case["preset"])
    return ChatTemplate.resolve(case["source"], bos_token=case["bos_token"], eos_token=case["eos_token"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_renders_like_transformers(case: dict[str, Any]) -> None:
    template = _template(case)
    kwargs = {"add_generation_prompt": case["add_generation_prompt"], "tools": case.get("tools")}
    if "error" in case:
        with pytest.raises(ConfigurationError) as info:
            template.render(case["messages"], **kwargs, **case.get("extra", {}))
        assert case["error"] in str(info.value)
    else:
        assert template.render(case["messages"], **kwargs, **case.get("extra", {})) == case["expected"]


def test_recording_covers_every_preset_and_the_rejections() -> None:
    ids = {c["id"] for c in CASES}
    for preset in PRESETS:
        for conversation in ("single_user", "system_user", "multi_turn", "hostile"):
            assert {f"{preset}/{conversation}/gen", f"{preset}/{conversation}/nogen"} <= ids
    rejected = {c["preset"] for c in CASES if c["id"].split("/")[1] == "bad_alternation" and "error" in c}
    assert rejected == {"llama2", "mistral"}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_files_are_the_recorded_ones(preset: str) -> None:
    recorded = RECORDED["presets"][preset]
    source = (templates_dir() / "chat" / f"{preset}.jinja").read_text(encoding="utf-8")
    assert hashlib.sha256(source.encode()).hexdigest() == recorded["sha256"], "re-run generate.py"
    template = ChatTemplate.resolve(preset)
    assert (template.name, template.source) == (preset, source)
    assert (template.bos_token, template.eos_token, template.stop) == (
        recorded["bos_token"],
        recorded["eos_token"],
        recorded["stop"],
    )
    assert source.startswith("{#- source: ") and source.splitlines()[0].endswith(" -#}")


def test_preset_tokens() -> None:
    tokens = {p: (t.bos_token, t.eos_token, t.stop) for p in PRESETS if (t := ChatTemplate.resolve(p))}
    assert tokens == {
        "llama3": ("<|begin_of_text|>", "<|eot_id|>", ["<|eot_id|>"]),
        "llama2": ("<s>", "</s>", ["</s>"]),
        "mistral": ("<s>", "</s>", ["</s>"]),
        "chatml": ("", "<|im_end|>", ["<|im_end|>"]),
    }


def test_list_presets_lists_the_chat_templates() -> None:
    assert list_presets("chat") == PRESETS


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigurationError) as info:
        ChatTemplate.resolve("llama9")
    for preset in PRESETS:
        assert preset in str(info.value)


def test_inline_template() -> None:
    template = ChatTemplate.resolve("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}")
    assert (template.name, template.bos_token, template.eos_token, template.stop) == ("inline", "", "", [])
    assert template.render(HELLO) == "Hello!"
    assert ChatTemplate.resolve("{{ 'only an expression' }}").render(HELLO) == "only an expression"


def test_jinja_file_with_and_without_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "mine.jinja"
    path.write_text("{{ bos_token }}[{{ messages[0].content }}]{{ eos_token }}\n", encoding="utf-8")
    bare = ChatTemplate.resolve(path)
    assert (bare.bos_token, bare.eos_token, bare.stop, bare.name) == ("", "", [], str(path))
    assert bare.render(HELLO) == "[Hello!]"
    (tmp_path / "mine.yaml").write_text('bos_token: "<B>"\neos_token: "<E>"\n', encoding="utf-8")
    with_tokens = ChatTemplate.resolve(str(path))
    assert (with_tokens.bos_token, with_tokens.eos_token, with_tokens.stop) == ("<B>", "<E>", ["<E>"])
    assert with_tokens.render(HELLO) == "<B>[Hello!]<E>"


def test_bad_sidecar_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_text("{{ messages[0].content }}", encoding="utf-8")
    (tmp_path / "t.yaml").write_text("eos_tokn: x\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="may only set"):
        ChatTemplate.resolve(tmp_path / "t.jinja")
    (tmp_path / "t.yaml").write_text("stop: </s>\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="stop must be a list"):
        ChatTemplate.resolve(tmp_path / "t.jinja")


def _tokenizer_config(tmp_path: Path, **config: Any) -> Path:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def test_tokenizer_config_json(tmp_path: Path) -> None:
    llama3 = ChatTemplate.resolve("llama3")
    body = llama3.source.split("\n", 1)[1]  # the upstream string, without our source comment
    path = _tokenizer_config(
        tmp_path,
        chat_template=body,
        bos_token={"__type": "AddedToken", "content": "<|begin_of_text|>", "lstrip": False},
        eos_token="<|eot_id|>",
        pad_token=None,
    )
    template = ChatTemplate.resolve(path)
    assert (template.bos_token, template.eos_token, template.stop) == (llama3.bos_token, "<|eot_id|>", ["<|eot_id|>"])
    case = next(c for c in CASES if c["id"] == "llama3/system_multi_turn/gen")
    assert template.render(case["messages"]) == case["expected"]
    assert ChatTemplate.resolve(str(path)).source == body


def test_tokenizer_config_named_templates(tmp_path: Path) -> None:
    named = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ messages[0].content }}!"}]
    path = _tokenizer_config(tmp_path, chat_template=named, bos_token=None, eos_token={"content": "</s>"})
    template = ChatTemplate.resolve(path)
    assert (template.bos_token, template.eos_token, template.render(HELLO)) == ("", "</s>", "Hello!!")
    path = _tokenizer_config(tmp_path, chat_template=named[:1])
    with pytest.raises(ConfigurationError, match="no 'default' chat template"):
        ChatTemplate.resolve(path)


def test_tokenizer_config_with_template_beside_it(tmp_path: Path) -> None:
    path = _tokenizer_config(tmp_path, eos_token="<|im_end|>")
    with pytest.raises(ConfigurationError, match="has no chat_template"):
        ChatTemplate.resolve(path)
    (tmp_path / "chat_template.jinja").write_text("<{{ messages[0].content }}>", encoding="utf-8")
    assert ChatTemplate.resolve(path).render(HELLO) == "<Hello!>"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_broken_tokenizer_config(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError):
        ChatTemplate.resolve(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        ChatTemplate.resolve(Path("/nonexistent/chat.jinja"))


def test_bos_and_eos_overrides() -> None:
    template = ChatTemplate.resolve("llama3", bos_token="")
    assert template.render(HELLO).startswith("<|start_header_id|>user")
    mistral = ChatTemplate.resolve("mistral", bos_token="<BOS>", eos_token="<EOS>")
    assert (mistral.bos_token, mistral.eos_token, mistral.stop) == ("<BOS>", "<EOS>", ["<EOS>"])
    conversation = [*HELLO, {"role": "assistant", "content": "Hi"}]
    assert mistral.render(conversation, add_generation_prompt=False) == "<BOS> [INST] Hello! [/INST] Hi<EOS>"
    again = ChatTemplate.resolve(mistral, eos_token="")
    assert (again.bos_token, again.eos_token, again.stop) == ("<BOS>", "", [])
    assert ChatTemplate.resolve(mistral) is mistral
    # Per call, like transformers' kwargs overriding the tokenizer's special tokens.
    assert ChatTemplate.resolve("llama2").render(HELLO, bos_token="") == "[INST] Hello! [/INST]"


def test_raise_exception_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        ChatTemplate.resolve("llama2").render([*HELLO, *HELLO])
    assert "Conversation roles must alternate user/assistant/user/assistant/..." in str(info.value)
    with pytest.raises(ConfigurationError, match="Only user and assistant roles are supported"):
        ChatTemplate.resolve("mistral").render([*HELLO, {"role": "tool", "content": "x"}])


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ messages.append(1) }}",
        "{{ messages[0].update({'role': 'system'}) }}",
        "{% set ns = namespace(_secret=1) %}",
        "{% set ns = namespace() %}{% set ns._secret = 1 %}",
        "{{ raise_exception.__globals__['os'] }}",
    ],
)
def test_sandbox_escapes_are_configuration_errors(source: str) -> None:
    with pytest.raises(ConfigurationError):
        ChatTemplate.resolve(source).render(HELLO)


def test_syntax_errors_surface_at_resolve() -> None:
    with pytest.raises(ConfigurationError, match="invalid chat template"):
        ChatTemplate.resolve("{% for m in messages %}{{ m.content }}")


def test_strftime_now() -> None:
    before = datetime.now().strftime("%Y-%m-%d")
    rendered = ChatTemplate.resolve("{{ strftime_now('%Y-%m-%d') }}").render(HELLO)
    assert rendered in {before, datetime.now().strftime("%Y-%m-%d")}


def test_messages_are_validated_and_left_untouched() -> None:
    template = ChatTemplate.resolve("chatml")
    with pytest.raises(ConfigurationError, match="without messages"):
        template.render([])
    with pytest.raises(ConfigurationError, match="must be dicts"):
        template.render(["hello"])  # type: ignore[list-item]
    messages = [{"role": "user", "content": "x", "name": None, "reasoning": "r"}]
    snapshot = json.dumps(messages)
    template.render(messages)
    assert json.dumps(messages) == snapshot


class Color(str, enum.Enum):  # noqa: UP042 - str() of this one is "Color.RED", unlike StrEnum
    RED = "red"


def test_values_reach_templates_as_plain_data() -> None:
    template = ChatTemplate.resolve("{{ color }}|{{ color.name }}|{{ thing }}|{{ point | tojson }}")

    @dataclasses.dataclass
    class Point:
        x: int

    assert template.render(HELLO, color=Color.RED, thing=object(), point=Point(1)) == 'red||<object>|{"x": 1}'


def test_chat_template_is_frozen() -> None:
    template = ChatTemplate.resolve("llama3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        template.bos_token = ""  # type: ignore[misc]


def test_transformers_is_never_imported() -> None:
    assert "transformers" not in sys.modules
