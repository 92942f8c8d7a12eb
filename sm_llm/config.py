"""Adapters as data: load them from YAML (or a mapping), write them back.

.. code-block:: yaml

    # agent.yaml
    defaults:
      region_name: ${AWS_REGION:-us-east-1}
    models:
      assistant:
        kind: chat
        endpoint_name: my-vllm
        content_handler: openai
        max_tokens: 512
      summariser:
        kind: llm
        endpoint_name: my-tgi
        content_handler: ./handlers/tgi-long.yaml   # relative to this file

``load_config("agent.yaml", name="assistant")`` returns the adapter. Every
problem in a file — unknown keys, wrong types, bad presets, bad routing values,
missing environment variables — is reported at once, as
``agent.yaml:7 models.summariser.max_tokens: must be > 0``.
"""

from __future__ import annotations

import os
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

from sm_llm._names import did_you_mean
from sm_llm._registry import KINDS, adapter_class, kind_of
from sm_llm._validation import is_file
from sm_llm._yaml_source import Problems, YamlSource
from sm_llm.errors import ConfigurationError

__all__ = ["config_fields", "config_schema", "load_config", "masked", "to_config"]

SECRETS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
# bearer_token: a token lives hours at most, a file longer; adapters make their own from the credentials
_NOT_CONFIG = {
    "client", "config", "rate_limiter", "callbacks", "cache", "custom_get_token_ids", "profile",
    "bearer_token",
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def config_fields(kind: str) -> dict[str, Any]:
    """The pydantic fields a config file may set for ``kind`` (name → FieldInfo)."""
    cls = adapter_class(kind)
    return {name: f for name, f in cls.model_fields.items() if name not in _NOT_CONFIG}


def _interpolate(value: Any, path: tuple[str | int, ...], problems: Problems) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        problems.add(path, f"environment variable {name} is not set (write ${{{name}:-default}} for a default)")
        return ""

    return _VAR.sub(substitute, value)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_path(key: str, value: str) -> bool:
    """Whether the adapter will read ``value`` of field ``key`` as a file path — the same
    rules as ``ContentHandler.resolve`` / ``ChatTemplate.resolve``."""
    from sm_llm.handlers import list_presets

    if key == "content_handler":
        return value.endswith((".yaml", ".yml")) or "/" in value
    inline = "{%" in value or "{{" in value
    return bool(value) and not inline and value not in list_presets("chat")


def _resolve_paths(fields: dict[str, Any], base_dir: Path | None) -> None:
    """Every path field (``content_handler``, ``chat_template``) is relative to the YAML
    file's directory, never to the current one — with or without a suffix."""
    if base_dir is None:
        return
    for key in ("content_handler", "chat_template"):
        value = fields.get(key)
        if isinstance(value, str) and _is_path(key, value) and not Path(value).is_absolute():
            fields[key] = str((base_dir / value).resolve())


def _build(
    kind: Any, fields: dict[str, Any], raw: dict[str, Any], path: tuple[str | int, ...], problems: Problems
) -> Any:
    if kind not in KINDS:
        problems.add((*path, "kind"), f"must be one of {', '.join(KINDS)} (got {kind!r})")
        return None
    allowed = config_fields(kind)
    aliases = {f.alias: name for name, f in allowed.items() if f.alias}
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        name = aliases.get(key, key)
        if name not in allowed:
            hint = did_you_mean(str(key), [*allowed, *aliases])
            problems.add((*path, key), f"unknown field for kind {kind}{hint}")
            continue
        literal = isinstance(raw.get(key), str) and "${" not in raw[key]
        if name in SECRETS and value and literal and problems.source is not None:
            warnings.warn(
                f"{problems.source.name}: {'.'.join(map(str, (*path, key)))} holds a literal secret; "
                f"prefer ${{{name.upper()}}} from the environment",
                stacklevel=4,
            )
        clean[name] = value
    from pydantic import ValidationError

    _precheck(clean, path, problems)
    try:
        _config_model(kind).model_validate({"kind": kind, **clean})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
            if loc[:1] and loc[0] in ("content_handler", "chat_template"):
                continue  # reported by _precheck with a better message
            problems.add((*path, *loc[:1]), err["msg"].replace("Input should be", "must be"))
    if problems.items:
        return None

    try:
        return adapter_class(kind)(**clean)
    except ConfigurationError as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            for err in cause.errors():
                loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
                problems.add((*path, *loc[:1]), err["msg"].replace("Input should be", "must be"))
        else:
            field = next((f for f in clean if str(exc).startswith((f"{f}=", f"{f} "))), None)
            problems.add((*path, field) if field else path, str(exc))
    return None


def _precheck(fields: dict[str, Any], path: tuple[str | int, ...], problems: Problems) -> None:
    """Check routing values, the handler and the chat template one by one, so that every
    problem is reported (construction stops at the first)."""
    from pydantic import ValidationError

    from sm_llm._routing import INVOKE, ROUTING_FIELDS, Routing, check_endpoint_name
    from sm_llm.chat_templates import ChatTemplate
    from sm_llm.handlers import ContentHandler

    checks: dict[str, Any] = {
        name: (lambda value, name=name: Routing(**{name: value}).to_params(INVOKE))
        for name in ROUTING_FIELDS
    }
    checks["endpoint_name"] = check_endpoint_name
    checks["content_handler"] = ContentHandler.resolve
    checks["chat_template"] = ChatTemplate.resolve
    for name, check in checks.items():
        value = fields.get(name)
        if value is None:
            continue
        try:
            check(value)
        except (ConfigurationError, ValidationError, TypeError) as exc:
            problems.add((*path, name), str(exc).splitlines()[0])


def load_config(source: str | Path | dict[str, Any], name: str | None = None) -> Any:
    """A ``SageMakerLLM``, ``ChatSageMaker`` or ``SageMakerEmbeddings`` from YAML.

    ``source``: a path to a YAML file, YAML text, or an already-parsed mapping.
    A file with several adapters under ``models:`` needs ``name=`` (unless it
    holds exactly one); ``defaults:`` are merged into each.
    """
    parsed: YamlSource | None = None
    base_dir: Path | None = None
    if isinstance(source, dict):
        data: Any = source
    else:
        text = str(source)
        path = Path(text)
        if isinstance(source, Path) or text.endswith((".yaml", ".yml")) or (
            "\n" not in text and is_file(path)
        ):
            try:
                content = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"cannot read {path}: {exc}") from exc
            parsed, base_dir = YamlSource(content, path.name), path.resolve().parent
        else:
            parsed = YamlSource(text, "<string>")
        data = parsed.data
    problems = Problems(parsed)
    if not isinstance(data, dict):
        problems.add((), "a configuration must be a mapping")
        problems.raise_if_any()
    raw_data = data
    data = _interpolate(data, (), problems)
    problems.raise_if_any()
    if "models" in data:
        unknown = set(data) - {"models", "defaults"}
        for key in sorted(unknown):
            problems.add((key,), "unknown top-level key (expected models: and defaults:)")
        models = data.get("models") or {}
        defaults = data.get("defaults") or {}
        if not isinstance(models, dict) or not isinstance(defaults, dict):
            problems.add(("models",), "models: and defaults: must be mappings")
            problems.raise_if_any()
        if name is None and len(models) == 1:
            name = next(iter(models))
        if name is None:
            raise ConfigurationError(
                f"several models are defined ({', '.join(models)})", field="name", advice="pass name="
            )
        if name not in models:
            raise ConfigurationError(f"no model named {name!r}; defined: {', '.join(models) or 'none'}")
        entry = models[name]
        if not isinstance(entry, dict):
            problems.add(("models", name), "must be a mapping of fields")
            problems.raise_if_any()
        where: tuple[str | int, ...]
        fields, where = _merge(defaults, entry), ("models", name)
        raw = _merge(raw_data.get("defaults") or {}, raw_data["models"][name])
    else:
        fields, where, raw = dict(data), (), raw_data
    kind = fields.pop("kind", "llm")
    _resolve_paths(fields, base_dir)
    adapter = _build(kind, fields, raw, where, problems)
    problems.raise_if_any()
    return adapter


