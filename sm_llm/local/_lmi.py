"""DJL Serving / LMI reference container (rolling-batch output formatter).

``inputs`` bodies answer ``{"generated_text": ...}`` objects and stream JSON lines;
``messages`` bodies answer OpenAI chat, streamed as bare JSON lines (no ``data:``,
no ``[DONE]``), as LMI does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from sm_llm.local._containers import (
    ContainerError,
    ContainerRequest,
    ContainerResponse,
    Piece,
    json_response,
    parse_json_body,
)
from sm_llm.local._model import Generation, generate, token_id
from sm_llm.local._openai import OPENAI, ChatStyle, ChatValidationError, run_openai

__all__ = ["LMI_CHAT", "lmi_container"]

LMI_CHAT = ChatStyle(sse=False, done=False, content_type="application/jsonlines")
_FINISH = {"length": "length", "eos": "eos_token", "stop_sequence": "stop_sequence"}
_LOG_PROB = -0.1


def _error(message: str) -> ContainerError:
    return ContainerError(400, {"generated_text": None, "error": message, "code": 400})


def _line(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"


def _token(text: str) -> dict[str, Any]:
    return {"id": token_id(text), "text": text, "log_prob": _LOG_PROB}


def _parameters(payload: Mapping[str, Any]) -> tuple[int, list[str], bool]:
    params = payload.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise _error("'parameters' must be an object")
    max_new = params.get("max_new_tokens", 30)
    if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1:
        raise _error(f"max_new_tokens must be a positive integer, got {max_new!r}")
    stop = params.get("stop_sequences") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _error("stop_sequences must be a list of strings")
    return max_new, stop, params.get("details") is True


def _stream(generation: Generation, inputs: str) -> Iterator[Piece]:
    for index, text in enumerate(generation.tokens, start=1):
        line: dict[str, Any] = {"token": _token(text)}
        if index == len(generation.tokens):
            line["generated_text"] = generation.text
            line["details"] = {
                "finish_reason": _FINISH[generation.finish_reason],
                "generated_tokens": generation.completion_tokens,
                "inputs": inputs,
            }
        yield Piece(_line(line))


def lmi_container(request: ContainerRequest) -> ContainerResponse:
    """LMI's ``/invocations`` (rolling batch, default output formatter)."""
    payload = parse_json_body(request.body, _error)
    if isinstance(payload, dict) and "messages" in payload:
        try:
            # On the OpenAI-compatible route LMI streams server-sent events, as its
            # OpenAI frontend does; /invocations streams JSON lines.
            return run_openai(payload, request.model, OPENAI if request.openai_route else LMI_CHAT)
        except ChatValidationError as exc:
            raise _error(str(exc)) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), str):
        raise _error("Input is missing the 'inputs' string field")
    inputs: str = payload["inputs"]
    max_new, stop, details = _parameters(payload)
    generation = generate(inputs, max_tokens=max_new, stop=stop, greeting=request.model.greeting)
    if payload.get("stream") is True:
        return ContainerResponse(200, "application/jsonlines", _stream(generation, inputs))
    result: dict[str, Any] = {"generated_text": generation.text}
    if details:
        result["details"] = {
            "finish_reason": _FINISH[generation.finish_reason],
            "generated_tokens": generation.completion_tokens,
            "inputs": inputs,
            "tokens": [_token(t) for t in generation.tokens],
        }
    return json_response(200, result, compact=False)
