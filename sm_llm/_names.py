"""Suggestions for misspelled names, for error messages ("did you mean ...?")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(name: str, known: Iterable[str], *, limit: int = 3) -> str:
    """``" (did you mean max_tokens?)"`` for the known names closest to ``name``, or ``""``.

    Compared case-insensitively, and also without underscores, so ``MaxTokens`` and
    ``custom_attributes`` / ``CustomAttributes`` find each other.
    """
    candidates = list(dict.fromkeys(known))

    def key(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "")

    by_key: dict[str, str] = {}
    for candidate in candidates:
        by_key.setdefault(key(candidate), candidate)
    wanted = key(str(name))
    close = [by_key[wanted]] if wanted in by_key else []
    close += [by_key[k] for k in difflib.get_close_matches(wanted, list(by_key), n=limit, cutoff=0.75)]
    # typos (max_token → max_tokens, tempreature → temperature) are caught above; also try
    # the raw spelling
    close += difflib.get_close_matches(str(name), candidates, n=limit, cutoff=0.75)
    # a longer or shorter form of a known name: stop_sequence → stop, endpoint → endpoint_name
    close += [
        by_key[k] for k in by_key
        if min(len(k), len(wanted)) >= 4 and (k.startswith(wanted) or wanted.startswith(k))
    ]
    close = list(dict.fromkeys(close))[:limit]
    return f" (did you mean {', '.join(close)}?)" if close else ""
