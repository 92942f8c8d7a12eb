"""Precompiled request bodies give the shipped templates' exact bytes, and the same errors.

Each shipped preset is compared with its "Jinja twin": the same handler whose template
has a trailing no-op comment, so it has no precompiled body and renders through the
sandboxed Jinja environment as before.
"""

from __future__ import annotations

import json
import os
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_embeddings_unit import HOSTILE as HOSTILE_TEXTS
from test_handlers import HOSTILE

from sm_llm import ConfigurationError, ContentHandler
from sm_llm import handlers as handlers_module
from sm_llm._precompiled import builder_for, render_precompiled
from sm_llm._templating import compile_template, render, tojson
from sm_llm.handlers import list_presets

SETTINGS = settings(
    max_examples=int(os.environ.get("SM_LLM_HYPOTHESIS_EXAMPLES", "200")), deadline=None
)
PRESETS = list_presets()
PROMPT_PRESETS = [p for p in PRESETS if p not in ("openai-embeddings", "tei", "jumpstart-embeddings")]
MESSAGE_PRESETS = ["openai", "jumpstart-chat", "tei", "openai-embeddings", "jumpstart-embeddings"]
TOOLS = [{"type": "function", "function": {"name": "f\"x", "parameters": {"type": "object"}}}]
# Keys a template also writes: a parameter must keep its place when the template replaces it.
COLLIDING = {"messages": None, "inputs": "x", "input": 1, "text_inputs": "x", "stream": False,
             "stream_options": {}, "tools": [], "tool_choice": "none", "parameters": {"a": 1}}


def twin(name: str) -> ContentHandler:
    """The preset rendered through Jinja: same handler, template with a no-op comment."""
    preset = ContentHandler.from_preset(name)
    data = preset.model_dump(exclude_none=True)
    data["request_template"] = preset.request_template + "{#- jinja twin -#}"
    handler = ContentHandler.from_dict(data)
    assert handler._precompiled is None
    return handler


TWINS = {name: twin(name) for name in PRESETS}


def both(name: str, prompt: str | None = None, **kwargs: Any) -> tuple[bytes, bytes]:
    ours = ContentHandler.from_preset(name).render_request(prompt, **kwargs)
    reference = TWINS[name].render_request(prompt, **kwargs)
    return ours, reference


