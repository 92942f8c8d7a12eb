"""JumpStart reference containers: Llama-2 text, Llama-2 chat and text2text (Flan-T5).

None of them streams: on the streaming route their whole JSON reply is sent as
payload parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sm_llm.local._containers import (
    CUSTOM_ATTRIBUTES,
    ContainerError,
    ContainerRequest,
    ContainerResponse,
    json_response,
    parse_custom_attributes,
    parse_json_body,
)
from sm_llm.local._model import chat_prompt, generate

__all__ = ["EULA_MESSAGE", "jumpstart_chat_container", "jumpstart_container", "text2text_container"]

EULA_MESSAGE = (
    "Need to pass custom_attributes='accept_eula=true' as part of header. This means you "
    "have read and accept the end-user-license-agreement (EULA) of the model. EULA can be "
    "found in model card description or from "
    "https://ai.meta.com/resources/models-and-libraries/llama-downloads/."
)


def _error(message: str) -> ContainerError:
    return ContainerError(400, {"code": 400, "type": "BadRequestException", "message": message})


def _parameters(payload: Mapping[str, Any], default_max: int) -> tuple[int, list[str], bool]:
    params = payload.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise _error("'parameters' must be an object")
    max_new = params.get("max_new_tokens", default_max)
    if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1:
        raise _error(f"max_new_tokens must be a positive integer, got {max_new!r}")
    stop = params.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _error("stop must be a list of strings")
    return max_new, stop, params.get("return_full_text") is True


def _check_eula(request: ContainerRequest, required_by_default: bool) -> None:
    required = request.model.require_eula
    if not (required_by_default if required is None else required):
        return
    attributes = parse_custom_attributes(request.headers.get(CUSTOM_ATTRIBUTES, ""))
    if attributes.get("accept_eula", "").lower() != "true":
        raise _error(EULA_MESSAGE)


def jumpstart_container(request: ContainerRequest) -> ContainerResponse:
    """Llama-2 text generation: ``{"inputs": str}`` → ``[{"generation": str}]``."""
    _check_eula(request, required_by_default=False)
    payload = parse_json_body(request.body, _error)
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), str):
        raise _error("'inputs' must be a string")
    inputs: str = payload["inputs"]
    max_new, stop, full_text = _parameters(payload, 64)
    generation = generate(inputs, max_tokens=max_new, stop=stop, greeting=request.model.greeting)
    text = (inputs if full_text else "") + generation.text
    return json_response(200, [{"generation": text}], compact=False)


def _check_dialog(dialog: Any) -> list[Mapping[str, Any]]:
    if not isinstance(dialog, list) or not dialog:
        raise _error("each dialog must be a non-empty list of messages")
    for message in dialog:
        if not isinstance(message, Mapping) or not isinstance(message.get("content"), str):
            raise _error("each message must be an object with 'role' and string 'content'")
    turns = dialog[1:] if dialog[0].get("role") == "system" else dialog
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected:
            raise _error(
                "Model only supports 'system', 'user' and 'assistant' roles, starting with "
                "'system', then 'user' and alternating (u/a/u/a/u...)"
            )
    if not turns or turns[-1].get("role") != "user":
        raise _error("Last message must be from user")
    return dialog


def jumpstart_chat_container(request: ContainerRequest) -> ContainerResponse:
    """Llama-2 chat: ``{"inputs": [[messages]]}`` → ``[{"generation": {role, content}}]``."""
    _check_eula(request, required_by_default=True)
    payload = parse_json_body(request.body, _error)
    dialogs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(dialogs, list) or not dialogs:
        raise _error("'inputs' must be a list of dialogs")
    max_new, stop, _ = _parameters(payload, 64)
    results = []
    for dialog in dialogs:
        prompt, words = chat_prompt(_check_dialog(dialog))
        generation = generate(
            prompt, max_tokens=max_new, stop=stop, greeting=request.model.greeting,
            prompt_tokens=words,
        )
        results.append({"generation": {"role": "assistant", "content": generation.text}})
    return json_response(200, results, compact=False)


def text2text_container(request: ContainerRequest) -> ContainerResponse:
    """Flan-T5: ``{"text_inputs": str | [str], "max_length": n}`` → ``{"generated_texts": [...]}``."""
    payload = parse_json_body(request.body, _error)
    if not isinstance(payload, dict) or "text_inputs" not in payload:
        raise _error("'text_inputs' is required")
    inputs = payload["text_inputs"]
    batch = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(batch, list) or not all(isinstance(s, str) for s in batch):
        raise _error("'text_inputs' must be a string or a list of strings")
    max_length = payload.get("max_length", 20)
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise _error(f"max_length must be a positive integer, got {max_length!r}")
    count = payload.get("num_return_sequences", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        count = 1
    texts = [
        generate(text, max_tokens=max_length, greeting=request.model.greeting).text
        for text in batch
        for _ in range(count)
    ]
    return json_response(200, {"generated_texts": texts}, compact=False)