def to_config(adapter: Any) -> dict[str, Any]:
    """The adapter as a config mapping: non-default fields, no secrets, ``kind`` first."""
    from sm_llm.handlers import ContentHandler

    kind = kind_of(adapter)
    config: dict[str, Any] = {"kind": kind}
    for name, field in config_fields(kind).items():
        if name in SECRETS or name in ("name", "verbose", "tags", "metadata", "disable_streaming", "output_version"):
            continue
        value = getattr(adapter, name)
        if value == field.get_default(call_default_factory=True):
            continue
        if name == "transport" and not isinstance(value, str):
            continue  # a Transport object is code, not configuration
        if isinstance(value, ContentHandler) or hasattr(value, "model_dump"):
            value = value.model_dump(exclude_defaults=True)
        config[name] = value
    return config


@cache
def _config_model(kind: str) -> Any:
    """A pydantic model of one config entry: the adapter's fields, nothing else."""
    from typing import Literal

    from pydantic import ConfigDict, create_model

    # kind may be left out only for llm, so each document matches exactly one variant
    fields: dict[str, Any] = {"kind": (Literal[kind], kind if kind == "llm" else ...)}
    for name, field in config_fields(kind).items():
        fields[name] = (field.annotation, field)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=True)
    return create_model(f"{kind.capitalize()}Config", __config__=config, **fields)


def masked(adapter: Any) -> dict[str, Any]:
    """:func:`to_config` plus the secrets that are set, shown as ``****``."""
    config = to_config(adapter)
    for name in SECRETS:
        if getattr(adapter, name, None) is not None:
            config[name] = "****"
    return config


def config_schema() -> dict[str, Any]:
    """A JSON Schema for config files (one adapter, or ``models:`` + ``defaults:``)."""
    variants = [_config_model(kind).model_json_schema(mode="validation") for kind in KINDS]
    single = {"oneOf": variants}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "sm_llm configuration",
        "oneOf": [
            {
                "type": "object",
                "required": ["models"],
                "additionalProperties": False,
                "properties": {
                    "defaults": {"type": "object"},
                    "models": {"type": "object", "additionalProperties": single},
                },
            },
            single,
        ],
    }