def outcome(handler: ContentHandler, prompt: Any = None, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "body", handler.render_request(prompt, **kwargs)
    except ConfigurationError as exc:
        return "error", str(exc)


def test_every_shipped_preset_has_a_precompiled_body() -> None:
    # Fails when a preset's template is edited without its builder in sm_llm/_precompiled.py.
    for name in PRESETS:
        assert ContentHandler.from_preset(name)._precompiled is not None, name


def test_a_user_template_renders_through_jinja() -> None:
    handler = ContentHandler.from_dict({"request_template": '{{ {"q": prompt} | tojson }}', "response": {"text": "a"}})
    assert handler._precompiled is None
    assert handler.render_request("x") == b'{"q":"x"}'


def test_shipped_presets_do_not_render_jinja_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_jinja(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("rendered through Jinja")

    monkeypatch.setattr(handlers_module, "render", no_jinja)
    for name in PROMPT_PRESETS:
        ContentHandler.from_preset(name).render_request("hi", parameters={"a": 1}, stream=True)
    for name in MESSAGE_PRESETS:
        ContentHandler.from_preset(name).render_request(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(AssertionError, match="through Jinja"):
        TWINS["tgi"].render_request("hi")


@pytest.mark.parametrize("name", PROMPT_PRESETS)
@pytest.mark.parametrize("prompt", HOSTILE)
@pytest.mark.parametrize("stream", [False, True])
def test_hostile_prompts_give_the_templates_bytes(name: str, prompt: str, stream: bool) -> None:
    for parameters in ({}, {"max_new_tokens": 3, "stop": [prompt]}, {prompt: prompt}, COLLIDING):
        ours, reference = both(name, prompt, parameters=parameters, stream=stream)
        assert ours == reference


@pytest.mark.parametrize("name", MESSAGE_PRESETS)
@pytest.mark.parametrize("stream", [False, True])
def test_hostile_messages_give_the_templates_bytes(name: str, stream: bool) -> None:
    texts = HOSTILE + HOSTILE_TEXTS
    messages = [{"role": "system", "content": s} for s in texts] + [{"content": s, "name": s} for s in texts]
    for parameters in ({}, {"encoding_format": "float"}, COLLIDING):
        extra: dict[str, Any] = {}
        if name == "openai":
            extra = {"tools": TOOLS, "tool_choice": {"type": "function"}, "response_format": {"type": "json_object"}}
        for kwargs in ({}, extra):
            ours, reference = both(name, messages=messages, parameters=parameters, stream=stream, **kwargs)
            assert ours == reference


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize(
    "case",
    [
        {"prompt": "x", "parameters": {"bad": object()}},  # not JSON-serialisable
        {"prompt": "x", "parameters": MappingProxyType({"a": 1})},  # merge refuses non-dicts
        {"prompt": "lone \ud800 surrogate"},
        {"messages": [{"role": "user"}]},  # no content
        {"messages": [{"role": "user", "content": "a"}, "not a dict"]},
        {"messages": ({"role": "user", "content": "a"},)},
        {"prompt": "x", "parameters": {"deep": [[[[[[[[[[[]]]]]]]]]]] * 3}},
    ],
    ids=["unserialisable", "mapping", "surrogate", "no-content", "not-a-dict", "tuple", "nested"],
)
def test_inputs_of_other_shapes_behave_as_through_jinja(name: str, case: dict[str, Any]) -> None:
    kwargs = dict(case)
    prompt = kwargs.pop("prompt", None)
    assert outcome(ContentHandler.from_preset(name), prompt, **kwargs) == outcome(TWINS[name], prompt, **kwargs)


def test_a_cyclic_parameter_is_refused_as_through_jinja() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    for name in PROMPT_PRESETS:
        ours = outcome(ContentHandler.from_preset(name), "x", parameters={"c": cyclic})
        assert ours[0] == "error" and ours == outcome(TWINS[name], "x", parameters={"c": cyclic})


def test_render_precompiled_matches_render_of_the_source() -> None:
    # The module-level pair, without a handler: the same context, the same text.
    for name in PRESETS:
        source = ContentHandler.from_preset(name).request_template
        builder = builder_for(source)
        assert builder is not None
        for prompt, messages in (("p", None), (None, [{"role": "user", "content": "m"}])):
            context = {"prompt": prompt, "messages": messages, "parameters": {"k": [1, 2.5, None]},
                       "stream": True, "tools": None, "tool_choice": None, "response_format": None}
            assert render_precompiled(builder, context) == render(compile_template(source), context)


# -- hypothesis: any text, any JSON parameters --------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
parameter_sets = st.dictionaries(st.sampled_from(sorted(COLLIDING)) | st.text(max_size=10), json_values, max_size=6)


@SETTINGS
@given(
    name=st.sampled_from(PROMPT_PRESETS),
    prompt=st.text(),
    parameters=parameter_sets,
    stream=st.booleans(),
)
def test_any_prompt_and_parameters_give_the_templates_bytes(
    name: str, prompt: str, parameters: dict[str, Any], stream: bool
) -> None:
    kwargs = {"parameters": parameters, "stream": stream}
    assert outcome(ContentHandler.from_preset(name), prompt, **kwargs) == outcome(TWINS[name], prompt, **kwargs)


@SETTINGS
@given(
    name=st.sampled_from(MESSAGE_PRESETS),
    contents=st.lists(st.text() | json_values, min_size=1, max_size=5),
    parameters=parameter_sets,
    stream=st.booleans(),
    tool_choice=st.none() | json_values,
    response_format=st.none() | json_values,
)
def test_any_messages_give_the_templates_bytes(
    name: str, contents: list[Any], parameters: dict[str, Any], stream: bool, tool_choice: Any, response_format: Any
) -> None:
    messages = [{"role": "user", "content": c} for c in contents]
    kwargs: dict[str, Any] = {"messages": messages, "parameters": parameters, "stream": stream}
    if name == "openai":
        kwargs.update(tools=TOOLS, tool_choice=tool_choice, response_format=response_format)
    ours, reference = outcome(ContentHandler.from_preset(name), **kwargs), outcome(TWINS[name], **kwargs)
    assert ours == reference
    if ours[0] == "body":
        json.loads(ours[1])  # and it is JSON


@SETTINGS
@given(value=json_values)
def test_tojson_is_json_dumps_with_its_settings(value: Any) -> None:
    # tojson reuses one encoder instead of building one per call: the same text, indent too.
    assert tojson(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert tojson(value, 0) == json.dumps(value, ensure_ascii=False, indent=0, separators=(",", ":"))
    assert tojson(value, 2) == json.dumps(value, ensure_ascii=False, indent=2, separators=(", ", ": "))
