"""langchain-aws content handler objects, used as they are (a migration path).

langchain-aws's ``SagemakerEndpoint`` and ``ChatSagemakerEndpoint`` take a Python
handler: ``content_type`` and ``accepts`` attributes, ``transform_input(prompt or
messages, model_kwargs) -> bytes`` and ``transform_output(output)``, called

* for a whole reply with the response body (a stream with ``.read()``);
* when streaming, once per line of the stream, with the line's bytes (no newline).

:class:`LangChainAwsHandler` is a :class:`~sm_llm.handlers.ContentHandler` that
calls such an object (duck-typed: langchain-aws is not imported), so the rest of
the pipeline — routing, retries, typed errors, literal stop sequences, async jobs
— is the same as for a preset. Importing this module registers
:meth:`LangChainAwsHandler.wrap` with :func:`~sm_llm.handlers.register_object_handler`,
so that ``ContentHandler.resolve`` wraps such objects (the adapters import it).
"""

from __future__ import annotations

import io
import json
from typing import Any

from pydantic import PrivateAttr

from sm_llm._handler_spec import (
    ParsedOutput,
    ResponseSpec,
    StreamDelta,
    StreamSpec,
    normalize_finish_reason,
)
from sm_llm.errors import ConfigurationError, ResponseParseError, StreamError
from sm_llm.handlers import (
    ContentHandler,
    quote_body,  # the same body snippets as every handler's errors
    register_object_handler,
)

__all__ = ["LangChainAwsHandler"]

_METHODS = ("transform_input", "transform_output")
_ATTRIBUTES = ("content_type", "accepts")


