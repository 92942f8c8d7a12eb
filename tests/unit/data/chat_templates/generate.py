"""Record what transformers renders for each chat-template case into expected.json.

Run with a scratch venv, never the project's (transformers is not a dependency):

    python3 -m venv /tmp/hfvenv && /tmp/hfvenv/bin/pip install transformers jinja2 pyyaml
    /tmp/hfvenv/bin/python tests/unit/data/chat_templates/generate.py

Only transformers' pure-Python renderer is used (no tokenizer, no network). The
inputs go through the same steps as ``tokenizer.apply_chat_template(...,
tokenize=False)``: ``_normalize_chat_messages`` then ``render_jinja_template``
with the special tokens as keyword arguments.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2
import transformers
import yaml
from transformers.utils.chat_template_utils import _normalize_chat_messages, render_jinja_template

HERE = Path(__file__).resolve().parent
PRESETS = HERE.parents[3] / "templates" / "chat"

HOSTILE = (
    "  He said \"hi\" & 'bye' \\n (backslash-n)\nreal newline\r\nCRLF\ttab {{ 7*7 }} {% raw %}x{% endraw %}"
    " {{ ''.__class__.__mro__ }} emoji 🦜🔥 CJK 你好世界 combining e\u0301 </s> <|eot_id|> <|im_end|>  "
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Météo d'une ville",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


CONVERSATIONS: dict[str, list[dict[str, Any]]] = {
    "single_user": [user("Hello!")],
    "system_user": [system("You are terse."), user("Hi")],
    "multi_turn": [user("Hi"), assistant("Hello, how can I help?"), user("Tell me a joke.")],
    "system_multi_turn": [system("Be kind."), user("Hi"), assistant("Hello!"), user("Bye")],
    "assistant_last": [user("Complete: the sky is"), assistant("blue")],
    "hostile": [system(HOSTILE), user(HOSTILE), assistant(HOSTILE), user(HOSTILE)],
    "bad_alternation": [user("one"), user("two")],
    "tool_call_turn": [
        user("Weather in Zürich?"),
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_1", "name": "get_weather"},
    ],
}

# Inline templates exercising the environment itself: undefined handling, filters, globals, extensions.
INLINE: dict[str, dict[str, Any]] = {
    "tojson_defaults": {"source": "{{ messages | tojson }}", "messages": [user(HOSTILE)]},
    "tojson_options": {
        "source": "{{ tools | tojson(indent=2) }}|{{ {'b': 1, 'a': [1, 'é']} | tojson(sort_keys=true) }}"
        "|{{ 'é' | tojson(ensure_ascii=true) }}|{{ [1, 2] | tojson(separators=(',', ':')) }}",
        "messages": [user("x")],
        "tools": TOOLS,
    },
    "lenient_undefined": {
        "source": "[{{ date_string }}][{{ messages[0].tool_calls is defined }}][{{ messages[5] }}]"
        "[{% if messages[0].name %}named{% endif %}][{{ nothing | default('dflt') }}][{{ messages[0].missing | trim }}]",
        "messages": [user("x")],
    },
    "tools_and_documents_passed_as_none": {
        "source": "{{ tools is defined }} {{ tools is none }} {{ documents is defined }} {{ documents is none }}",
        "messages": [user("x")],
    },
    "tools_given": {
        "source": "{% for t in tools %}{{ t.function.name }}:{{ t.function.parameters | tojson }}{% endfor %}",
        "messages": [user("x")],
        "tools": TOOLS,
    },
    "none_keys_dropped": {
        "source": "{% for m in messages %}{{ m.role }}={{ m.content is defined }}"
        "{% if m.tool_calls %}:{{ m.tool_calls[0].function.arguments | tojson }}{% endif %};{% endfor %}",
        "messages": CONVERSATIONS["tool_call_turn"],
    },
    "reasoning_aliased": {
        "source": "{{ messages[0].thinking }}|{{ messages[0].reasoning_content }}|{{ messages[0].reasoning }}",
        "messages": [{"role": "assistant", "content": "4", "reasoning": "2+2"}],
    },
    "loopcontrols": {
        "source": "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
        "{{ m.content }};{% if loop.index >= 3 %}{% break %}{% endif %}{% endfor %}",
        "messages": CONVERSATIONS["system_multi_turn"] + [assistant("late")],
    },
    "namespace_and_dict": {
        "source": "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
        "{{ ns.n }} {{ dict(a=1, b=[2]) | tojson }} {{ dict.fromkeys(['x'], 0) | tojson }}",
        "messages": CONVERSATIONS["multi_turn"],
    },
    "generation_tag": {
        "source": "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}"
        "{% endgeneration %}{% else %}[{{ m.content }}]{% endif %}{% endfor %}",
        "messages": CONVERSATIONS["multi_turn"],
    },
    "whitespace_control": {
        "source": "{% for m in messages %}\n    {% if m.role == 'user' %}\n    U: {{ m.content }}\n    {% else %}\n"
        "    A: {{ m.content }}\n    {% endif %}\n{% endfor %}\n{%- if add_generation_prompt %}\nA:\n{% endif %}\n",
        "messages": CONVERSATIONS["multi_turn"],
    },
    "extra_variables_and_tokens": {
        "source": "{{ bos_token }}|{{ eos_token }}|{{ date_string }}|{{ enable_thinking }}",
        "messages": [user("x")],
        "extra": {"date_string": "26 Jul 2024", "enable_thinking": False, "eos_token": "<EOS>"},
    },
    "raise_exception": {
        "source": "{% if messages[0].role != 'system' %}{{ raise_exception('System message required, got ' "
        "+ messages[0].role) }}{% endif %}ok",
        "messages": [user("x")],
    },
    "unsafe_attribute_is_undefined": {  # printing it gives "", using it raises SecurityError
        "source": "[{{ ''.__class__ }}][{{ messages.pop is defined }}][{{ messages.index is defined }}]",
        "messages": [user("x")],
    },
    "undefined_arithmetic_fails": {"source": "{{ messages[0].missing + 'x' }}", "messages": [user("x")]},
}


def hf_render(
    source: str, messages: list[dict[str, Any]], agp: bool, tokens: dict[str, str], tools: Any = None, extra: Any = None
) -> dict[str, str]:
    """What ``apply_chat_template(..., tokenize=False)`` returns, or the error it raises."""
    try:
        rendered, _ = render_jinja_template(
            conversations=[_normalize_chat_messages(messages)],
            tools=tools,
            chat_template=source,
            add_generation_prompt=agp,
            **{**tokens, **(extra or {})},
        )
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        return {"error": str(exc), "error_type": type(exc).__name__}
    return {"expected": rendered[0]}


def main() -> None:
    presets: dict[str, Any] = {}
    cases: list[dict[str, Any]] = []
    for path in sorted(PRESETS.glob("*.jinja")):
        name, source = path.stem, path.read_text(encoding="utf-8")
        meta = yaml.safe_load(path.with_suffix(".yaml").read_text(encoding="utf-8"))
        tokens = {"bos_token": meta["bos_token"], "eos_token": meta["eos_token"]}
        presets[name] = {"sha256": hashlib.sha256(source.encode()).hexdigest(), **tokens, "stop": meta["stop"]}
        for conv, messages in CONVERSATIONS.items():
            for agp in (True, False):
                case = {"id": f"{name}/{conv}/{'gen' if agp else 'nogen'}", "preset": name}
                case |= {"messages": messages, "add_generation_prompt": agp}
                cases.append(case | hf_render(source, messages, agp, tokens))
    tokens = {"bos_token": "<s>", "eos_token": "</s>"}
    for key, spec in INLINE.items():
        for agp in (True, False):
            case = {"id": f"inline/{key}/{'gen' if agp else 'nogen'}", **tokens, **spec, "add_generation_prompt": agp}
            rendered = hf_render(spec["source"], spec["messages"], agp, tokens, spec.get("tools"), spec.get("extra"))
            cases.append(case | rendered)
    out = {
        "generated_by": "tests/unit/data/chat_templates/generate.py",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "presets": presets,
        "cases": cases,
    }
    text = json.dumps(out, ensure_ascii=False, indent=1) + "\n"
    (HERE / "expected.json").write_text(text, encoding="utf-8")
    print(f"{len(cases)} cases, {sum('error' in c for c in cases)} errors -> {HERE / 'expected.json'}")


if __name__ == "__main__":
    main()
