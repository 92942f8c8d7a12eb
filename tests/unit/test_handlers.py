"""ContentHandler: presets, byte-exact rendering of hostile strings, sandboxing, parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sm_llm import ConfigurationError, ContentHandler, ModelError, ResponseParseError
from sm_llm.errors import StreamError
from sm_llm.handlers import list_presets

PRESETS = ["jumpstart", "jumpstart-chat", "lmi", "openai", "text2text", "tgi"]

HOSTILE = [
    'He said "hi"',
    "back\\slash \\n not a newline",
    "line1\nline2\r\nline3\ttab",
    "nul\x00byte",
    "emoji 🦜🔥 and CJK 你好世界 and combining e\u0301",
    "{{ 7*7 }}",
    "{% raw %}x{% endraw %}",
    "{{ ''.__class__.__mro__ }}",
    "</script><b>&amp;'",
    "\u2028\u2029",
    "",
]

# Where each preset puts the prompt in the body.
PROMPT_PATH = {
    "tgi": lambda b: b["inputs"],
    "lmi": lambda b: b["inputs"],
    "jumpstart": lambda b: b["inputs"],
    "text2text": lambda b: b["text_inputs"],
    "openai": lambda b: b["messages"][0]["content"],
    "jumpstart-chat": lambda b: b["inputs"][0][0]["content"],
}


def test_every_preset_ships() -> None:
    assert set(PRESETS) <= set(list_presets())


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("prompt", HOSTILE)
def test_hostile_prompt_reaches_body_exactly(name: str, prompt: str) -> None:
    handler = ContentHandler.from_preset(name)
    body = handler.render_request(prompt, parameters={"max_new_tokens": 3})
    decoded = json.loads(body)
    assert PROMPT_PATH[name](decoded) == prompt
    # Jinja-looking text is never evaluated: "49" must not appear for "{{ 7*7 }}".
    if prompt == "{{ 7*7 }}":
        assert b"49" not in body


@pytest.mark.parametrize("name", PRESETS)
def test_lone_surrogate_is_refused_before_sending(name: str) -> None:
    handler = ContentHandler.from_preset(name)
    with pytest.raises(ConfigurationError, match="lone surrogate"):
        handler.render_request("bad \ud800 text")


def test_hostile_messages_reach_body_exactly() -> None:
    handler = ContentHandler.from_preset("openai")
    messages = [{"role": "system", "content": s} for s in HOSTILE]
    body = json.loads(handler.render_request(messages=messages))
    assert body["messages"] == messages


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ prompt.__class__ }}",
        "{{ parameters.update({'x': 1}) }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
    ],
)
def test_template_cannot_reach_python_internals(template: str) -> None:
    handler = ContentHandler(request_template=template, response={"text": "x"}, content_type="text/plain")
    with pytest.raises(ConfigurationError):
        handler.render_request("hi")


def test_undefined_variable_is_an_error() -> None:
    handler = ContentHandler(request_template="{{ promt | tojson }}", response={"text": "x"})
    with pytest.raises(ConfigurationError, match="promt"):
        handler.render_request("hi")


def test_template_producing_invalid_json_is_an_error() -> None:
    handler = ContentHandler(request_template='{"inputs": {{ prompt }}}', response={"text": "x"})
    with pytest.raises(ConfigurationError, match="invalid JSON"):
        handler.render_request("hi")


def test_template_syntax_error_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="invalid template"):
        ContentHandler.from_dict({"request_template": "{% if %}", "response": {"text": "x"}})


def test_bad_jmespath_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="JMESPath"):
        ContentHandler.from_dict({"request_template": "{}", "response": {"text": "a[?"}})


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="tgi"):
        ContentHandler.from_preset("nope")


def test_unknown_handler_key_is_reported() -> None:
    with pytest.raises(ConfigurationError, match="request_tempalte"):
        ContentHandler.from_dict({"request_tempalte": "{}", "response": {"text": "x"}})


def test_from_file_and_resolve(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\nrequest_template: '{{ {\"q\": prompt} | tojson }}'\nresponse:\n  text: answer\n"
    )
    handler = ContentHandler.resolve(str(path))
    assert handler.name == "mine"
    assert json.loads(handler.render_request("x")) == {"q": "x"}
    assert handler.parse_response(b'{"answer": "y"}').text == "y"
    assert ContentHandler.resolve("tgi") is ContentHandler.from_preset("tgi")


def test_resolve_wraps_a_langchain_aws_handler_object() -> None:
    """handlers never imports the langchain-aws module: it registers itself (on import of
    sm_llm), and ContentHandler.resolve still takes such objects, or names what one lacks."""

    class Handler:
        content_type = accepts = "application/json"

        def transform_input(self, prompt: str, model_kwargs: dict[str, object]) -> bytes:
            return json.dumps({"q": prompt, **model_kwargs}).encode()

        def transform_output(self, output: object) -> str:
            return "out"

    handler = ContentHandler.resolve(Handler())
    assert (handler.name, handler.content_type) == ("Handler", "application/json")
    assert json.loads(handler.render_request("hi", parameters={"n": 1})) == {"q": "hi", "n": 1}
    with pytest.raises(ConfigurationError, match=r"'object' object is not a content handler: it lacks transform_input"):
        ContentHandler.resolve(object())


@pytest.mark.parametrize(
    ("name", "stop_key", "max_key"),
    [
        ("tgi", ("parameters", "stop"), ("parameters", "max_new_tokens")),
        ("lmi", ("parameters", "stop_sequences"), ("parameters", "max_new_tokens")),
        ("openai", ("stop",), ("max_tokens",)),
        ("jumpstart", None, ("parameters", "max_new_tokens")),
        ("jumpstart-chat", None, ("parameters", "max_new_tokens")),
        ("text2text", None, ("max_length",)),
    ],
)
def test_standard_parameters_map_to_container_names(name: str, stop_key: tuple[str, ...] | None, max_key: tuple[str, ...]) -> None:
    handler = ContentHandler.from_preset(name)
    params = handler.build_parameters({"max_tokens": 7, "stop": ["."], "temperature": 0.0})
    body = json.loads(handler.render_request("p", parameters=params))

    def dig(path: tuple[str, ...]) -> object:
        value: object = body
        for key in path:
            assert isinstance(value, dict)
            value = value[key]
        return value

    assert dig(max_key) == 7
    if stop_key:
        assert dig(stop_key) == ["."]
    else:
        assert '"."' not in json.dumps(body)  # unsupported: applied client-side only
    assert 0.0 in (body.get("temperature"), body.get("parameters", {}).get("temperature"))


def test_stream_flag_rendered() -> None:
    assert json.loads(ContentHandler.from_preset("tgi").render_request("x", stream=True))["stream"] is True
    body = json.loads(ContentHandler.from_preset("openai").render_request("x", stream=True))
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_tools_refused_by_text_handlers() -> None:
    with pytest.raises(ConfigurationError, match="cannot carry tools"):
        ContentHandler.from_preset("tgi").render_request("x", tools=[{"type": "function"}])


REPLIES = {
    "tgi": (b'[{"generated_text": "hello", "details": {"finish_reason": "eos_token", "generated_tokens": 2}}]', "hello", "stop", {"completion_tokens": 2}),
    "lmi": (b'{"generated_text": "hi", "details": {"finish_reason": "length", "generated_tokens": 5}}', "hi", "length", {"completion_tokens": 5}),
    "openai": (
        b'{"object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}',
        "yo", "stop", {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    ),
    "jumpstart": (b'[{"generation": "gen"}]', "gen", None, None),
    "jumpstart-chat": (b'[{"generation": {"role": "assistant", "content": "chat"}}]', "chat", None, None),
    "text2text": (b'{"generated_texts": ["t5"]}', "t5", None, None),
}


@pytest.mark.parametrize("name", PRESETS)
def test_parse_response(name: str) -> None:
    body, text, finish, usage = REPLIES[name]
    out = ContentHandler.from_preset(name).parse_response(body)
    assert out.text == text
    assert out.finish_reason == finish
    assert out.usage == usage


def test_parse_response_errors() -> None:
    handler = ContentHandler.from_preset("tgi")
    with pytest.raises(ResponseParseError) as info:
        handler.parse_response(b"<html>oops</html>")
    assert "oops" in info.value.body_snippet
    with pytest.raises(ResponseParseError, match="no text"):
        handler.parse_response(b'{"unexpected": 1}')
    with pytest.raises(ModelError, match="boom"):
        ContentHandler.from_preset("lmi").parse_response(b'{"generated_text": null, "error": "boom", "code": 400}')


def test_stream_records() -> None:
    tgi = ContentHandler.from_preset("tgi")
    delta = tgi.parse_stream_record('{"token": {"id": 1, "text": " hi", "special": false}}')
    assert delta.text == " hi"
    special = tgi.parse_stream_record('{"token": {"id": 2, "text": "</s>", "special": true}, "generated_text": "hi", "details": {"finish_reason": "eos_token", "generated_tokens": 2, "input_length": 3}}')
    assert special.text == "" and special.finish_reason == "stop"
    assert special.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    with pytest.raises(StreamError, match="overloaded"):
        tgi.parse_stream_record('{"error": "overloaded", "error_type": "overloaded"}')
    lmi = ContentHandler.from_preset("lmi")
    with pytest.raises(StreamError):
        lmi.parse_stream_record('{"token": {"id": -1, "text": "", "special_token": true}, "details": {"finish_reason": "error"}}')
    openai = ContentHandler.from_preset("openai")
    chunk = openai.parse_stream_record('{"choices": [{"index": 0, "delta": {"content": "x", "tool_calls": [{"index": 0, "id": "c1"}]}, "finish_reason": null}]}')
    assert chunk.text == "x" and chunk.tool_call_chunks == [{"index": 0, "id": "c1"}]



@pytest.mark.parametrize(
    ("usage", "record", "expected"),
    [
        # one head ("usage"): records without it, or with it null, skip the expressions
        ({"prompt_tokens": "usage.p", "completion_tokens": "usage.c"}, '{"usage": {"p": 2, "c": 3}}',
         {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}),
        ({"prompt_tokens": "usage.p"}, '{"usage": null}', None),
        ({"prompt_tokens": "usage.p"}, '{"x": 1}', None),
        ({"prompt_tokens": "usage.p"}, '[{"usage": {"p": 1}}]', None),
        ({"prompt_tokens": "usage.p"}, '{"usage": {"p": 0}}', {"prompt_tokens": 0}),
        # different heads, an index first, or JMESPath proper: every expression still runs
        ({"prompt_tokens": "details.p", "completion_tokens": "usage.c"}, '{"usage": {"c": 4}}',
         {"completion_tokens": 4}),
        ({"prompt_tokens": "[0].p"}, '[{"p": 7}]', {"prompt_tokens": 7}),
        ({"prompt_tokens": "length(@)"}, '[1, 2]', {"prompt_tokens": 2}),
        ({"prompt_tokens": "usage.p || p"}, '{"p": 6}', {"prompt_tokens": 6}),
    ],
)
def test_stream_usage_is_read_wherever_it_is(usage: dict[str, str], record: str, expected: Any) -> None:
    handler = ContentHandler(request_template="{{ prompt | tojson }}", response={"text": "t"},
                             stream={"format": "jsonl", "text": "t", "usage": usage})
    assert handler.parse_stream_record(record).usage == expected
@pytest.mark.parametrize("name", PRESETS)
def test_parameters_never_replace_the_prompt(name: str) -> None:
    # Found by the fuzz suite: a parameter called "messages" used to replace the messages.
    handler = ContentHandler.from_preset(name)
    hostile = {"messages": None, "inputs": "x", "text_inputs": "x", "stream": True}
    body = json.loads(handler.render_request("the prompt", parameters=hostile))
    assert PROMPT_PATH[name](body) == "the prompt"


@pytest.mark.parametrize("field", ["content_type", "accept"])
@pytest.mark.parametrize(
    "value",
    ["application/json\r\nX-Evil: 1", "application/json\n", "application/\x00json", "application/jsön", "a" * 1025, "\x7f"],
    ids=repr,
)
def test_content_type_and_accept_are_checked_at_load(field: str, value: str) -> None:
    data = {"request_template": "{}", "response": {"text": "x"}, field: value}
    with pytest.raises(ConfigurationError, match=field):
        ContentHandler.from_dict(data)
    with pytest.raises(ValueError, match=field):
        ContentHandler(**data)  # type: ignore[arg-type]


def test_content_type_and_accept_limits_are_the_services() -> None:
    handler = ContentHandler.from_dict(
        {"request_template": "{}", "response": {"text": "x"}, "content_type": "a" * 1024, "accept": ""}
    )
    assert len(handler.content_type) == 1024


def test_copies_and_pickles_recompile_their_own_template() -> None:
    """Compiled templates and getters are cached per instance: a ``model_copy(update=...)``
    compiles its own (it once kept the original's), and pickle/deepcopy leave them out."""
    import copy
    import pickle

    handler = ContentHandler.from_preset("tgi")
    handler.render_request("x")
    handler.parse_stream_record('{"token": {"text": "a"}}')
    changed = handler.model_copy(update={"request_template": '{"inputs": {{ (prompt ~ "!") | tojson }}}'})
    assert json.loads(changed.render_request("x")) == {"inputs": "x!"}
    assert json.loads(handler.render_request("x"))["inputs"] == "x"
    for copied in (pickle.loads(pickle.dumps(handler)), copy.deepcopy(handler)):
        assert copied == handler and "_template" not in copied.__dict__
        assert copied.render_request("x") == handler.render_request("x")
        assert copied.parse_stream_record('{"token": {"text": "a"}}').text == "a"
