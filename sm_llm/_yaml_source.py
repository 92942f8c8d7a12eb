"""YAML with line numbers: the one home of ``file:line path: message`` reporting, used by
configuration files and by the local endpoint's config (a leaf: it depends on errors alone)."""

from __future__ import annotations

from sm_llm._yaml import load_with_nodes
from sm_llm.errors import ConfigurationError

__all__ = ["Problems", "YamlSource"]


class YamlSource:
    """A YAML document with line numbers for every dotted path."""

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        self.data, self.node = load_with_nodes(text, name)  # aliases, depth, integers bounded

    def line(self, path: tuple[str | int, ...]) -> int | None:
        node = self.node
        line = node.start_mark.line + 1 if node is not None else None
        for key in path:
            if node is None:
                break
            child = None
            if getattr(node, "id", "") == "mapping":
                for key_node, value_node in node.value:
                    if key_node.value == key:
                        child, line = value_node, key_node.start_mark.line + 1
                        break
            elif getattr(node, "id", "") == "sequence" and isinstance(key, int) and key < len(node.value):
                child = node.value[key]
                line = child.start_mark.line + 1
            node = child
        return line


class Problems:
    """Problems found in a configuration, each with its file, line and dotted path;
    :meth:`raise_if_any` reports them all at once."""

    def __init__(self, source: YamlSource | None) -> None:
        self.source = source
        self.items: list[tuple[int, str]] = []

    def add(self, path: tuple[str | int, ...], message: str) -> None:
        dotted = ".".join(str(p) for p in path) or "(top)"
        if self.source is None:  # a mapping given in Python: no file, no lines
            self.items.append((0, f"{dotted}: {message}"))
            return
        line = self.source.line(path)
        self.items.append((line or 0, f"{self.source.name}{f':{line}' if line else ''} {dotted}: {message}"))

    def raise_if_any(self) -> None:
        if len(self.items) == 1:
            raise ConfigurationError(self.items[0][1])
        if self.items:
            count = len(self.items)
            lines = [text for _, text in sorted(self.items, key=lambda item: item[0])]
            raise ConfigurationError(
                f"{count} problem{'s' if count > 1 else ''} in the configuration:\n  "
                + "\n  ".join(lines),
                problems=tuple(lines),
            )
