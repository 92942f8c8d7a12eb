"""Precompiled chat templates: the shipped presets (chatml, llama2, llama3, mistral) as Python.

:class:`~sm_llm.chat_templates.ChatTemplate` renders a preset through the sandboxed,
budgeted Jinja environment in ~40-100 µs; these builders give the same text in a few µs.
As for request bodies (:mod:`sm_llm._precompiled`), a builder is found by the template's
exact source text (its SHA-256), never by a preset's name: an edited preset, a
``tokenizer_config.json`` or an inline template has no builder and renders through Jinja.

A builder takes only the inputs it mirrors exactly and returns ``None`` for anything
else, so Jinja renders it (and gives its own result or error):

* the context holds only what :meth:`ChatTemplate.render` always passes (``bos_token``,
  ``eos_token``, ``messages``, ``tools``, ``documents``, ``add_generation_prompt``):
  any other ``chat_template_kwargs`` name could shadow a template variable;
  ``tools`` and ``documents`` are ``None`` (none of these templates reads them);
* ``bos_token`` / ``eos_token`` are ``str``, ``add_generation_prompt`` a ``bool``;
* every message is a ``dict`` of ``str`` values with ``role`` and ``content``;
* rejections (``raise_exception``: roles not alternating, a role mistral refuses) are
  left to Jinja, which raises its exact ``ConfigurationError``;
* the inputs are small enough that the render budget (:mod:`sm_llm._render_budget`)
  cannot refuse the Jinja render: everything it charges or checks stays under
  :data:`~sm_llm._render_budget.BASE_UNITS`, the allowance of any render (bigger
  conversations, ~65k characters and up, render through Jinja).

Why the text is identical (tests/unit/test_precompiled_chat.py checks it against the
Jinja render over the hostile strings, hypothesis text, every role and both values of
``add_generation_prompt``): the templates' whitespace control leaves only their
``{{ ... }}`` output; Jinja's ``+`` on two ``str`` is ``str.__add__``, ``trim`` is
``str.strip()``, ``loop.index0``/``loop.first`` is the index, and ``x != false`` for a
``str`` is always true.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from sm_llm._render_budget import BASE_UNITS

__all__ = ["ChatBuilder", "chat_builder_for", "render_chat_precompiled"]

Messages = list[tuple[str, str]]
"""(role, content) of each message."""

ChatBuilder = Callable[[Messages, str, str, bool], "str | None"]
"""(messages, bos_token, eos_token, add_generation_prompt) → the prompt; ``None``: render with Jinja."""

_CONTEXT_KEYS = frozenset({"bos_token", "eos_token", "messages", "tools", "documents", "add_generation_prompt"})
_PER_MESSAGE = 64
"""Characters of template text one message adds at most (headers, ``[INST]``, ``<<SYS>>``...)."""
_BUDGET_FACTOR = 16
"""What one render charges and checks, per character of output (at most ~8 charges and one
6× check per message, see :mod:`sm_llm._sandbox`), rounded up."""


def _chatml(messages: Messages, bos: str, eos: str, add_generation_prompt: bool) -> str | None:
    parts = ["<|im_start|>" + role + "\n" + content + "<|im_end|>" + "\n" for role, content in messages]
    if add_generation_prompt:
        parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _llama3(messages: Messages, bos: str, eos: str, add_generation_prompt: bool) -> str | None:
    parts = []
    for index, (role, content) in enumerate(messages):
        text = "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content.strip() + "<|eot_id|>"
        parts.append(bos + text if index == 0 else text)
    if add_generation_prompt:
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _split_system(messages: Messages) -> tuple[str | None, Messages]:
    """``messages[0]`` if it is a system message (its content), and the messages after it."""
    if messages[0][0] == "system":
        return messages[0][1], messages[1:]
    return None, messages


def _llama2(messages: Messages, bos: str, eos: str, add_generation_prompt: bool) -> str | None:
    system, rest = _split_system(messages)
    parts = []
    for index, (role, content) in enumerate(rest):
        if (role == "user") != (index % 2 == 0):
            return None  # raise_exception: Jinja raises it
        if index == 0 and system is not None:
            content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content
        if role == "user":
            parts.append(bos + "[INST] " + content.strip() + " [/INST]")
        elif role == "assistant":
            parts.append(" " + content.strip() + " " + eos)
    return "".join(parts)


def _mistral(messages: Messages, bos: str, eos: str, add_generation_prompt: bool) -> str | None:
    system, rest = _split_system(messages)
    parts = [bos]
    for index, (role, content) in enumerate(rest):
        if (role == "user") != (index % 2 == 0):
            return None
        if role == "user":
            if index == 0 and system is not None:
                parts.append(" [INST] " + system + "\n\n" + content + " [/INST]")
            else:
                parts.append(" [INST] " + content + " [/INST]")
        elif role == "assistant":
            parts.append(" " + content + eos)
        else:
            return None
    return "".join(parts)


_BUILDERS: dict[str, ChatBuilder] = {  # SHA-256 of templates/chat/<name>.jinja
    "6fd89d5b5d16012d234cef409a5b410fec8595d0bd85b2bbe0481a7c22cb5785": _chatml,
    "22e3db3b8a1dc82313a6e4ddc8d9ac32c89c9004704884cf86796e886e8aedf4": _llama2,
    "8ad1c1ea1b779aeb485de28fff2024c292e9d2feca7624431ae391055c7f5746": _llama3,
    "cf73991e3301c6db7dbdf8f44759d81544519b05d17bd0763ca957e54c6be125": _mistral,
}


@lru_cache(maxsize=64)
def chat_builder_for(source: str) -> ChatBuilder | None:
    """The precompiled equivalent of a chat template, if it is one we ship."""
    return _BUILDERS.get(hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest())


def _messages(value: Any) -> Messages | None:
    if type(value) is not list or not value:
        return None
    pairs = []
    for message in value:
        if type(message) is not dict or any(type(v) is not str for v in message.values()):
            return None
        role, content = message.get("role"), message.get("content")
        if role is None or content is None:
            return None
        pairs.append((role, content))
    return pairs


def render_chat_precompiled(builder: ChatBuilder, context: Mapping[str, Any]) -> str | None:
    """The text the template renders from ``context`` (plain data, as ``ChatTemplate.render``
    passes it), or ``None``: render it with Jinja (see the module docstring)."""
    if context.keys() - _CONTEXT_KEYS or context.get("tools") is not None or context.get("documents") is not None:
        return None
    bos, eos, add = context.get("bos_token"), context.get("eos_token"), context.get("add_generation_prompt")
    if type(bos) is not str or type(eos) is not str or type(add) is not bool:
        return None
    messages = _messages(context.get("messages"))
    if messages is None:
        return None
    size = sum(len(role) + 2 * len(content) for role, content in messages)  # 2×: a system message twice
    size += len(messages) * (len(bos) + len(eos) + _PER_MESSAGE) + _PER_MESSAGE
    if _BUDGET_FACTOR * size > BASE_UNITS:
        return None
    return builder(messages, bos, eos, add)
