"""``ChatSageMaker``: a LangChain chat model on a SageMaker endpoint.

Two ways to talk to a model:

* **messages containers** (``content_handler="openai"``: TGI Messages API, LMI
  chat, vLLM) receive OpenAI chat messages, tools and ``response_format``;
* **text containers** (``tgi``, ``lmi``, ``jumpstart``) receive a prompt that a
  Hugging Face chat template (``chat_template="llama3"``, a file, or an inline
  string) renders from the messages.

Two wires: ``api="invocations"`` (``InvokeEndpoint``, the default) and ``api="openai"``,
SageMaker's OpenAI-compatible route with bearer tokens
(:class:`~sm_llm.transports.OpenAIRouteTransport`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import agenerate_from_stream, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from sm_llm import _messages
from sm_llm._core.pipeline import StreamEnd, StreamPiece
from sm_llm._core.request import PreparedRequest, RequestSpec, reply_metadata
from sm_llm._generative import GenerativeBase
from sm_llm._registry import register
from sm_llm._routing import INVOKE, STREAM, Operation
from sm_llm._stop import truncate_at_stop
from sm_llm._tokens import token_ids
from sm_llm.chat_templates import ChatTemplate
from sm_llm.errors import ConfigurationError
from sm_llm.handlers import ContentHandler
from sm_llm.transports import OpenAIRouteTransport, Transport
from sm_llm.transports.openai_route import REFUSED_PARAMS

__all__ = ["ChatSageMaker"]

_CHAT_KWARGS = ("tools", "tool_choice", "response_format")


@register("chat")
class ChatSageMaker(GenerativeBase, BaseChatModel):
    """A chat model served by a SageMaker endpoint.

    Example:
        .. code-block:: python

            from sm_llm import ChatSageMaker

            chat = ChatSageMaker(endpoint_name="my-vllm", content_handler="openai",
                                 region_name="us-east-1")
            chat.bind_tools([get_weather]).invoke("weather in Paris?")

            llama = ChatSageMaker(endpoint_name="my-tgi", content_handler="tgi",
                                  chat_template="llama3")
    """

    content_handler: Any = "openai"
    """Preset (default ``openai``), YAML path, mapping, ``ContentHandler``, or a
    langchain-aws chat handler object (it receives the messages)."""
    chat_template: str | None = None
    """For text containers: a chat-template preset, a path, or an inline Jinja template."""
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra variables for the chat template (e.g. ``bos_token``)."""

    api: Literal["invocations", "openai"] = "invocations"
    """The wire: ``invocations`` (``InvokeEndpoint``, SigV4; every handler and routing option)
    or ``openai`` (SageMaker's OpenAI-compatible route ``/openai/v1/chat/completions``, bearer
    tokens; the ``openai`` handler, the endpoint and an inference component only)."""
    bearer_token: SecretStr | Callable[[], SecretStr | str] | None = Field(default=None, exclude=True, repr=False)
    """For ``api="openai"``: the token to send, or a callable returning one before every
    request — instead of tokens made from the AWS credentials (``sm_llm.auth``)."""

    _template: ChatTemplate | None = PrivateAttr(default=None)
    _call_kwargs = _CHAT_KWARGS

    def model_post_init(self, context: Any, /) -> None:
        """Resolve handler and chat template (no client is created here)."""
        super().model_post_init(context)
        if self.handler.input == "prompt":
            if self.chat_template is None:
                raise ConfigurationError(
                    f"content handler {self.handler.name!r} takes a prompt, so ChatSageMaker needs "
                    "a chat template: chat_template='llama3' (or llama2, mistral, chatml, a path "
                    "to a .jinja / tokenizer_config.json file, or an inline template)"
                )
            self._template = ChatTemplate.resolve(self.chat_template)
        elif self.chat_template is not None or self.chat_template_kwargs:
            given = "chat_template" if self.chat_template is not None else "chat_template_kwargs"
            raise ConfigurationError(
                f"{given} would be ignored: content handler {self.handler.name!r} sends the chat "
                "messages and the container applies its own chat template. Remove it, or use a "
                "text handler (tgi, lmi, jumpstart...) to render the prompt with this template "
                "(vLLM's chat_template_kwargs request field goes in model_kwargs)"
            )

    def _check_connection(self) -> None:
        super()._check_connection()
        if self.api == "openai":
            self._check_openai_route()
        elif self.bearer_token is not None:
            raise ConfigurationError(
                "bearer_token is only sent on SageMaker's OpenAI route", field="bearer_token",
                advice="set api='openai', or remove bearer_token (api='invocations' signs with AWS credentials)",
            )

    def _check_openai_route(self) -> None:
        """What ``api="openai"`` cannot carry is refused now, before anything is sent."""
        given = [name for name in (*REFUSED_PARAMS.values(), "inference_id", "async_inference", "client", "config")
                 if getattr(self, name, None) is not None]
        if given:
            raise ConfigurationError(
                f"api='openai' cannot use {', '.join(given)}: SageMaker's OpenAI route carries the endpoint "
                "and an inference component only (and has no asynchronous inference)",
                field=given[0], advice="remove it, or use api='invocations'",
            )
        if self.handler != ContentHandler.from_preset("openai"):
            raise ConfigurationError(
                f"api='openai' sends OpenAI chat completions: content handler {self.handler.name!r} "
                "cannot be used", field="content_handler",
                advice="leave content_handler at 'openai', or use api='invocations' for other containers",
            )

    def _spec(self) -> RequestSpec:
        spec = super()._spec()
        if self.api == "openai" and "model" not in spec.model_kwargs:  # the route takes model ""
            spec = dataclasses.replace(spec, model_kwargs={"model": "", **spec.model_kwargs})
        return spec

    def _new_transport(self) -> Transport:
        if self.api == "openai":
            return OpenAIRouteTransport(self._settings(), bearer_token=self.bearer_token)
        return super()._new_transport()

    def _transport_recipe(self) -> tuple[Any, ...]:
        return (*super()._transport_recipe(), self.api, self.bearer_token)

    @property
    def _llm_type(self) -> str:
        return "amazon_sagemaker_chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Adapters serialise with ``langchain_core.load.dumpd`` (secrets excluded)."""
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {
            "aws_access_key_id": "AWS_ACCESS_KEY_ID",
            "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
            "aws_session_token": "AWS_SESSION_TOKEN",
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._ls_params("chat", stop, kwargs)

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` (so ``get_num_tokens``): ``custom_get_token_ids`` if given,
        else the ``tokenizer.json`` beside a ``tokenizer_config.json`` chat template (needs
        ``pip install 'sm-llm[tokenizers]'``); otherwise a ``ConfigurationError`` — never
        LangChain's GPT-2 guess."""
        tokenizer = self._template.tokenizer if self._template is not None else None
        return token_ids(text, custom=self.custom_get_token_ids, tokenizer=tokenizer, owner="ChatSageMaker")

    @property
    def _identifying_params(self) -> dict[str, Any]:
        params = super()._identifying_params
        if self.api != "invocations":
            params["api"] = self.api
        if self._template is not None:
            params["chat_template"] = self._template.name
        return params

    # -- requests -----------------------------------------------------------------

    def _render(
        self, value: Any, stop: list[str] | None, kwargs: dict[str, Any], operation: Operation
    ) -> PreparedRequest:
        messages = value if isinstance(value, list) else self._convert_input(value).to_messages()
        return self._prepare_chat(messages, stop, kwargs, operation)

    def _from_body(self, request: PreparedRequest, body: bytes, metadata: dict[str, Any]) -> ChatGeneration:
        return self._to_result(request, request.handler.parse_response(body), metadata).generations[0]

    def _output(self, generation: Any) -> BaseMessage:
        return generation.message  # type: ignore[no-any-return]

    def _prepare_chat(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any], operation: Operation
    ) -> PreparedRequest:
        kwargs = dict(kwargs)
        extra = {key: kwargs.pop(key) for key in _CHAT_KWARGS if key in kwargs}
        openai_messages = _messages.to_openai(messages)
        if self._template is None:
            return self.engine.prepare(
                messages=openai_messages, stop=stop, kwargs=kwargs, operation=operation, render_extra=extra
            )
        if any(v is not None for v in extra.values()):
            raise ConfigurationError(
                f"content handler {self.handler.name!r} cannot carry tools or response_format; "
                "use a messages container (content_handler='openai')"
            )
        prompt = self._template.render(
            _messages.text_messages(openai_messages), add_generation_prompt=True,
            **self.chat_template_kwargs,
        )
        stops = list(stop if stop is not None else (self.stop or []))
        stops += [s for s in self._template.stop if s not in stops]
        return self.engine.prepare(prompt=prompt, stop=stops or None, kwargs=kwargs, operation=operation)

    # -- whole replies ------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.async_inference is not None:
            return ChatResult(generations=self._through_jobs([messages], stop, kwargs))
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))
        request = self._prepare_chat(messages, stop, kwargs, INVOKE)
        return self._to_result(request, *self.engine.call(request))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.async_inference is not None:
            return ChatResult(generations=await self._athrough_jobs([messages], stop, kwargs))
        if self.streaming:
            return await agenerate_from_stream(
                self._astream(messages, stop=stop, run_manager=run_manager, **kwargs)
            )
        request = self._prepare_chat(messages, stop, kwargs, INVOKE)
        return self._to_result(request, *await self.engine.acall(request))

    def _to_result(self, request: PreparedRequest, parsed: Any, metadata: dict[str, Any]) -> ChatResult:
        text, stopped = truncate_at_stop(parsed.text, request.stop)
        finish = "stop" if stopped else parsed.finish_reason
        info = reply_metadata(
            metadata, finish_reason=finish, usage=parsed.usage,
            model_name=parsed.model_name or self._model_name(request.params),
        )
        info["model_provider"] = "amazon_sagemaker"
        message = _messages.ai_message(
            text, tool_calls=parsed.tool_calls, usage=parsed.usage, response_metadata=info,
            reasoning=parsed.reasoning,
        )
        return ChatResult(generations=[ChatGeneration(message=message, generation_info={"finish_reason": finish})])

    # -- streams ------------------------------------------------------------------

    def _chunk(self, piece: StreamPiece) -> ChatGenerationChunk | None:
        reasoning = piece.delta.reasoning
        if not piece.text and not piece.tool_call_chunks and not reasoning:
            return None
        return ChatGenerationChunk(message=_messages.chunk(piece.text, piece.tool_call_chunks, reasoning))

    def _last_chunk(self, request: PreparedRequest, end: StreamEnd) -> ChatGenerationChunk:
        info = reply_metadata(
            end.metadata, finish_reason=end.finish_reason, usage=end.usage,
            model_name=end.model_name or self._model_name(request.params),
        )
        info["model_provider"] = "amazon_sagemaker"
        message = AIMessageChunk(
            content=end.text,
            chunk_position="last",
            usage_metadata=_messages.usage_metadata(end.usage),
            response_metadata=info,
        )
        return ChatGenerationChunk(message=message, generation_info={"finish_reason": end.finish_reason})

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._stream_chunks(self._prepare_chat(messages, stop, kwargs, STREAM), run_manager)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._prepare_chat(messages, stop, kwargs, STREAM)
        async for chunk in self._astream_chunks(request, run_manager):
            yield chunk

    # -- tools and structured output ------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, pydantic models, functions or OpenAI dicts).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"any"``/``"required"`` (must call
        a tool), a tool name, ``True`` (the only tool), or an OpenAI dict.
        """
        if not self.handler.supports_tools:
            raise ConfigurationError(
                f"content handler {self.handler.name!r} cannot carry tools; tool calling needs a "
                "messages container (content_handler='openai': TGI Messages API, LMI chat, vLLM)"
            )
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        choice: Any = tool_choice
        if tool_choice in ("any", "required"):
            choice = "required"
        elif tool_choice is True:
            if len(formatted) != 1:
                raise ConfigurationError("tool_choice=True needs exactly one tool")
            choice = {"type": "function", "function": {"name": formatted[0]["function"]["name"]}}
        elif isinstance(tool_choice, str) and tool_choice not in ("auto", "none"):
            names = [t["function"]["name"] for t in formatted]
            if tool_choice not in names:
                raise ConfigurationError(f"tool_choice={tool_choice!r} is not one of the tools {names}")
            choice = {"type": "function", "function": {"name": tool_choice}}
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Replies parsed into ``schema`` (pydantic model, TypedDict or JSON schema).

        ``function_calling`` forces a tool call; ``json_schema`` sends
        ``response_format={"type": "json_schema", ...}``; ``json_mode`` sends
        ``{"type": "json_object"}`` (describe the format in the prompt).
        """
        if kwargs:
            raise ConfigurationError(f"unexpected arguments: {sorted(kwargs)}")
        is_model = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser: Runnable[Any, Any]
        if method == "function_calling":
            tool = convert_to_openai_tool(schema, strict=strict)
            name = tool["function"]["name"]
            llm = self.bind_tools(
                [tool], tool_choice=name,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": tool},
            )
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_model
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if not self.handler.supports_tools:
                raise ConfigurationError(
                    f"content handler {self.handler.name!r} cannot carry response_format"
                )
            if method == "json_schema":
                json_schema = convert_to_json_schema(schema)
                response_format: dict[str, Any] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": json_schema.get("title", "output"),
                        "schema": json_schema,
                        "strict": True if strict is None else strict,
                    },
                }
            else:
                response_format = {"type": "json_object"}
            llm = self.bind(
                response_format=response_format,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": schema},
            )
            parser = PydanticOutputParser(pydantic_object=schema) if is_model else JsonOutputParser()  # type: ignore[arg-type]
        else:
            raise ConfigurationError(f"unknown structured output method {method!r}")
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")
