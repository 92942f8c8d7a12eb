"""Pickling and deep copies of pydantic models that cache runtime state.

``functools.cached_property`` values (compiled templates, expression getters) live in
the instance ``__dict__``; they are process-local and often unpicklable (compiled Jinja
templates, closures), so they are dropped from the state and recomputed on first use.
"""

from __future__ import annotations

import copy
from functools import cache, cached_property
from typing import Any, TypeVar

__all__ = ["cached_names", "deepcopy_state", "without_cached"]

M = TypeVar("M")


@cache
def cached_names(cls: type) -> frozenset[str]:
    """The ``cached_property`` names of ``cls`` and its bases."""
    return frozenset(
        name for klass in cls.__mro__ for name, value in vars(klass).items() if isinstance(value, cached_property)
    )


def without_cached(state: dict[str, Any], cls: type) -> dict[str, Any]:
    """A pydantic ``__getstate__`` mapping without the cached properties of ``cls``."""
    names = cached_names(cls)
    fields = state.get("__dict__")
    if names and fields and names & fields.keys():
        state = {**state, "__dict__": {k: v for k, v in fields.items() if k not in names}}
    return state


def deepcopy_state(model: M, memo: dict[int, Any] | None) -> M:
    """A deep copy through ``__getstate__`` / ``__setstate__``: what pickling drops and
    recreates, a deep copy drops and recreates too."""
    cls = type(model)
    copied = cls.__new__(cls)
    memo = {} if memo is None else memo
    memo[id(model)] = copied
    copied.__setstate__(copy.deepcopy(model.__getstate__(), memo))  # type: ignore[attr-defined]
    return copied
