"""What an OpenAI-format chat reply holds, decided from the request: a tool call (which
tool, its arguments), a tool result echo, the JSON text a ``response_format`` asks for,
or a reasoning model's thinking. Shared by the vLLM, TGI and LMI chat containers.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sm_llm.local._containers import ModelInfo
from sm_llm.local._model import FinishReason, Generation, content_text
from sm_llm.local._schema import ChatValidationError, schema_instance

__all__ = [
    "ARGUMENT_PIECE",
    "Reasoning",
    "ToolCall",
    "argument_pieces",
    "choose_tool",
    "next_call_id",
    "plan_reply",
    "reasoning",
    "text_generation",
    "wants_reasoning",
]

_call_ids = itertools.count(1)
#: Characters of the arguments string per streamed ``tool_calls`` delta.
ARGUMENT_PIECE = 8


def next_call_id() -> str:
    """A fresh tool-call id (``call_<n>``), unique within the process."""
    return f"call_{next(_call_ids)}"


# -- schema-driven values (tool arguments, structured output) -------------------------------

def _json_text(value: Any) -> str:
    """JSON as vLLM's tool parsers and guided decoding write it (``", "`` / ``": "``)."""
    return json.dumps(value, ensure_ascii=False)


# -- tool calls, tool results, response_format ----------------------------------------------


@dataclass(frozen=True)
class _Tool:
    name: str
    parameters: Any


def argument_pieces(text: str) -> list[str]:
    """``text`` in streamed pieces of :data:`ARGUMENT_PIECE` characters."""
    return [text[i : i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)]


