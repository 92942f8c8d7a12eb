"""Adapter classes by ``kind`` (``llm``, ``chat``, ``embeddings``), filled by the adapter
modules as they are defined, so that configuration finds them without importing them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sm_llm.errors import ConfigurationError

__all__ = ["KINDS", "adapter_class", "kind_of", "register"]

KINDS = ("llm", "chat", "embeddings")

C = TypeVar("C", bound=type)

_CLASSES: dict[str, type] = {}


def register(kind: str) -> Callable[[C], C]:
    """Class decorator: ``cls`` is the adapter of ``kind``."""

    def add(cls: C) -> C:
        if kind not in KINDS:
            raise ValueError(f"unknown adapter kind {kind!r}")
        _CLASSES[kind] = cls
        return cls

    return add


def adapter_class(kind: str) -> Any:
    """The adapter class registered for ``kind``."""
    try:
        return _CLASSES[kind]
    except KeyError:
        raise ConfigurationError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})") from None


def kind_of(adapter: Any) -> str:
    """The ``kind`` of an adapter instance (``llm`` for anything unregistered)."""
    for kind, cls in _CLASSES.items():
        if type(adapter) is cls:
            return kind
    for kind, cls in _CLASSES.items():
        if isinstance(adapter, cls):
            return kind
    return "llm"
