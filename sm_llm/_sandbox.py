"""The Jinja sandbox templates render in, with a bounded render (:mod:`sm_llm._render_budget`).

``ImmutableSandboxedEnvironment`` keeps templates away from Python internals and
from mutating what is passed in; it does not bound what a render builds or how
long it runs. :func:`sandbox_class` adds that, at every place a template can
build a value or spend time:

* every operator (``+ - * / // % **``) is intercepted: ``*``, ``+``, ``%`` and
  ``**`` are sized before they run (``'a' * n``, ``"%0400000000d" % x``, a chain
  of ``** 64``), and strings they build are charged;
* ``~`` and list, tuple and dict displays are compiled into calls that size and
  charge what they build (so ``[x, x]`` chains cannot alias their way past a check);
* every call (methods, globals, macros, ``loop(...)``) and every filter costs a
  step; the ones whose output a number or a product controls (``center``,
  ``ljust``, ``zfill``, ``expandtabs``, ``replace``, ``join``, ``split``,
  ``translate``, ``format``, ``indent``, ``wordwrap``, ``tojson``, ``pprint``,
  ``batch``, ``slice``, ``lipsum``...) are sized before they run, the rest
  against a multiple of their input; results are charged;
* every ``for`` iteration costs a step, and so does every output piece —
  literal template text too — which is charged as it is produced, inside macros
  and ``{% set %}`` blocks as well, so no buffer grows past the budget;
* ``str.format`` fields are sized (width, precision, value) as they are formatted;
* a ``namespace`` attribute is sized when set, and a namespace cannot be stored
  inside another value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from sm_llm._render_budget import (
    ELEMENT,
    MACRO_STEPS,
    MAX_INT_BITS,
    Budget,
    current,
    format_spec_width,
    measure,
    printf_size,
    refuse,
    text_size,
)

__all__ = ["namespace_class", "sandbox_class"]

# Filters that return (part of) their input or a number: a step each, nothing to size.
_CHEAP_FILTERS = frozenset(
    ["abs", "attr", "count", "d", "default", "first", "last", "length", "float", "int", "round", "random", "min", "max", "items", "filesizeformat", "wordcount", "select", "reject", "selectattr", "rejectattr", "map", "unique", "reverse", "dictsort"]
)
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _items(iterable: Any, active: Budget) -> list[Any]:
    """An iterable as a list, a step per item (``join`` needs its items to size them)."""
    if isinstance(iterable, (list, tuple)):
        return list(iterable)
    items = []
    for item in iterable:
        active.step()
        items.append(item)
    return items


def _join_size(separator: str, items: list[Any], active: Budget) -> int:
    total = len(separator) * len(items)
    for item in items:
        total += text_size(item, active)
        if total > active.room:
            break
    return total


def _str_method_size(owner: str, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], active: Budget) -> int:
    """Upper estimate of what ``owner.<name>(*args, **kwargs)`` builds."""
    size = len(owner)
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(size, _int(_arg(args, kwargs, 0, "width", 0)))
    if name == "expandtabs":
        return size + owner.count("\t") * max(_int(_arg(args, kwargs, 0, "tabsize", 8)), 0)
    if name == "replace":
        old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
        if not isinstance(old, str) or not isinstance(new, str):
            return size
        hits = size + 1 if not old else owner.count(old)
        count = _int(_arg(args, kwargs, 2, "count", -1))
        return size + (min(hits, count) if count >= 0 else hits) * len(new)
    if name in ("split", "rsplit", "splitlines"):
        separator = None if name == "splitlines" else _arg(args, kwargs, 0, "sep", None)
        if isinstance(separator, str) and separator:
            pieces = owner.count(separator) + 1
        elif name == "splitlines":
            pieces = sum(owner.count(c) for c in _LINE_BREAKS) + 1
        else:
            pieces = size // 2 + 1
        return size + 64 * pieces
    if name == "translate":
        table = _arg(args, kwargs, 0, "table", None)
        grow = max((len(v) for v in table.values() if isinstance(v, str)), default=1) if isinstance(table, Mapping) else 1
        return size * max(grow, 1)
    if name == "encode":
        return 4 * size
    return 3 * size  # upper(), title()... grow at most 3×


def _filter_size(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], active: Budget) -> tuple[int, tuple[Any, ...]]:
    """Upper estimate of what filter ``name`` builds from ``args`` (value first), and the args
    to call it with (``join`` gets its items as a list, sized)."""
    value, rest = args[0], args[1:]
    if name == "center":
        return max(text_size(value, active), _int(_arg(rest, kwargs, 0, "width", 80))), args
    if name == "indent":
        width = _arg(rest, kwargs, 0, "width", 4)
        prefix = len(width) if isinstance(width, str) else _int(width)
        text = str(value) if isinstance(value, str) else ""
        lines = sum(text.count(c) for c in _LINE_BREAKS) + 1
        return text_size(value, active) + lines * prefix, args
    if name == "wordwrap":
        wrap = _arg(rest, kwargs, 3, "wrapstring", None)
        size = text_size(value, active)
        return 32 * size + (size + 1) * (len(wrap) if isinstance(wrap, str) else 1), args
    if name == "replace":
        return _str_method_size(str(value) if isinstance(value, str) else "", "replace", rest, {}, active) + text_size(
            value, active
        ), args
    if name == "join":
        items = _items(value, active)
        separator = _arg(rest, kwargs, 0, "d", "")
        return _join_size(separator if isinstance(separator, str) else "", items, active), (items, *rest)
    if name == "format":
        return printf_size(str(value), kwargs or rest, active), args
    if name in ("tojson", "pprint"):
        units, elements, depth = measure(value, active.room, active)
        indent = _int(_arg(rest, kwargs, 1 if name == "tojson" and "ensure_ascii" in kwargs else 0, "indent", 0))
        separators = kwargs.get("separators") or ()
        extra = sum(len(s) for s in separators if isinstance(s, str))
        return 6 * units + elements * (depth * max(indent, 1) + extra + 8), args
    if name in ("batch", "slice"):
        return text_size(value, active) + ELEMENT * _int(_arg(rest, kwargs, 0, name, 0)), args
    if name == "list" and isinstance(value, str):
        return 80 * len(value), args
    return (6 * len(value) if isinstance(value, str) else text_size(value, active)), args


def _account(result: Any, active: Budget) -> Any:
    """Charge what an operation built: a string's length, a new container's references."""
    if isinstance(result, str):
        active.charge(len(result))
    elif isinstance(result, (list, tuple, dict, set, frozenset)) and id(result) not in active.sizes:
        measure(result, active.room, active)
        active.charge(ELEMENT * len(result))
    else:
        from jinja2.utils import Namespace

        if isinstance(result, Namespace):
            measure(result, active.room, active)
    return result


@lru_cache(maxsize=1)
def namespace_class() -> Any:
    """The ``namespace`` of templates: an attribute is sized when set; no namespace inside one."""
    from jinja2.exceptions import SecurityError
    from jinja2.utils import Namespace

    class SizedNamespace(Namespace):
        def __setitem__(self, name: str, value: Any) -> None:
            active = current()
            active.step()
            if isinstance(value, Namespace):
                raise SecurityError("a namespace cannot be stored inside another value")
            measure(value, active.room, active)
            Namespace.__setitem__(self, name, value)

    return SizedNamespace


class _Counted:
    """An iterable whose iteration costs a step per item; ``len()`` is passed through."""

    __slots__ = ("_items",)

    def __init__(self, items: Any) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        active = current()
        for item in self._items:
            active.step()
            yield item


def _internal(function: Callable[..., Any]) -> Callable[..., Any]:
    function._sm_internal = True  # type: ignore[attr-defined]
    return function


@_internal
def _iterate(items: Any) -> _Counted:
    return _Counted(items)


def _build(value: Any) -> Any:
    active = current()
    active.step()
    measure(value, active.room, active)
    active.charge(ELEMENT * len(value))
    return value


@_internal
def _list(*items: Any) -> list[Any]:
    return _build(list(items))  # type: ignore[no-any-return]


@_internal
def _tuple(*items: Any) -> tuple[Any, ...]:
    return _build(items)  # type: ignore[no-any-return]


@_internal
def _dict(*pairs: Any) -> dict[Any, Any]:
    return _build(dict(zip(pairs[::2], pairs[1::2], strict=True)))  # type: ignore[no-any-return]


def _concat_function() -> Callable[..., str]:
    from jinja2.runtime import markup_join, str_join
    from jinja2.utils import pass_context

    @pass_context
    def concat(context: Any, *parts: Any) -> str:
        active = current()
        active.step()
        active.check(sum(text_size(part, active) for part in parts), "string")
        joined = markup_join(parts) if context.eval_ctx.autoescape else str_join(parts)
        return _account(joined, active)  # type: ignore[no-any-return]

    return _internal(concat)


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    from jinja2.utils import _PassArg

    skip = 1 if _PassArg.from_obj(function) is not None else 0
    cheap = name in _CHEAP_FILTERS

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        active = current()
        active.step()
        if cheap or len(args) <= skip:
            return function(*args, **kwargs)
        size, checked = _filter_size(name, args[skip:], kwargs, active)
        active.check(size, f"result of the {name} filter")
        return _account(function(*args[:skip], *checked, **kwargs), active)

    guarded._sm_guarded = True  # type: ignore[attr-defined]
    return guarded


def _binop_size(operator: str, left: Any, right: Any, active: Budget) -> int:
    """Upper estimate of the units ``left <operator> right`` builds (0: a small number)."""
    sequences = (str, list, tuple)
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if left.bit_length() * right > MAX_INT_BITS:
            refuse("a template tried to compute an oversized number")
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            refuse("a template tried to compute an oversized number")
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, sequences) and isinstance(count, int):
                units = measure(sequence, active.room, active)[0]
                return max(count, 0) * (units + (0 if isinstance(sequence, str) else ELEMENT))
    elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
        return measure(left, active.room, active)[0] + measure(right, active.room, active)[0]
    elif operator == "%" and isinstance(left, str):
        return printf_size(left, right, active) * (6 if hasattr(left, "__html__") else 1)
    return 0


@lru_cache(maxsize=1)
def sandbox_class() -> Any:
    """``ImmutableSandboxedEnvironment`` with a bounded render (see the module docstring)."""
    from string import Formatter

    from jinja2 import nodes
    from jinja2.compiler import CodeGenerator, Frame
    from jinja2.exceptions import SecurityError
    from jinja2.runtime import LoopContext, Macro
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
    from jinja2.utils import generate_lorem_ipsum
    from jinja2.visitor import NodeTransformer
    from markupsafe import EscapeFormatter, Markup

    class Generator(CodeGenerator):
        def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
            raise nodes.Impossible()  # every output piece goes through finalize, literal text too

    def internal(name: str, node: nodes.Node, *args: nodes.Expr) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(name), list(args), [], None, None)
        call.set_lineno(node.lineno)
        return call

    def literal(node: nodes.Node) -> bool:
        if isinstance(node, nodes.Const):
            return True
        if isinstance(node, (nodes.List, nodes.Tuple)):
            return all(literal(item) for item in node.items)
        if isinstance(node, nodes.Dict):
            return all(literal(pair.key) and literal(pair.value) for pair in node.items)
        return False

    class Guard(NodeTransformer):
        """Route ``for`` iterables, ``~`` and displays through the sized builders."""

        def visit_For(self, node: nodes.For) -> nodes.Node:
            self.generic_visit(node)
            node.iter = internal("sm_iterate", node, node.iter)  # type: ignore[arg-type]
            return node

        def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
            self.generic_visit(node)
            return internal("sm_concat", node, *node.nodes)

        def visit_List(self, node: nodes.List) -> nodes.Node:
            self.generic_visit(node)
            return node if literal(node) else internal("sm_list", node, *node.items)

        def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
            self.generic_visit(node)
            if node.ctx != "load" or literal(node):
                return node
            return internal("sm_tuple", node, *node.items)

        def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
            self.generic_visit(node)
            if literal(node):
                return node
            parts: list[nodes.Expr] = [part for pair in node.items for part in (pair.key, pair.value)]
            return internal("sm_dict", node, *parts)

    class SizedFormatter(SandboxedFormatter):
        """``str.format``: every field sized (width, precision, value) before it is built."""

        def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
            self._active = current()
            self._units = len(format_string)
            return super().vformat(format_string, args, kwargs)

        def _grow(self, units: int) -> None:
            self._units += units
            self._active.check(self._units, "formatted string")

        def convert_field(self, value: Any, conversion: str | None) -> Any:
            if conversion is not None:
                self._grow(text_size(value, self._active))
            return super().convert_field(value, conversion)

        def format_field(self, value: Any, format_spec: str) -> Any:
            self._grow(format_spec_width(format_spec) + text_size(value, self._active))
            return super().format_field(value, format_spec)

    class SizedEscapeFormatter(SizedFormatter, EscapeFormatter):
        pass

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
        code_generator_class = Generator

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.finalize = self._finalize
            self.globals["namespace"] = namespace_class()
            self.sm_iterate = _iterate
            self.sm_concat = _concat_function()
            self.sm_list, self.sm_tuple, self.sm_dict = _list, _tuple, _dict

        @staticmethod
        def _finalize(value: Any) -> Any:
            active = current()
            active.step()
            active.charge(text_size(value, active), "output")
            return value

        def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
            for filter_name, function in list(self.filters.items()):
                if not getattr(function, "_sm_guarded", False):
                    self.filters[filter_name] = _guard_filter(filter_name, function)
            tree = Guard().visit(super()._parse(source, name, filename))
            tree.set_environment(self)
            return tree  # type: ignore[no-any-return]

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            active = current()
            active.step()
            if operator == "+" and type(left) is str and type(right) is str:  # the usual case, fast
                active.charge(len(left) + len(right), "string")
                return left + right
            active.check(_binop_size(operator, left, right, active), "value")
            result = super().call_binop(context, operator, left, right)
            return _account(result, active) if operator in ("+", "*", "%") else result

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(__obj, "_sm_internal", False):
                return __context.call(__obj, *args)
            active = current()
            active.step()
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, str):
                name = getattr(__obj, "__name__", "")
                if name == "join" and args:
                    args = (_items(args[0], active), *args[1:])
                    size = _join_size(owner, args[0], active)
                else:
                    size = _str_method_size(owner, name, args, kwargs, active)
                active.check(size * (6 if isinstance(owner, Markup) else 1), f"result of str.{name}")
            elif __obj is generate_lorem_ipsum:
                count = _int(_arg(args, kwargs, 0, "n", 5))
                longest = _int(_arg(args, kwargs, 3, "max", 100))
                active.check(count * (longest * 16 + 16), "lipsum text")
            elif isinstance(__obj, Macro):
                active.step(MACRO_STEPS)
            elif isinstance(__obj, LoopContext) and args:
                args = (_Counted(args[0]), *args[1:])
            if not __self.is_safe_callable(__obj):
                raise SecurityError(f"{__obj!r} is not safely callable")
            return _account(__context.call(__obj, *args, **kwargs), active)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            """``str.format`` / ``format_map`` through :class:`SizedFormatter`."""
            if not callable(value) or getattr(value, "__name__", None) not in ("format", "format_map"):
                return None
            owner = getattr(value, "__self__", None)
            if not isinstance(owner, str):
                return None
            formatter: Formatter
            if isinstance(owner, Markup):
                formatter = SizedEscapeFormatter(self, escape=owner.escape)
            else:
                formatter = SizedFormatter(self)
            is_map = value.__name__ == "format_map"

            def wrapper(*args: Any, **kwargs: Any) -> str:
                if is_map:
                    if kwargs or len(args) != 1:
                        raise TypeError("format_map() takes exactly one argument")
                    kwargs, args = args[0], ()
                return type(owner)(formatter.vformat(owner, args, kwargs))

            return functools.update_wrapper(wrapper, value)

    return Sandbox
