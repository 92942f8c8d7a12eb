"""YAML for configuration files, handler files and sidecars: safe, bounded, located errors.

``yaml.safe_load`` builds no objects, but it still trusts the shape of a file:
aliases share one node, so nine levels of nine aliases ("billion laughs") are a
few hundred bytes that expand to 9⁹ values in anything that walks them (the
``${VAR}`` walk, a request template); a few thousand nested ``[`` exhaust the
recursion limit; a 5,000-digit integer exceeds Python's conversion limit. Here:

* aliases may add at most :data:`MAX_ALIAS_NODES` nodes in all (each use counts
  the whole subtree it stands for, its own aliases included);
* collections nest at most :data:`MAX_DEPTH` deep;
* integers have at most :data:`MAX_INT_DIGITS` digits;

and every failure is a ``ConfigurationError`` naming ``file:line``.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from sm_llm.errors import ConfigurationError

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_INT_DIGITS", "load", "load_with_nodes"]

MAX_ALIAS_NODES = 10_000
"""Nodes aliases may add to a document, counted through nested aliases."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences."""
MAX_INT_DIGITS = 4_300
"""Longest integer (Python's own default limit for converting text to ``int``)."""


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that bounds alias expansion, nesting and integers."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0  # nodes composed so far, each alias counting its whole subtree
        self._aliased = 0  # of which aliases added
        self._sizes: dict[int, int] = {}  # id(node) → its size, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node), 1)
            self._nodes += size
            self._aliased += size
            if self._aliased > MAX_ALIAS_NODES:
                raise ComposerError(
                    None, None, f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes", mark
                )
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ComposerError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark  # type: ignore[no-untyped-call]
            )
        before = self._nodes
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._nodes += 1
        self._sizes[id(node)] = self._nodes - before
        return node

    def construct_yaml_int(self, node: Any) -> int:
        digits = sum(c.isalnum() for c in str(node.value))  # any base, prefix included
        if digits > MAX_INT_DIGITS:
            raise ConstructorError(
                None, None, f"an integer of {digits:,} digits (at most {MAX_INT_DIGITS:,})", node.start_mark
            )
        try:
            return super().construct_yaml_int(node)
        except ValueError as exc:
            raise ConstructorError(None, None, f"not a valid integer: {exc}", node.start_mark) from exc


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _error(exc: yaml.YAMLError, source: str, text: str) -> ConfigurationError:
    if isinstance(exc, yaml.reader.ReaderError):  # no mark: its str() spans two lines
        line = text.count("\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return ConfigurationError(
            f"{source}:{line}: not valid YAML: unacceptable character #x{character:04x}: {exc.reason}"
        )
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigurationError(f"{where}: not valid YAML: {problem}")


def load_with_nodes(text: str, source: str) -> tuple[Any, Any]:
    """The document's data and its node tree (for line numbers); ``(None, None)`` if empty."""
    try:
        loader = _Loader(text)  # the reader checks the characters here
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _error(exc, source, text) from exc
    except RecursionError as exc:  # pragma: no cover - MAX_DEPTH keeps well below the limit
        raise ConfigurationError(f"{source}: not valid YAML: nested too deeply") from exc
    return data, node


def load(text: str, source: str) -> Any:
    """The document's data; a ``ConfigurationError`` naming ``source:line`` otherwise."""
    return load_with_nodes(text, source)[0]