@dataclass(frozen=True)
class ToolCall:
    """The one tool call a reply makes; ``arguments`` is its JSON string."""

    name: str
    arguments: str

    def pieces(self) -> list[str]:
        """The arguments string cut into the streamed deltas."""
        return argument_pieces(self.arguments)

    def completion_tokens(self) -> int:
        """The tool name plus one token per arguments delta (what a stream counts)."""
        return 1 + len(self.pieces())

    def wire(self, call_id: str) -> dict[str, Any]:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def _tools(payload: Mapping[str, Any]) -> list[_Tool]:
    raw = payload.get("tools")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ChatValidationError("'tools' must be a list")
    tools = []
    for item in raw:
        function = item.get("function") if isinstance(item, Mapping) else None
        if (
            not isinstance(function, Mapping)
            or item.get("type", "function") != "function"
            or not isinstance(function.get("name"), str)
        ):
            raise ChatValidationError(
                "each tool must be {'type': 'function', 'function': {'name': ..., 'parameters': ...}}"
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise ChatValidationError(f"tool {function['name']!r}: 'parameters' must be an object")
        tools.append(_Tool(function["name"], parameters or {"type": "object", "properties": {}}))
    return tools


_GENERIC_PARTS = frozenset({"get", "set", "list", "find", "fetch", "make", "tool", "call", "run"})


def _mentioned(names: Sequence[str], text: str) -> str | None:
    """A tool named in ``text``: by full name (whole word first), else by a distinctive part
    of its name (``get_weather`` for "what is the weather ...")."""
    lowered = text.lower()
    found = [n for n in names if n and n.lower() in lowered]
    whole = (n for n in found if re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", lowered))
    by_name = next(whole, found[0] if found else None)
    if by_name is not None:
        return by_name
    words = set(re.findall(r"[a-z0-9]+", lowered))
    for name in names:
        parts = {p for p in re.split(r"[_\-\s]+|(?<=[a-z])(?=[A-Z])", name) if p}
        if any(len(p) > 3 and p.lower() not in _GENERIC_PARTS and p.lower() in words for p in parts):
            return name
    return None


def choose_tool(names: Sequence[str], tool_choice: Any, text: str) -> str | None:
    """The tool the model calls for ``tool_choice`` and user ``text``, or None for text.

    ``"none"``: none. A named choice (``{"type": "function", "function": {"name": X}}``,
    or TGI's bare ``X``): X. ``"required"`` / ``"any"``: the first tool whose name
    appears in ``text`` (case-insensitive), else the first tool. ``"auto"`` / absent:
    the first tool whose name appears in ``text``, else none. A name standing as a
    whole word beats one only found inside a longer word (``magic_function`` inside
    ``magic_function_no_args``).
    """
    mentioned = _mentioned(names, text)
    if tool_choice is None or tool_choice == "auto":
        return mentioned
    if tool_choice == "none":
        return None
    if tool_choice in ("required", "any"):
        if not names:
            raise ChatValidationError(f"tool_choice {tool_choice!r} needs a non-empty 'tools'")
        return mentioned or names[0]
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if tool_choice.get("type", "function") != "function" or not isinstance(name, str):
            raise ChatValidationError(
                "'tool_choice' must be 'none', 'auto', 'required' or "
                "{'type': 'function', 'function': {'name': ...}}"
            )
    elif isinstance(tool_choice, str):
        name = tool_choice
    else:
        raise ChatValidationError(f"invalid 'tool_choice': {tool_choice!r}")
    if name not in names:
        raise ChatValidationError(f"Tool '{name}' has not been passed in `tools`.")
    return name


def _tool_message_text(content: Any) -> str:
    if isinstance(content, Mapping):
        return _json_text(content)
    return content_text(content)


def _tool_results(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """When the last message is a tool result: every tool result since the last assistant turn."""
    if messages[-1].get("role") != "tool":
        return None
    start = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    results = [
        _tool_message_text(m.get("content"))
        for m in messages[start + 1 :]
        if m.get("role") == "tool"
    ]
    return "Tool result: " + "; ".join(results)


_KEY = r"(?!(?:the|a|an|and)\b)[A-Za-z_]\w*"
_KEY_LIST = rf"{_KEY}(?:\s*,\s*(?:and\s+)?{_KEY}|\s+and\s+{_KEY})*"
_KEY_WORD = r"(?:keys?|fields?|propert(?:y|ies))"
_QUOTED_KEYS = re.compile(rf"'({_KEY})'|\"({_KEY})\"|`({_KEY})`")
_KEYS_BEFORE = re.compile(
    rf"\bwith\s+(?:(?:the|a|an)\s+)?({_KEY_LIST})\s+{_KEY_WORD}\b", re.IGNORECASE
)
_KEYS_AFTER = re.compile(
    rf"\b{_KEY_WORD}\s*(?::|named|called)?\s+({_KEY_LIST})(?=\s*(?:[.;!?)]|$))", re.IGNORECASE
)


def _asked_keys(prompt: str) -> list[str]:
    """The keys a JSON-mode prompt asks for: quoted (``'setup'``, ``"setup"``, ```setup```),
    else listed plainly (``with setup and punchline keys``, ``keys: setup, punchline``)."""
    quoted = [next(g for g in groups if g) for groups in _QUOTED_KEYS.findall(prompt)]
    if quoted:
        return list(dict.fromkeys(quoted))
    match = _KEYS_BEFORE.search(prompt) or _KEYS_AFTER.search(prompt)
    if match is None:
        return []
    return list(dict.fromkeys(re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", match.group(1))))


def _formatted_text(payload: Mapping[str, Any], prompt: str) -> str | None:
    """The JSON text a ``response_format`` asks for (None: plain echo)."""
    fmt = payload.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or not isinstance(fmt.get("type"), str):
        raise ChatValidationError("'response_format' must be an object with a string 'type'")
    kind = fmt["type"]
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping):
            raise ChatValidationError("response_format 'json_schema' needs a 'json_schema' object")
        schema = spec.get("schema")
    elif kind in ("json_object", "json"):
        schema = fmt.get("value")  # TGI's grammar form carries the schema in 'value'
    else:
        raise ChatValidationError(f"unsupported response_format type {kind!r}")
    if schema is None:
        # JSON mode without a schema: use the keys the prompt asks for.
        keys = _asked_keys(prompt) or ["echo"]
        return _json_text({key: prompt for key in keys})
    if not isinstance(schema, Mapping):
        raise ChatValidationError("the response_format schema must be an object")
    return _json_text(schema_instance(schema, prompt))


def plan_reply(
    payload: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], prompt: str
) -> ToolCall | str | None:
    """What a chat reply holds: a tool call, a fixed text, or None for the echo."""
    tools = _tools(payload)
    name = choose_tool([t.name for t in tools], payload.get("tool_choice"), prompt)
    formatted = _formatted_text(payload, prompt)
    results = _tool_results(messages)
    if results is not None:
        return results
    if name is not None:
        tool = next(t for t in tools if t.name == name)
        return ToolCall(name, _json_text(schema_instance(tool.parameters, prompt)))
    return formatted


_TOKEN = re.compile(r"\s*\S+")


def text_generation(
    text: str, *, max_tokens: int, stops: list[str], prompt_tokens: int
) -> Generation:
    """Like :func:`generate` for a fixed reply ``text``: tokens are words with their leading space."""
    candidates = _TOKEN.findall(text)
    if candidates:
        candidates[-1] += text[len(text.rstrip()) :]
    stops = [s for s in stops if s]
    emitted: list[str] = []
    out = ""
    matched: str | None = None
    for token in candidates:
        if len(emitted) >= max_tokens:
            break
        emitted.append(token)
        out += token
        matched = next((s for s in stops if s in out), None)
        if matched is not None:
            break
    reason: FinishReason
    if matched is not None:
        reason = "stop_sequence"
    elif len(emitted) >= max_tokens:
        reason = "length"
    else:
        reason = "eos"
    return Generation(emitted, out, reason, prompt_tokens, len(emitted), matched)


@dataclass(frozen=True)
class Reasoning:
    """What a reasoning model thinks before answering: ``field`` and its streamed pieces."""

    field: str
    pieces: list[str]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


#: Words of the prompt the reasoning quotes.
_REASONING_WORDS = 8


def wants_reasoning(payload: Mapping[str, Any]) -> bool:
    """Whether a chat request asks a reasoning model to think (as Qwen3 / gpt-oss on vLLM do).

    ``chat_template_kwargs.enable_thinking`` (or ``thinking``) decides when it is a bool;
    otherwise a ``reasoning_effort`` other than ``"none"`` asks for reasoning.
    """
    kwargs = payload.get("chat_template_kwargs")
    if isinstance(kwargs, Mapping):
        for key in ("enable_thinking", "thinking"):
            if isinstance(kwargs.get(key), bool):
                return bool(kwargs[key])
    effort = payload.get("reasoning_effort")
    return effort is not None and effort != "none"


def reasoning(payload: Mapping[str, Any], prompt: str, model: ModelInfo) -> Reasoning | None:
    """The deterministic reasoning: ``Let me think about "<first words of the prompt>".``"""
    if not wants_reasoning(payload):
        return None
    words = prompt.split()
    quoted = " ".join(words[:_REASONING_WORDS]) + (" ..." if len(words) > _REASONING_WORDS else "")
    return Reasoning(model.reasoning_field, _TOKEN.findall(f'Let me think about "{quoted}".'))