class LangChainAwsHandler(ContentHandler):
    """A :class:`ContentHandler` whose request and replies are a langchain-aws handler's.

    The handler receives ``model_kwargs`` (the adapter's, then the call's) as its
    ``model_kwargs``; the standard fields (``max_tokens``, ``temperature``,
    ``top_p``) cannot be mapped onto names only its code knows, so they are refused.
    Stop sequences are applied client-side, as for every handler.
    """

    _source: Any = PrivateAttr(default=None)

    @classmethod
    def wrap(cls, source: Any) -> LangChainAwsHandler:
        """Check ``source`` has the langchain-aws handler interface and wrap it."""
        kind = type(source).__name__
        missing = [n for n in _METHODS if not callable(getattr(source, n, None))]
        missing += [n for n in _ATTRIBUTES if not isinstance(getattr(source, n, None), str)]
        if missing:
            raise ConfigurationError(
                f"content_handler: a {kind!r} object is not a content handler: it lacks "
                f"{', '.join(missing)}. Pass a preset name (tgi, lmi, openai...), a YAML file, "
                "a ContentHandler, or a langchain-aws handler (content_type, accepts, "
                "transform_input, transform_output)"
            )
        handler = cls(
            name=kind,
            description=f"langchain-aws handler {type(source).__module__}.{type(source).__qualname__}",
            content_type=source.content_type,
            accept=source.accepts,
            input="messages",  # ChatSageMaker hands it messages, as ChatSagemakerEndpoint does
            request_template="",
            response=ResponseSpec(text="@"),
            stream=StreamSpec(format="jsonl"),  # one record per non-blank line, as langchain-aws reads it
        )
        handler._source = source
        return handler

    def check(self) -> None:
        """Nothing to compile: the handler is code."""

    def model_dump(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Refused: Python code cannot be written into a configuration file."""
        raise ConfigurationError(
            f"content handler {self.name!r} is a Python object and cannot be written as "
            "configuration; port it to a preset or a YAML handler (README: Coming from langchain-aws)"
        )

    def build_parameters(
        self, standard: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``model_kwargs`` only; a standard field set (other than ``stop``) is refused."""
        refused = sorted(k for k, v in standard.items() if v is not None and k != "stop")
        if refused:
            raise ConfigurationError(
                f"{', '.join(refused)} cannot be used with the langchain-aws handler {self.name!r}: "
                "only its transform_input knows the container's parameter names. Put them in "
                "model_kwargs under the container's names (e.g. model_kwargs={'max_new_tokens': 128})"
            )
        return dict(extra or {})

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
        """``transform_input(prompt or messages, model_kwargs)`` as bytes."""
        if tools or response_format is not None:
            raise ConfigurationError(
                f"the langchain-aws handler {self.name!r} cannot carry tools or response_format; "
                "use content_handler='openai' for a messages container"
            )
        value = prompt if messages is None else messages
        try:
            body = self._source.transform_input(value, dict(parameters or {}))
        except Exception as exc:
            raise ConfigurationError(
                f"{self.name}.transform_input failed: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif hasattr(body, "read"):  # langchain-aws also allows a file-like object
            body = body.read()
        if not isinstance(body, (bytes, bytearray)):
            raise ConfigurationError(
                f"{self.name}.transform_input returned {type(body).__name__}; it must return bytes"
            )
        return bytes(body)

    def parse_response(self, body: bytes) -> ParsedOutput:
        """``transform_output(response body)`` → text (and a message's tool calls, usage)."""
        try:
            output = self._source.transform_output(io.BytesIO(body))
        except Exception as exc:
            raise ResponseParseError(
                f"{self.name}.transform_output failed on the reply: {type(exc).__name__}: {exc}",
                body_snippet=quote_body(body),
            ) from exc
        text, finish, usage, message = _unpack(output, self.name)
        return ParsedOutput(
            text=text,
            finish_reason=finish,
            usage=usage,
            raw=output,
            tool_calls=_openai_tool_calls(message),
        )

    def parse_stream_record(self, record: str) -> StreamDelta:
        """``transform_output(line bytes)`` → one stream step (text or a message chunk)."""
        try:
            output = self._source.transform_output(record.encode("utf-8"))
        except Exception as exc:
            raise StreamError(
                f"{self.name}.transform_output failed on a stream line: {type(exc).__name__}: "
                f"{exc}: {quote_body(record)}"
            ) from exc
        text, finish, usage, _ = _unpack(output, self.name)
        return StreamDelta(text=text, finish_reason=finish, usage=usage, raw=output)


register_object_handler(LangChainAwsHandler.wrap)  # ContentHandler.resolve wraps such objects


def _unpack(output: Any, name: str) -> tuple[str, str | None, dict[str, int] | None, Any]:
    """A transform_output result (``str``, ``None`` or a LangChain message) →
    (text, finish reason, usage, message)."""
    if output is None:
        return "", None, None, None
    if isinstance(output, str):
        return output, None, None, None
    content = getattr(output, "content", None)
    if content is None:
        raise ResponseParseError(
            f"{name}.transform_output returned {type(output).__name__}; expected a str or a message",
            body_snippet=quote_body(repr(output)),
        )
    if isinstance(content, list):  # content blocks: keep the text ones
        content = "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
        )
    metadata = getattr(output, "response_metadata", None) or {}
    finish = normalize_finish_reason(metadata.get("finish_reason") or metadata.get("stop_reason"))
    counts = getattr(output, "usage_metadata", None) or {}
    usage = None
    if "input_tokens" in counts and "output_tokens" in counts:
        usage = {"prompt_tokens": counts["input_tokens"], "completion_tokens": counts["output_tokens"]}
        usage["total_tokens"] = counts.get("total_tokens") or sum(usage.values())
    return str(content), finish, usage, output


def _openai_tool_calls(message: Any) -> list[dict[str, Any]] | None:
    """A message's LangChain tool calls in the OpenAI shape the adapters parse."""
    calls = getattr(message, "tool_calls", None)
    if not calls:
        return None
    return [
        {"id": call.get("id"), "type": "function",
         "function": {"name": call["name"], "arguments": json.dumps(call.get("args") or {})}}
        for call in calls
    ]
