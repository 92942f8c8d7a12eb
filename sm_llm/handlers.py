"""Content handlers: how a container wants its request and how it replies.

A :class:`ContentHandler` is data, not code: content types, a Jinja request
template, and JMESPath expressions that locate the text, finish reason, usage
and tool calls in a reply and in each stream record. Presets for the common
SageMaker containers live in ``templates/handlers/*.yaml``; a user handler is
the same YAML shape, loaded with :meth:`ContentHandler.from_file` or built
inline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sm_llm._expr import Getter, compile_expression, plain_head
from sm_llm._handler_spec import (  # public names of this module too
    ParsedOutput,
    ResponseSpec,
    StreamDelta,
    StreamSpec,
    UsageSpec,
    normalize_finish_reason,
)
from sm_llm._pickling import cached_names, deepcopy_state, without_cached
from sm_llm._precompiled import Builder, builder_for, render_precompiled
from sm_llm._routing import check_media_type
from sm_llm._templating import compile_template, render
from sm_llm._validation import validation_problems
from sm_llm.errors import (
    ConfigurationError,
    ModelError,
    ResponseParseError,
    StreamError,
    StreamParseError,
    snippet,
)

__all__ = [
    "ContentHandler",
    "ParsedOutput",
    "ResponseSpec",
    "StreamDelta",
    "StreamSpec",
    "UsageSpec",
    "list_presets",
    "quote_body",
    "register_object_handler",
    "templates_dir",
]



def _reasoning_text(value: Any) -> str | None:
    """A reasoning field's value as text (a non-empty string), else ``None``."""
    return value if isinstance(value, str) and value else None


