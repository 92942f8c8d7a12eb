"""Hugging Face TGI reference container (``text-generation-inference`` on SageMaker).

``/invocations`` takes a generate body (``inputs``), a Messages API body
(``messages``) or a completions body (``prompt``), like TGI's untagged request enum.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sm_llm.local._containers import (
    ContainerError,
    ContainerRequest,
    ContainerResponse,
    Piece,
    compact_json,
    json_response,
    parse_json_body,
)
from sm_llm.local._model import Generation, generate, token_id
from sm_llm.local._openai import ChatStyle, ChatValidationError, run_openai

__all__ = ["TGI_CHAT", "tgi_container"]

TGI_CHAT = ChatStyle(
    id_prefix="", extra=(("system_fingerprint", "3.3.6-sha-local"),), tgi_chunks=True
)
_FINISH = {"length": "length", "eos": "eos_token", "stop_sequence": "stop_sequence"}
_LOGPROB = -0.1


def _error(message: str, kind: str = "validation", status: int = 422) -> ContainerError:
    return ContainerError(status, {"error": message, "error_type": kind})


def _parameters(payload: Mapping[str, Any]) -> tuple[int, list[str], bool, bool]:
    params = payload.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise _error("Input validation error: `parameters` must be an object")
    max_new = params.get("max_new_tokens", 20)
    if max_new is None:
        max_new = 20
    if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1:
        raise _error("Input validation error: `max_new_tokens` must be strictly positive")
    temperature = params.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or temperature <= 0
    ):
        raise _error("Input validation error: `temperature` must be strictly positive")
    stop = params.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _error("Input validation error: `stop` must be a list of strings")
    return max_new, stop, params.get("details") is True, params.get("return_full_text") is True


def _token(text: str, special: bool = False) -> dict[str, Any]:
    return {"id": token_id(text), "text": text, "logprob": _LOGPROB, "special": special}


def _stream(generation: Generation, prefix: str) -> Iterator[Piece]:
    tokens = [_token(t) for t in generation.tokens]
    if generation.finish_reason == "eos":
        tokens.append(_token("</s>", special=True))
    for index, token in enumerate(tokens, start=1):
        last = index == len(tokens)
        event = {
            "index": index,
            "token": token,
            "generated_text": prefix + generation.text if last else None,
            "details": (
                {
                    "finish_reason": _FINISH[generation.finish_reason],
                    "generated_tokens": generation.completion_tokens,
                    "seed": None,
                    "input_length": generation.prompt_tokens,
                }
                if last
                else None
            ),
        }
        # axum's Event::json_data (axum 0.7, TGI >= 2.1) writes "data: " with a space.
        yield Piece(b"data: " + compact_json(event) + b"\n\n")


def tgi_container(request: ContainerRequest) -> ContainerResponse:
    """TGI's ``sagemaker_compatibility`` route."""
    payload = parse_json_body(request.body, _error)
    if isinstance(payload, dict) and ("messages" in payload or "prompt" in payload):
        try:
            return run_openai(payload, request.model, TGI_CHAT)
        except ChatValidationError as exc:
            raise _error(f"Input validation error: {exc}") from exc
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise _error(
            "Failed to deserialize the JSON body into the target type: "
            "data did not match any variant of untagged enum SagemakerRequest"
        )
    inputs = payload["inputs"]
    if not isinstance(inputs, str):
        raise _error("Failed to deserialize the JSON body into the target type: "
                     "inputs: invalid type, expected a string")
    if not inputs.strip():
        raise _error("Input validation error: `inputs` cannot be empty")
    max_new, stop, details, full_text = _parameters(payload)
    generation = generate(inputs, max_tokens=max_new, stop=stop, greeting=request.model.greeting)
    prefix = inputs if full_text else ""
    if payload.get("stream") is True:
        return ContainerResponse(200, "text/event-stream", _stream(generation, prefix))
    result: dict[str, Any] = {"generated_text": prefix + generation.text}
    if details:
        result["details"] = {
            "finish_reason": _FINISH[generation.finish_reason],
            "generated_tokens": generation.completion_tokens,
            "seed": None,
            "prefill": [],
            "tokens": [_token(t) for t in generation.tokens],
        }
    return json_response(200, [result])
