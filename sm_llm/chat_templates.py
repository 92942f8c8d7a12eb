"""Hugging Face chat templates: OpenAI-style messages rendered into one prompt string.

For text containers (TGI ``generate``, LMI, JumpStart). :class:`ChatTemplate`
renders exactly what transformers' ``apply_chat_template(..., tokenize=False)``
does. Presets: ``templates/chat/<name>.jinja`` plus a ``<name>.yaml`` sidecar
(``bos_token``, ``eos_token``, ``stop``).

Environment: a separate cached ``ImmutableSandboxedEnvironment`` mirroring
transformers' ``_compile_jinja_template``, not the shared ``StrictUndefined`` one:
Hub templates need lenient ``Undefined`` (they read ``message.tool_calls``,
``tools``, ``date_string`` when absent), ``loopcontrols``, ``{% generation %}``,
``strftime_now``, an underscore-proof ``namespace`` and transformers' ``tojson``
(``json.dumps`` defaults: ``", "``/``": "`` separators, not our compact ones).
``raise_exception`` raises ``ConfigurationError``, and rendering goes through
:func:`sm_llm._templating.render`, so every failure is a ``ConfigurationError``.
Inputs are prepared as transformers does (``None``-valued message keys dropped,
reasoning aliased, plain JSON data, ``tools``/``documents`` passed even when
``None``), except that an empty ``bos_token``/``eos_token`` is passed as ``""``
rather than left undefined, so ``bos_token=""`` switches a template's BOS off.
The shipped presets render the same text without Jinja (:mod:`sm_llm._precompiled_chat`)
whenever the inputs are of the shapes those builders mirror.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sm_llm._precompiled_chat import chat_builder_for, render_chat_precompiled
from sm_llm._sandbox import namespace_class
from sm_llm._templating import compile_template, raise_exception, render, sandbox_class
from sm_llm._validation import is_file
from sm_llm._yaml import load as load_yaml
from sm_llm.errors import ConfigurationError
from sm_llm.handlers import templates_dir

__all__ = ["ChatTemplate"]

_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_SIDECAR_KEYS = {"model", "bos_token", "eos_token", "stop"}
_LEAVES = frozenset({str, int, float, bool, type(None)})
"""Types ``_plain`` passes as they are (exact types: subclasses are rebuilt)."""
_SCALARS: tuple[tuple[type, Any], ...] = ((str, str.__str__), (int, int.__int__), (float, float.__float__))


def _tojson(
    x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    """transformers' ``tojson``: ``json.dumps`` with its defaults, UTF-8 kept."""
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@lru_cache(maxsize=1)
def _environment() -> Any:
    # Lazy imports, as in sm_llm._templating: jinja2 is only needed on first use.
    from jinja2 import nodes
    from jinja2.exceptions import SecurityError
    from jinja2.ext import Extension, loopcontrols
    from jinja2.parser import Parser

    Namespace = namespace_class()  # attributes sized when set (see sm_llm._sandbox)

    class Generation(Extension):
        """``{% generation %}...{% endgeneration %}`` (assistant-mask markers) renders its body."""

        tags = {"generation"}  # noqa: RUF012 - Extension's own declaration

        def parse(self, parser: Parser) -> nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    def check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(f"chat templates cannot store underscore-prefixed attributes: {name!r}")

    class TemplateNamespace(Namespace):  # type: ignore[misc,valid-type]
        def __init__(*args: Any, **kwargs: Any) -> None:  # same signature trick as Namespace
            for name in dict(*args[1:], **kwargs):
                check_name(name)
            Namespace.__init__(*args, **kwargs)

        def __setitem__(self, name: str, value: Any) -> None:
            check_name(name)
            Namespace.__setitem__(self, name, value)

    env = sandbox_class()(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals.update(
        raise_exception=raise_exception,
        strftime_now=lambda fmt: datetime.now().strftime(fmt),
        namespace=TemplateNamespace,
    )
    return env


def _compile(source: str) -> Any:
    return compile_template(source, _environment, "chat template")


def _plain(value: Any) -> Any:
    """Rebuild ``value`` from plain JSON types, as transformers does; other objects become ``"<Type>"``."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is dict:  # the usual containers, their plain leaves taken without a call each
        return {
            k if type(k) in _LEAVES else _plain(k): v if type(v) in _LEAVES else _plain(v) for k, v in value.items()
        }
    if kind is list:
        return [v if type(v) in _LEAVES else _plain(v) for v in value]
    for base, plain in _SCALARS:  # subclasses (enums...) carry extra methods: back to the base type
        if isinstance(value, base):
            return plain(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise ConfigurationError(f"chat messages must be dicts, got {type(message).__name__}")
    out = {k: v for k, v in message.items() if v is not None}
    reasoning = next((out[k] for k in _REASONING_FIELDS if k in out), None)
    if reasoning is not None:
        out = {"thinking": reasoning, **out, "reasoning_content": reasoning}
    return out


def _token(value: Any) -> str:
    """A special token from tokenizer_config.json: a string, ``{"content": ...}`` or null."""
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else ""


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
    """A compiled-on-creation chat template with the special tokens it renders with.

    ``stop`` lists the stop sequences a client should send with the prompt
    (the turn terminator, e.g. ``<|eot_id|>``). Build one with :meth:`resolve`.
    """

    source: str
    bos_token: str = ""
    eos_token: str = ""
    stop: list[str] = dataclasses.field(default_factory=list, hash=False)
    name: str = "inline"
    tokenizer: str | None = None
    """The ``tokenizer.json`` beside a ``tokenizer_config.json`` template, if there is one."""

    def __post_init__(self) -> None:
        _compile(self.source)  # a syntax error surfaces here, before any request

    @classmethod
    def resolve(
        cls, value: str | Path | ChatTemplate, *, bos_token: str | None = None, eos_token: str | None = None
    ) -> ChatTemplate:
        """A preset name, a ``.jinja`` / ``tokenizer_config.json`` path, an inline template or a ChatTemplate.

        A string containing ``{%`` or ``{{`` is an inline template; otherwise a
        preset name, then a file path. ``bos_token`` / ``eos_token`` override the
        template's own tokens (and replace the old EOS in ``stop``).
        """
        if isinstance(value, ChatTemplate):
            template = value
        elif isinstance(value, Path):
            template = cls._from_file(value)
        elif not isinstance(value, str):
            raise ConfigurationError(f"chat_template must be a string or a path, got {type(value).__name__}")
        elif "{%" in value or "{{" in value:
            template = cls(source=value)
        elif value in (presets := _presets()):
            template = dataclasses.replace(cls._from_file(presets[value]), name=value)
        elif is_file(value):
            template = cls._from_file(Path(value))
        else:
            raise ConfigurationError(
                f"unknown chat template {value!r}: not a preset ({', '.join(sorted(presets))}), "
                "a file, or a Jinja template"
            )
        if bos_token is not None:
            template = dataclasses.replace(template, bos_token=bos_token)
        if eos_token is not None and eos_token != template.eos_token:
            stop = [s for s in template.stop if s != template.eos_token] + ([eos_token] if eos_token else [])
            template = dataclasses.replace(template, eos_token=eos_token, stop=stop)
        return template

    @classmethod
    def _from_file(cls, path: Path) -> ChatTemplate:
        text = _read(path)
        if path.suffix == ".json":
            return cls._from_tokenizer_config(path, text)
        sidecar, meta = path.with_suffix(".yaml"), dict[str, Any]()
        if sidecar.is_file():
            meta = load_yaml(_read(sidecar), str(sidecar)) or {}
            if not isinstance(meta, dict) or set(meta) - _SIDECAR_KEYS:
                raise ConfigurationError(f"{str(sidecar)!r} may only set {sorted(_SIDECAR_KEYS)}")
        eos = _token(meta.get("eos_token"))
        stop = meta.get("stop", [eos] if eos else [])
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise ConfigurationError(f"{str(sidecar)!r}: stop must be a list of strings")
        return cls(text, _token(meta.get("bos_token")), eos, stop, str(path))

    @classmethod
    def _from_tokenizer_config(cls, path: Path, text: str) -> ChatTemplate:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{str(path)!r} is not valid JSON: {exc}") from exc
        source = config.get("chat_template") if isinstance(config, dict) else None
        if isinstance(source, list):  # the named form: [{"name": "default", "template": ...}, ...]
            source = {str(t.get("name")): t.get("template") for t in source if isinstance(t, dict)}
            if "default" not in source:
                raise ConfigurationError(f"{str(path)!r} has no 'default' chat template: {sorted(source)}")
            source = source["default"]
        sibling = path.with_name("chat_template.jinja")  # where newer transformers save the template
        if source is None and sibling.is_file():
            source = _read(sibling)
        if not isinstance(source, str):
            raise ConfigurationError(f"{str(path)!r} has no chat_template")
        eos = _token(config.get("eos_token"))
        tokenizer = path.with_name("tokenizer.json")
        return cls(
            source, _token(config.get("bos_token")), eos, [eos] if eos else [], str(path),
            str(tokenizer) if tokenizer.is_file() else None,
        )

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """Render ``messages`` into one prompt string, as transformers would.

        ``extra`` becomes template variables (e.g. ``date_string``), able to
        override ``bos_token`` / ``eos_token``. Raises ``ConfigurationError``
        when the template rejects the messages or fails.
        """
        if not messages:
            raise ConfigurationError("cannot render a chat template without messages")
        context = {"bos_token": self.bos_token, "eos_token": self.eos_token, "documents": None, **extra}
        context.update(messages=[_message(m) for m in messages], tools=tools, add_generation_prompt=add_generation_prompt)
        plain = _plain(context)
        builder = chat_builder_for(self.source)  # a shipped preset: no Jinja per call
        text = None if builder is None else render_chat_precompiled(builder, plain)
        if text is not None:
            return text
        return render(_compile(self.source), plain, what=f"chat template {self.name!r}")


def _presets() -> dict[str, Path]:
    return {p.stem: p for p in (templates_dir() / "chat").glob("*.jinja")}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {str(path)!r}: {exc}") from exc