def templates_dir() -> Path:
    """The presets folder: inside the installed package, or the repo copy in a checkout."""
    packaged = Path(__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


def list_presets(kind: Literal["handlers", "chat"] = "handlers") -> list[str]:
    """Names of the shipped presets of one kind."""
    folder = templates_dir() / kind
    suffix = ".yaml" if kind == "handlers" else ".jinja"
    return sorted(p.name.removesuffix(suffix) for p in folder.glob(f"*{suffix}"))


_raw_decode = json.JSONDecoder().raw_decode


def _loads(record: str) -> Any:
    """``json.loads`` without its whitespace and BOM checks on the usual record."""
    try:
        data, end = _raw_decode(record)
    except ValueError:
        return json.loads(record)  # leading whitespace, or the real error message
    return data if end == len(record) else json.loads(record)


def _loads_body(body: bytes) -> Any:
    """``json.loads(body)`` without its encoding detection on the usual UTF-8 reply.

    Any body ``json.loads`` would read as UTF-16/32 (a BOM, or a NUL in its first two
    bytes) or with surrogates fails here first, and is then read by ``json.loads`` itself.
    """
    if type(body) is not bytes:
        return json.loads(body)
    try:
        text = body.decode("utf-8")
        data, end = _raw_decode(text)
    except ValueError:  # not UTF-8, leading whitespace, not JSON: json.loads decides
        return json.loads(body)
    return data if end == len(text) else json.loads(body)


@lru_cache(maxsize=128)
def _usage_getters(spec: UsageSpec | None) -> tuple[tuple[str, Getter], ...]:
    if spec is None:
        return ()
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return tuple((k, compile_expression(e)) for k in keys if (e := getattr(spec, k)) is not None)


def _usage_head(spec: UsageSpec | None) -> str | None:
    """The key every usage expression starts with (``usage``, ``details``), if there is
    one: a record without it has no usage, and its expressions need not run."""
    if spec is None:
        return None
    heads = {plain_head(e) for e in (spec.prompt_tokens, spec.completion_tokens, spec.total_tokens) if e is not None}
    return heads.pop() if len(heads) == 1 else None


def _read_usage(getters: tuple[tuple[str, Getter], ...], data: Any) -> dict[str, int] | None:
    usage: dict[str, int] | None = None
    for key, get in getters:
        value = get(data)
        if isinstance(value, int) and not isinstance(value, bool):
            if usage is None:
                usage = {}
            usage[key] = value
    if usage and "total_tokens" not in usage and {"prompt_tokens", "completion_tokens"} <= usage.keys():
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def quote_body(body: bytes | str) -> str:
    """The start of a reply body (or record) for an error message."""
    return snippet(body.decode("utf-8", "replace") if isinstance(body, bytes) else body)


# Set by the module that knows Python handler objects (sm_llm._lc_aws, imported with sm_llm),
# so that this lower module never imports it.
_OBJECT_HANDLERS: list[Callable[[Any], ContentHandler]] = []


def register_object_handler(wrap: Callable[[Any], ContentHandler]) -> None:
    """Let :meth:`ContentHandler.resolve` accept Python handler objects: ``wrap(value)``
    returns the :class:`ContentHandler` that calls ``value``, or raises a
    ``ConfigurationError`` naming what ``value`` lacks. The latest registration wins."""
    _OBJECT_HANDLERS[:] = [wrap]


class ContentHandler(BaseModel):
    """How to talk to one kind of container. See the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    description: str = ""
    content_type: str = "application/json"
    accept: str = "application/json"
    input: Literal["prompt", "messages", "texts"] = Field(
        default="prompt",
        description=(
            "what the container takes: a prompt string, chat messages, or a batch of texts "
            "(embeddings; the template receives them as `messages`, one user message per text)"
        ),
    )
    request_template: str
    parameters: dict[str, str | None] = Field(
        default_factory=dict,
        description="LangChain standard names (max_tokens, temperature, stop, top_p) → container names; null = not supported",
    )
    default_parameters: dict[str, Any] = Field(default_factory=dict)
    custom_attributes: dict[str, str] = Field(default_factory=dict)
    supports_tools: bool = False
    response: ResponseSpec
    stream: StreamSpec | None = None

    @field_validator("content_type", "accept")
    @classmethod
    def _check_media_type(cls, value: str, info: Any) -> str:
        check_media_type(info.field_name, value)  # they are sent as headers
        return value

    # -- pickling -----------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The fields, without the compiled template and getters (recompiled on first use)."""
        return without_cached(super().__getstate__(), type(self))

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        return deepcopy_state(self, memo)

    def __copy__(self) -> Self:
        """A shallow copy compiling its own template (``model_copy(update=...)`` may change it)."""
        copied = super().__copy__()
        for name in cached_names(type(self)):
            copied.__dict__.pop(name, None)
        return copied

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str) -> ContentHandler:
        """A shipped preset (``tgi``, ``lmi``, ``openai``, ``jumpstart``, ...)."""
        return _load_preset(name)

    @classmethod
    def from_file(cls, path: str | Path) -> ContentHandler:
        """A handler from a YAML file of the same shape as the presets."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read content handler file {path}: {exc}") from exc
        return cls._from_yaml_text(text, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "content_handler") -> ContentHandler:
        """A handler from a mapping; every problem is reported in one ``ConfigurationError``."""
        try:
            handler = cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(validation_problems(exc))
            raise ConfigurationError(f"{source}: invalid content handler: {problems}") from exc
        handler.check()
        return handler

    @classmethod
    def resolve(cls, value: str | Path | dict[str, Any] | ContentHandler | Any) -> ContentHandler:
        """A handler from what a user may write: preset name, YAML path, mapping, handler,
        or a langchain-aws handler object (``transform_input`` / ``transform_output``)."""
        if isinstance(value, ContentHandler):
            return value
        if isinstance(value, dict):
            return cls.from_dict(value)
        if not isinstance(value, (str, Path)):
            if not _OBJECT_HANDLERS:  # not reached once sm_llm is imported (it registers one)
                raise ConfigurationError(
                    f"content_handler: a {type(value).__name__!r} object is not a content handler. "
                    "Pass a preset name (tgi, lmi, openai...), a YAML file or a ContentHandler"
                )
            return _OBJECT_HANDLERS[-1](value)  # refuses, naming what is missing, if not one
        text = str(value)
        if isinstance(value, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
            return cls.from_file(text)
        return cls.from_preset(text)

    @classmethod
    def _from_yaml_text(cls, text: str, *, source: str) -> ContentHandler:
        from sm_llm._yaml import load

        data = load(text, source)  # aliases, depth and integers bounded; errors name file:line
        if not isinstance(data, dict):
            raise ConfigurationError(f"{source}: a content handler must be a mapping")
        return cls.from_dict(data, source=source)

    def check(self) -> None:
        """Compile the template and every expression now, so mistakes surface at load time."""
        self._template  # noqa: B018 - compiles
        specs: list[Any] = [self.response, self.stream]
        for spec in specs:
            if spec is None:
                continue
            for key, value in spec:
                if isinstance(value, str):
                    compile_expression(value)
                elif isinstance(value, UsageSpec):
                    for _, expression in value:
                        if expression is not None:
                            compile_expression(expression)
                elif key not in ("format", "whole_reply") and value is not None:  # pragma: no cover - schema forbids
                    raise ConfigurationError(f"unexpected value for {key}")

    # -- requests -----------------------------------------------------------------

    @cached_property
    def _template(self) -> Any:
        return compile_template(self.request_template)

    @cached_property
    def _precompiled(self) -> Builder | None:
        return builder_for(self.request_template)

    def build_parameters(
        self, standard: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Container parameters: defaults, then ``extra`` (container names), then the
        LangChain standard parameters mapped to the container's names.

        A standard parameter the container does not support is dropped (``stop`` is
        still applied client-side by the adapters).
        """
        parameters = dict(self.default_parameters)
        if extra:
            parameters.update(extra)
        for key, value in standard.items():
            if value is None:
                continue
            target = self.parameters.get(key, key)
            if target is not None:
                parameters[target] = value
        return parameters

    def render_request(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
        parameters: dict[str, Any] | None = None,
        stream: bool = False,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Any = None,
    ) -> bytes:
        """Render the request body for a prompt or chat messages (OpenAI dicts)."""
        if (prompt is None) == (messages is None):
            raise ConfigurationError("render_request takes exactly one of prompt= or messages=")
        if tools and not self.supports_tools:
            raise ConfigurationError(
                f"content handler {self.name!r} cannot carry tools; use a messages container "
                "(content_handler='openai')"
            )
        context = {
            "prompt": prompt,
            "messages": messages,
            "parameters": parameters or {},
            "stream": stream,
            "tools": tools,
            "tool_choice": tool_choice,
            "response_format": response_format,
        }
        builder = self._precompiled
        text = None if builder is None else render_precompiled(builder, context)
        precompiled = text is not None
        if text is None:
            text = render(self._template, context, what=f"request template of {self.name!r}")
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigurationError(
                f"the request contains a lone surrogate (position {exc.start}) that cannot be "
                "encoded as UTF-8; containers reject such text, so it is refused before sending"
            ) from exc
        if "json" in self.content_type and not precompiled:  # json.dumps's own text is JSON
            try:
                json.loads(body)
            except ValueError as exc:
                raise ConfigurationError(
                    f"request template of {self.name!r} produced invalid JSON ({exc}): "
                    f"{quote_body(body)}"
                ) from exc
        return body

    # -- replies ------------------------------------------------------------------

    def _getter(self, expression: str | None) -> Getter | None:
        return None if expression is None else compile_expression(expression)

    def parse_response(self, body: bytes) -> ParsedOutput:
        """Parse a whole reply into text, finish reason, usage and tool calls."""
        try:
            data = _loads_body(body)
        except RecursionError:  # "[[[[…": deeper than the interpreter can follow
            raise ResponseParseError(
                f"reply is nested too deeply to parse (handler {self.name!r})", body_snippet=quote_body(body)
            ) from None
        except ValueError as exc:
            if "json" in self.accept:
                raise ResponseParseError(
                    f"reply is not JSON as handler {self.name!r} expects",
                    body_snippet=quote_body(body),
                ) from exc
            return ParsedOutput(text=body.decode("utf-8", "replace"), raw=body)
        spec = self.response
        error, text_get, tool_calls_get, reasoning_get, finish, model, usage_gets = self._response_getters
        if error is not None and (detail := error(data)) is not None:
            raise ModelError(
                f"container reported an error: {detail}", original_message=str(detail)
            )
        text = text_get(data)
        tool_calls = tool_calls_get(data) if tool_calls_get else None
        reasoning = _reasoning_text(reasoning_get(data)) if reasoning_get else None
        if text is None and not tool_calls and reasoning is None:  # thinking cut short by max_tokens
            raise ResponseParseError(
                f"reply has no text at {spec.text!r} (handler {self.name!r})",
                body_snippet=quote_body(body),
            )
        if text is not None and not isinstance(text, str):
            try:
                text = json.dumps(text, ensure_ascii=False)
            except RecursionError:
                raise ResponseParseError(
                    f"reply text at {spec.text!r} is nested too deeply", body_snippet=quote_body(body)
                ) from None
        return ParsedOutput(  # positional: cheaper, once per reply
            text or "",
            normalize_finish_reason(finish(data)) if finish else None,
            _read_usage(usage_gets, data) if usage_gets else None,
            data,
            list(tool_calls) if tool_calls else None,
            model(data) if model else None,
            reasoning,
        )

    @cached_property
    def _response_getters(self) -> tuple[Any, ...]:
        """The reply expressions, compiled once per handler (not looked up on every reply)."""
        spec = self.response
        return (
            self._getter(spec.error),
            compile_expression(spec.text),
            self._getter(spec.tool_calls),
            self._getter(spec.reasoning),
            self._getter(spec.finish_reason),
            self._getter(spec.model_name),
            _usage_getters(spec.usage),
        )

    @cached_property
    def _stream_getters(self) -> tuple[Any, ...]:
        spec = self.stream
        if spec is None:
            return (None,) * 6 + ((), None, None)
        return (
            self._getter(spec.text),
            self._getter(spec.skip),
            self._getter(spec.finish_reason),
            self._getter(spec.tool_calls),
            self._getter(spec.error),
            self._getter(spec.model_name),
            _usage_getters(spec.usage),
            self._getter(spec.reasoning),
            _usage_head(spec.usage),
        )

    def parse_stream_record(self, record: str) -> StreamDelta:
        """Parse one decoded stream record (a JSON document, or raw text)."""
        spec = self.stream
        if spec is None:
            raise ConfigurationError(f"content handler {self.name!r} does not stream")
        if spec.format == "raw":
            return StreamDelta(text=record, raw=record)
        try:
            data = _loads(record)
        except RecursionError:
            raise StreamParseError(
                f"stream record is nested too deeply to parse (handler {self.name!r}): {quote_body(record)}",
                body_snippet=quote_body(record),
            ) from None
        except ValueError as exc:
            raise StreamParseError(
                f"stream record is not JSON as handler {self.name!r} expects: {quote_body(record)}",
                body_snippet=quote_body(record),
            ) from exc
        text_get, skip_get, finish_get, tools_get, error_get, model_get, usage_gets, reasoning_get, usage_head = (
            self._stream_getters
        )
        if usage_head is not None and (not isinstance(data, dict) or data.get(usage_head) is None):
            usage_gets = ()  # no usage object in this record (most of them): nothing to read
        if error_get is not None and (detail := error_get(data)) is not None:
            raise StreamError(f"the container reported an error mid-stream: {detail}")
        finish = finish_get(data) if finish_get else None
        if finish is not None and (finish := normalize_finish_reason(finish)) == "error":
            raise StreamError(f"the container ended the stream with an error: {quote_body(record)}")
        text = text_get(data) if text_get else None
        if text is not None and skip_get is not None and skip_get(data):
            text = None
        tool_chunks = tools_get(data) if tools_get else None
        return StreamDelta(  # positional: several times cheaper, once per record
            text if isinstance(text, str) else "",
            finish,
            _read_usage(usage_gets, data) if usage_gets else None,
            list(tool_chunks) if tool_chunks else [],
            model_get(data) if model_get else None,
            data,
            (_reasoning_text(reasoning_get(data)) or "") if reasoning_get else "",
        )


@lru_cache(maxsize=64)
def _load_preset(name: str) -> ContentHandler:
    path = templates_dir() / "handlers" / f"{name}.yaml"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(list_presets()) or "(none found)"
        raise ConfigurationError(f"unknown content handler preset {name!r}; presets: {known}")
    return ContentHandler._from_yaml_text(path.read_text(encoding="utf-8"), source=str(path))
