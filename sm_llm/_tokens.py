"""Token counting with the model's own tokenizer — or a clear error, never GPT-2's guess.

langchain-core's ``get_num_tokens`` falls back to GPT-2 through ``transformers``: a count
for another model (and an ``ImportError`` without transformers). Here the ids come from
``custom_get_token_ids`` when given, else from the ``tokenizer.json`` next to a
``tokenizer_config.json`` chat template (read with the ``tokenizers`` package).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sm_llm.errors import ConfigurationError

__all__ = ["token_ids"]


def _load(path: str) -> Any:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the tokenizer {path}: {exc}") from exc
    return _tokenizer(path, (info.st_mtime_ns, info.st_size))  # a changed file is read again


@lru_cache(maxsize=8)
def _tokenizer(path: str, stamp: tuple[int, int]) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigurationError(
            f"counting tokens with {path} needs the tokenizers package: "
            "pip install 'sm-llm[tokenizers]'"
        ) from None
    try:
        return Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises a bare Exception for a bad file
        raise ConfigurationError(f"cannot load the tokenizer {path}: {exc}") from exc


def token_ids(
    text: str, *, custom: Callable[[str], list[int]] | None, tokenizer: str | None, owner: str
) -> list[int]:
    """``text``'s token ids: ``custom`` if given, else the ``tokenizer`` file's encoding
    (no special tokens added). Without either, a :class:`ConfigurationError` saying how to
    give one — ``owner`` names the adapter class in it."""
    if custom is not None:
        return custom(text)
    if tokenizer is None:
        raise ConfigurationError(
            f"{owner} cannot count tokens: the model's tokenizer is unknown. Pass "
            "custom_get_token_ids=<function returning token ids>"
            + (", or chat_template='path/to/tokenizer_config.json' with its tokenizer.json "
               "beside it (pip install 'sm-llm[tokenizers]')" if owner == "ChatSageMaker" else "")
            + ". sm_llm does not fall back to GPT-2's tokenizer: its count would be for another model."
        )
    return list(_load(tokenizer).encode(text, add_special_tokens=False).ids)
