"""The sandboxed Jinja environment shared by request templates and chat templates.

Templates are data supplied by users (YAML files, inline strings, Hugging Face
``chat_template`` strings), so they render in
:class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with ``StrictUndefined``:
no attribute access to Python internals, no mutation of the values passed in,
and a typo in a variable name is an error instead of an empty string. Each
render has a budget of text, steps and time (:mod:`sm_llm._sandbox`,
:mod:`sm_llm._render_budget`).

User strings reach JSON bodies only through our ``tojson`` filter, which is a
plain ``json.dumps`` (not Jinja's HTML-safe variant), so quotes, backslashes,
newlines, NUL, emoji and text that looks like Jinja arrive byte-exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NoReturn

from sm_llm._render_budget import budget
from sm_llm._sandbox import sandbox_class
from sm_llm.errors import ConfigurationError

__all__ = ["compile_template", "raise_exception", "render", "sandbox_class", "tojson"]


def _json_default(value: Any) -> Any:
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # raises UndefinedError naming the variable
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# What ``json.dumps(value, ensure_ascii=False, default=..., separators=(",", ":"))`` builds
# on every call; the encoder keeps no state between calls, so one serves every thread.
_COMPACT = json.JSONEncoder(ensure_ascii=False, default=_json_default, separators=(",", ":"))


def tojson(value: Any, indent: int | None = None) -> str:
    """Serialise ``value`` as compact JSON text (UTF-8 kept as is)."""
    if indent is None:
        return _COMPACT.encode(value)
    return json.dumps(
        value,
        ensure_ascii=False,
        default=_json_default,
        indent=indent,
        separators=(", ", ": ") if indent else (",", ":"),
    )


def _merge(left: Any, right: Any) -> dict[str, Any]:
    """``{...} | merge(other)``: a new mapping, keys of ``right`` winning."""
    if not isinstance(left, dict) or not isinstance(right, dict):
        raise TypeError("merge expects two mappings")
    merged = dict(left)
    merged.update(right)
    return merged


def raise_exception(message: str) -> NoReturn:
    """Hugging Face chat templates call ``raise_exception('...')`` to reject input."""
    raise ConfigurationError(f"chat template rejected the messages: {message}")


@lru_cache(maxsize=1)
def _environment() -> Any:
    # Imported lazily: jinja2 costs ~15 ms at import and is only needed on first render.
    from jinja2 import StrictUndefined

    env = sandbox_class()(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson"] = tojson
    env.filters["merge"] = _merge
    env.globals["raise_exception"] = raise_exception
    return env


@lru_cache(maxsize=256)
def compile_template(
    source: str, environment: Callable[[], Any] | None = None, what: str = "template"
) -> Any:
    """Compile ``source`` once (cached by text and environment); errors → ``ConfigurationError``."""
    from jinja2 import TemplateError

    try:
        return (environment or _environment)().from_string(source)
    except TemplateError as exc:
        raise ConfigurationError(f"invalid {what}: {exc}") from exc


def render(template: Any, context: dict[str, Any], *, what: str = "template") -> str:
    """Render a compiled template, turning every failure into ``ConfigurationError``."""
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    try:
        with budget(context):
            return str(template.render(context))
    except ConfigurationError:
        raise
    except SecurityError as exc:
        raise ConfigurationError(f"{what} tried an unsafe operation: {exc}") from exc
    except TemplateError as exc:
        raise ConfigurationError(f"{what} failed to render: {exc}") from exc
    except (TypeError, ValueError, LookupError, AttributeError, ArithmeticError, RecursionError) as exc:
        raise ConfigurationError(f"{what} failed to render: {exc}") from exc
    except MemoryError as exc:  # a last line of defence: the budget should refuse first
        raise ConfigurationError(f"{what} ran out of memory") from exc
