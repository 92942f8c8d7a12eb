"""Precompiled request bodies: the shipped presets' templates as plain Python.

Every shipped request template only arranges the values it is given into one JSON
document and prints it with ``tojson``. Rendering it through the sandboxed, budgeted
Jinja environment costs ~25 µs a call; building the same dict in Python and calling the
same :func:`~sm_llm._templating.tojson` gives the same text in ~3 µs.

A builder is looked up by the template's exact source text, never by a preset's name:
a user template, or a preset someone edited, has no builder and renders through Jinja
as before. A builder returns the document to serialise, or ``None`` when the inputs are
not of the shapes it mirrors; then, and whenever building or serialising raises, the
caller renders through Jinja, so every refusal keeps its exact Jinja error message.

Why the text is identical (tests/unit/test_precompiled.py checks it over the hostile
strings and hypothesis-generated text and values):

* the templates' whitespace control (``{%- -%}``, ``trim_blocks``, and
  ``keep_trailing_newline=False`` for the YAML block's final newline) leaves only the
  ``{{ ... | tojson }}`` text in the output;
* a Jinja dict literal is a plain ``dict`` of the very objects passed in, in source
  order; ``merge`` is ``dict(left)`` then ``update(right)``, so a key already present
  keeps its place; ``is not none`` is ``is not None`` and ``{% if x %}`` is ``bool(x)``;
* ``tojson`` receives equal dicts holding the same leaf objects, so ``json.dumps``
  prints the same text.

The render budget (:mod:`sm_llm._render_budget`) bounds what a *user* template may
build; these bodies cannot amplify their input (the JSON is at most ~6 characters per
input character, the budget allows 16), so no preset render within the 6 MiB body
limit is ever refused by it — except that the budget's admission walk stops after
200,000 containers in the inputs, where the Jinja route refuses and this one renders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sm_llm._templating import tojson

__all__ = ["Builder", "builder_for", "render_precompiled"]


Context = Mapping[str, Any]
"""A request template's context: ``prompt``, ``messages``, ``parameters``, ``stream``,
``tools``, ``tool_choice``, ``response_format``."""

Builder = Callable[[Context], Any]
"""The context → the document the template prints with ``tojson``; ``None``: render with Jinja."""


def _prompt_body(c: Context) -> Any:
    """tgi, lmi: ``{"inputs": prompt, "parameters": parameters}`` (+ ``"stream": true``)."""
    body = {"inputs": c["prompt"], "parameters": c["parameters"]}
    if c["stream"]:
        body["stream"] = True
    return body


def _jumpstart(c: Context) -> Any:
    return {"inputs": c["prompt"], "parameters": c["parameters"]}


def _messages(c: Context) -> list[Any]:
    return c["messages"] if c["messages"] is not None else [{"role": "user", "content": c["prompt"]}]


def _jumpstart_chat(c: Context) -> Any:
    return {"inputs": [_messages(c)], "parameters": c["parameters"]}


def _merged(parameters: Any, key: str, value: Any) -> dict[str, Any] | None:
    """``parameters | merge({key: value})``; ``None`` where ``merge`` would refuse."""
    if not isinstance(parameters, dict):
        return None
    body = dict(parameters)
    body[key] = value
    return body


def _text2text(c: Context) -> Any:
    return _merged(c["parameters"], "text_inputs", c["prompt"])


def _openai(c: Context) -> Any:
    body = _merged(c["parameters"], "messages", _messages(c))
    if body is None:
        return None
    if c["tools"]:
        body["tools"] = c["tools"]
    if c["tool_choice"] is not None:
        body["tool_choice"] = c["tool_choice"]
    if c["response_format"] is not None:
        body["response_format"] = c["response_format"]
    if c["stream"]:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _texts(c: Context) -> list[Any] | None:
    """``messages | map(attribute="content") | list``, for lists of dicts that have it."""
    if c["messages"] is None:
        return [c["prompt"]]
    if type(c["messages"]) is not list:
        return None
    texts = []
    for message in c["messages"]:
        if type(message) is not dict or "content" not in message:
            return None  # Jinja's attribute lookup has more cases: let it decide
        texts.append(message["content"])
    return texts


def _texts_under(key: str) -> Builder:
    def build(c: Context) -> Any:
        texts = _texts(c)
        return None if texts is None else _merged(c["parameters"], key, texts)

    return build


_PROMPT_BODY = """\
{%- set body = {"inputs": prompt, "parameters": parameters} -%}
{%- if stream %}{% set body = body | merge({"stream": true}) %}{% endif -%}
{{ body | tojson }}
"""

_TEXTS = """\
{%- set texts = messages | map(attribute="content") | list if messages is not none else [prompt] -%}
{#- parameters first, so a parameter can never replace the texts -#}
"""

_BUILDERS: dict[str, Builder] = {
    _PROMPT_BODY: _prompt_body,  # tgi, lmi
    '{{ {"inputs": prompt, "parameters": parameters} | tojson }}\n': _jumpstart,
    """\
{%- set msgs = messages if messages is not none else [{"role": "user", "content": prompt}] -%}
{{ {"inputs": [msgs], "parameters": parameters} | tojson }}
""": _jumpstart_chat,
    '{{ parameters | merge({"text_inputs": prompt}) | tojson }}\n': _text2text,
    """\
{%- set msgs = messages if messages is not none else [{"role": "user", "content": prompt}] -%}
{#- parameters first, so a parameter can never replace the messages -#}
{%- set body = parameters | merge({"messages": msgs}) -%}
{%- if tools %}{% set body = body | merge({"tools": tools}) %}{% endif -%}
{%- if tool_choice is not none %}{% set body = body | merge({"tool_choice": tool_choice}) %}{% endif -%}
{%- if response_format is not none %}{% set body = body | merge({"response_format": response_format}) %}{% endif -%}
{%- if stream %}{% set body = body | merge({"stream": true, "stream_options": {"include_usage": true}}) %}{% endif -%}
{{ body | tojson }}
""": _openai,
    _TEXTS + '{{ parameters | merge({"inputs": texts}) | tojson }}\n': _texts_under("inputs"),  # tei
    _TEXTS + '{{ parameters | merge({"input": texts}) | tojson }}\n': _texts_under("input"),  # openai-embeddings
    _TEXTS + '{{ parameters | merge({"text_inputs": texts}) | tojson }}\n': _texts_under("text_inputs"),
}


def builder_for(template_source: str) -> Builder | None:
    """The precompiled equivalent of a request template, if it is one we ship."""
    return _BUILDERS.get(template_source)


def render_precompiled(builder: Builder, context: Context) -> str | None:
    """The text the template would render, or ``None``: render it with Jinja instead
    (inputs of another shape, or any failure, whose message Jinja then gives)."""
    try:
        document = builder(context)
        return None if document is None else tojson(document)
    except Exception:  # Jinja renders it again and reports the real problem
        return None
