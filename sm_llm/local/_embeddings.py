"""Embedding reference containers: TEI, OpenAI/vLLM embeddings and JumpStart text embedding.

They share one deterministic model: a text's vector is derived from the SHA-256 of
its UTF-8 bytes (each byte mapped onto [-1, 1]), L2-normalised, so equal texts get
equal vectors and different texts (almost surely) different ones. Wire shapes:

* ``tei`` — ``{"inputs": str | [str], "normalize"?, "truncate"?, "dimensions"?}`` →
  ``[[floats], ...]``; more than 32 inputs (TEI's default ``--max-client-batch-size``)
  is a 422, an empty batch a 400, as TEI answers them.
* ``openai-embeddings`` — vLLM's ``{"input": str | [str], "model"?, "encoding_format"?,
  "dimensions"?}`` → ``{"object": "list", "data": [{"index", "object", "embedding"}],
  "model", "usage"}``; ``encoding_format="base64"`` sends little-endian float32 bytes.
* ``jumpstart-embeddings`` — ``{"text_inputs": str | [str]}`` →
  ``{"embedding": [[floats], ...]}`` (a single string gets a single flat vector).

Bad bodies raise :class:`ContainerError`, which the endpoint answers as a 424 ``ModelError``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

from sm_llm.local._containers import (
    ContainerError,
    ContainerRequest,
    ContainerResponse,
    json_response,
    parse_json_body,
)
from sm_llm.local._model import count_words

__all__ = [
    "DIMENSION",
    "TEI_MAX_BATCH",
    "embed_text",
    "jumpstart_embeddings_container",
    "openai_embeddings_container",
    "tei_container",
]

DIMENSION = 16
"""Length of every vector the reference model produces."""
TEI_MAX_BATCH = 32
"""TEI's default ``--max-client-batch-size``."""


def embed_text(text: str, *, dimensions: int | None = None, normalize: bool = True) -> list[float]:
    """The reference model: SHA-256 bytes → floats in [-1, 1], truncated to ``dimensions``
    (Matryoshka style), then L2-normalised unless ``normalize`` is false."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    vector = [byte / 127.5 - 1.0 for byte in digest[: dimensions or DIMENSION]]
    if not normalize:
        return vector
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _texts(value: Any, name: str, error: Callable[[str], ContainerError]) -> tuple[list[str], bool]:
    """``value`` as a list of texts, and whether it was a single string."""
    if isinstance(value, str):
        return [value], True
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise error(f"`{name}` must be a string or a list of strings")
    return value, False


def _dimensions(value: Any, error: Callable[[str], ContainerError]) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= DIMENSION:
        raise error(f"`dimensions` must be an integer from 1 to {DIMENSION}, got {value!r}")
    return value


# -- TEI -------------------------------------------------------------------------------


def _tei_error(message: str, kind: str = "validation", status: int = 422) -> ContainerError:
    return ContainerError(status, {"error": message, "error_type": kind})


def tei_container(request: ContainerRequest) -> ContainerResponse:
    """TEI's ``/invocations`` on an embedding model (the ``embed`` route)."""
    payload = parse_json_body(request.body, _tei_error)
    if not isinstance(payload, Mapping) or "inputs" not in payload:
        raise _tei_error(
            "Failed to deserialize the JSON body into the target type: missing field `inputs`"
        )
    texts, _ = _texts(payload["inputs"], "inputs", _tei_error)
    if not texts:
        raise _tei_error("`inputs` cannot be empty", kind="empty", status=400)
    if len(texts) > TEI_MAX_BATCH:
        raise _tei_error(f"batch size {len(texts)} > maximum allowed batch size {TEI_MAX_BATCH}")
    normalize = payload.get("normalize", True)
    if not isinstance(normalize, bool):
        raise _tei_error("`normalize` must be a boolean")
    truncate = payload.get("truncate")
    if truncate is not None and not isinstance(truncate, bool):
        raise _tei_error("`truncate` must be a boolean")
    dimensions = _dimensions(payload.get("dimensions"), _tei_error)
    vectors = [embed_text(t, dimensions=dimensions, normalize=normalize) for t in texts]
    return json_response(200, vectors)


# -- OpenAI / vLLM ---------------------------------------------------------------------


def _openai_error(message: str) -> ContainerError:
    return ContainerError(
        400, {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}
    )


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def openai_embeddings_container(request: ContainerRequest) -> ContainerResponse:
    """vLLM's embeddings API (``EmbeddingCompletionRequest``), as served on ``/invocations``."""
    payload = parse_json_body(request.body, _openai_error)
    if not isinstance(payload, Mapping) or "input" not in payload:
        raise _openai_error("Field required: input")
    texts, _ = _texts(payload["input"], "input", _openai_error)
    if not texts:
        raise _openai_error("`input` must not be empty")
    encoding = payload.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise _openai_error(f"`encoding_format` must be 'float' or 'base64', got {encoding!r}")
    dimensions = _dimensions(payload.get("dimensions"), _openai_error)
    model = payload.get("model")
    if model is not None and not isinstance(model, str):
        raise _openai_error("`model` must be a string")
    tokens = sum(max(count_words(t), 1) for t in texts)
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
    reply = {
        "id": f"embd-{digest[:32]}",
        "object": "list",
        "created": 0,
        "model": model or request.model.model_id,
        "data": [
            {
                "index": index,
                "object": "embedding",
                "embedding": _encode(embed_text(text, dimensions=dimensions), encoding),
            }
            for index, text in enumerate(texts)
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
    }
    return json_response(200, reply)


# -- JumpStart ---------------------------------------------------------------------------


def _jumpstart_error(message: str) -> ContainerError:
    return ContainerError(400, {"code": 400, "type": "BadRequestException", "message": message})


def jumpstart_embeddings_container(request: ContainerRequest) -> ContainerResponse:
    """JumpStart text embedding (``huggingface-textembedding-*``)."""
    payload = parse_json_body(request.body, _jumpstart_error)
    if not isinstance(payload, Mapping) or "text_inputs" not in payload:
        raise _jumpstart_error("'text_inputs' is required")
    texts, single = _texts(payload["text_inputs"], "text_inputs", _jumpstart_error)
    if not texts:
        raise _jumpstart_error("'text_inputs' must not be empty")
    vectors = [embed_text(text) for text in texts]
    return json_response(200, {"embedding": vectors[0] if single else vectors}, compact=False)
