"""Precompiled chat templates give the shipped presets' exact text, and the same errors.

Each shipped preset is compared with its "Jinja twin": the same template with a trailing
no-op comment, so it has no precompiled builder and renders through the sandboxed Jinja
environment as before. (tests/unit/test_chat_templates.py also checks the presets, now
on the precompiled path, against transformers' recorded output.)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_embeddings_unit import HOSTILE as HOSTILE_TEXTS
from test_handlers import HOSTILE

from sm_llm import chat_templates as chat_templates_module
from sm_llm._precompiled_chat import chat_builder_for, render_chat_precompiled
from sm_llm._render_budget import BASE_UNITS
from sm_llm.chat_templates import ChatTemplate
from sm_llm.errors import ConfigurationError

SETTINGS = settings(max_examples=int(os.environ.get("SM_LLM_HYPOTHESIS_EXAMPLES", "200")), deadline=None)
PRESETS = ["chatml", "llama2", "llama3", "mistral"]
ROLES = ["system", "user", "assistant", "tool", "developer", "User", ""]
# What str.strip() / Jinja's trim remove, and what they keep.
SPACES = ["  padded \n\t", "\u3000ideographic\u3000", "\x1c\x1d\x1e\x1f unit separators \x85", "\u200bzero width\u200b"]
TEXTS = HOSTILE + HOSTILE_TEXTS + SPACES


def twin(template: ChatTemplate) -> ChatTemplate:
    """The same template rendered through Jinja: its source with a no-op comment."""
    jinja = dataclasses.replace(template, source=template.source + "{#- jinja twin -#}")
    assert chat_builder_for(jinja.source) is None
    return jinja


TWINS = {name: twin(ChatTemplate.resolve(name)) for name in PRESETS}


def outcome(template: ChatTemplate, messages: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        return "text", template.render(messages, **kwargs)
    except ConfigurationError as exc:
        return "error", str(exc)


def same(name: str, messages: Any, *, bos: str | None = None, eos: str | None = None, **kwargs: Any) -> tuple[str, str]:
    ours = ChatTemplate.resolve(name, bos_token=bos, eos_token=eos)
    reference = ChatTemplate.resolve(TWINS[name], bos_token=bos, eos_token=eos)
    result = outcome(ours, messages, **kwargs)
    assert result == outcome(reference, messages, **kwargs)
    return result


def conversation(texts: list[str], *, system: str | None = None) -> list[dict[str, Any]]:
    """user/assistant turns of ``texts`` (user first), after an optional system message."""
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]
    return ([{"role": "system", "content": system}] if system is not None else []) + turns


def test_every_shipped_chat_template_has_a_builder() -> None:
    # Fails when a preset's .jinja is edited without its builder in sm_llm/_precompiled_chat.py.
    for name in PRESETS:
        assert chat_builder_for(ChatTemplate.resolve(name).source) is not None, name


def test_shipped_chat_templates_do_not_render_jinja_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_jinja(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("rendered through Jinja")

    monkeypatch.setattr(chat_templates_module, "render", no_jinja)
    for name in PRESETS:
        for add in (True, False):
            ChatTemplate.resolve(name).render(conversation(["hi", "yo", "again"], system="be brief"), add_generation_prompt=add)
    with pytest.raises(AssertionError, match="through Jinja"):
        TWINS["llama3"].render([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_hostile_conversations_give_the_templates_text(name: str, add_generation_prompt: bool) -> None:
    source = ChatTemplate.resolve(name).source
    for text in TEXTS:
        for messages in (
            conversation([text]),
            conversation([text, text, text], system=text),
            conversation([text, "a", text, "b"], system="s"),
            [{"role": "system", "content": text}],
            [{"role": text, "content": text}],
        ):
            kind, _ = same(name, messages, add_generation_prompt=add_generation_prompt)
            context = {"bos_token": "<s>", "eos_token": "</s>", "documents": None, "messages": messages,
                       "tools": None, "add_generation_prompt": add_generation_prompt}
            if kind == "text":  # not vacuous: the builder did render these
                assert render_chat_precompiled(chat_builder_for(source), context) is not None  # type: ignore[arg-type]
        for bos, eos in ((text, text), ("", ""), (text, "")):
            same(name, conversation([text, text], system=text), bos=bos, eos=eos, add_generation_prompt=add_generation_prompt)
            same(name, conversation(["x"]), add_generation_prompt=add_generation_prompt, bos_token=text, eos_token=text)


@pytest.mark.parametrize("name", PRESETS)
def test_every_role_in_every_place(name: str) -> None:
    for first in ROLES:
        for second in ROLES:
            for third in ROLES:
                messages = [{"role": r, "content": f" {r} {i} "} for i, r in enumerate((first, second, third))]
                for add in (True, False):
                    same(name, messages, add_generation_prompt=add)
                    same(name, messages[:1], add_generation_prompt=add)
                    same(name, messages[:2], add_generation_prompt=add)


def test_the_rejections_are_jinjas() -> None:
    assert same("llama2", [*conversation(["a", "b"]), {"role": "assistant", "content": "c"}])[0] == "error"
    assert same("mistral", [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}])[0] == "error"
    assert same("mistral", [{"role": "system", "content": "a"}, {"role": "assistant", "content": "b"}])[0] == "error"
    assert same("llama2", [{"role": "system", "content": "a"}, {"role": "system", "content": "b"}])[0] == "error"


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize(
    "case",
    [
        {"messages": [{"role": "user", "content": ["a", "b"]}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"messages": [{"role": "user"}]},
        {"messages": [{"content": "no role"}]},
        {"messages": [{"role": 1, "content": "x"}]},
        {"messages": [{"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]}, {"role": "user", "content": "y"}]},
        {"messages": [{"role": "user", "content": "x", "name": "bob", "thinking": "t"}]},
        {"messages": [{"role": "user", "content": "x", "reasoning": "r"}]},
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]},
        {"messages": [{"role": "user", "content": "x"}], "system_message": "shadowing a template variable"},
        {"messages": [{"role": "user", "content": "x"}], "date_string": "today", "documents": ["d"]},
        {"messages": [{"role": "user", "content": "x"}], "bos_token": 7, "eos_token": None},
        {"messages": [{"role": "user", "content": "x"}], "add_generation_prompt": "yes"},
        {"messages": [{"role": "user", "content": "x"}], "raise_exception": "shadowed"},
        {"messages": [{"role": "user", "content": "lone \ud800 surrogate"}]},
    ],
)
def test_inputs_of_other_shapes_behave_as_through_jinja(name: str, case: dict[str, Any]) -> None:
    kwargs = dict(case)
    messages = kwargs.pop("messages")
    same(name, messages, **kwargs)


@pytest.mark.parametrize("name", PRESETS)
def test_big_conversations_near_and_over_the_budget(name: str) -> None:
    # Under the builder's size bound the Jinja render is never refused; above it the
    # builder steps aside and Jinja renders (or refuses) as it always did.
    for size in (BASE_UNITS // 64, BASE_UNITS // 40, BASE_UNITS // 4, BASE_UNITS):
        same(name, conversation(["x" * size, "y"], system="z" * size))
    many = conversation(["hi", "ho"] * 600)  # over the per-message allowance: Jinja renders
    same(name, many)
    huge_tokens = "B" * (BASE_UNITS // 8)  # BOS repeated per turn: Jinja's budget refuses it
    same(name, conversation(["hi", "ho"] * 20), bos=huge_tokens, eos=huge_tokens)


def test_a_custom_template_has_no_builder() -> None:
    assert chat_builder_for("{{ messages[0]['content'] }}") is None
    assert ChatTemplate.resolve("{{ messages[0]['content'] }}").render([{"role": "user", "content": "q"}]) == "q"


# -- hypothesis: any roles, text and special tokens ----------------------------------------


@SETTINGS
@given(
    name=st.sampled_from(PRESETS),
    turns=st.lists(st.tuples(st.sampled_from(ROLES) | st.text(max_size=6), st.text()), min_size=1, max_size=6),
    bos=st.none() | st.text(max_size=8),
    eos=st.none() | st.text(max_size=8),
    add_generation_prompt=st.booleans(),
)
def test_any_conversation_gives_the_templates_text(
    name: str, turns: list[tuple[str, str]], bos: str | None, eos: str | None, add_generation_prompt: bool
) -> None:
    messages = [{"role": role, "content": content} for role, content in turns]
    same(name, messages, bos=bos, eos=eos, add_generation_prompt=add_generation_prompt)


@SETTINGS
@given(
    name=st.sampled_from(PRESETS),
    texts=st.lists(st.text(), min_size=1, max_size=6),
    system=st.none() | st.text(),
    add_generation_prompt=st.booleans(),
)
def test_any_alternating_conversation_gives_the_templates_text(
    name: str, texts: list[str], system: str | None, add_generation_prompt: bool
) -> None:
    kind, _ = same(name, conversation(texts, system=system), add_generation_prompt=add_generation_prompt)
    assert kind == "text"
