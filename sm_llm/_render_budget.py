"""The resource budget of one template render: text built, steps taken, time spent.

A template is user data, so a render may not build unbounded text, run unbounded
loops or take unbounded time. :class:`Budget` holds, for one render:

* ``room``: how many more *units* the render may build. A unit is one character
  of text; a container element costs :data:`ELEMENT` units (a reference, plus the
  quotes and commas it prints as). The allowance is :data:`BASE_UNITS` plus
  :data:`INPUT_FACTOR` times the size of the values passed in, so a big prompt
  still renders while a tiny one cannot be blown up. Containers count every
  shared reference, so ``[x, x]`` is twice ``x``: aliasing cannot hide a size;
* ``steps``: loop iterations, calls, filters, operators and output pieces —
  :data:`MAX_STEPS` plus :data:`STEPS_PER_INPUT` per input element;
* a CPU-time deadline, :data:`BASE_SECONDS` plus time proportional to the input.

The sandbox (:mod:`sm_llm._sandbox`) predicts the size of every operation that
can amplify (``*``, ``**``, ``%``, ``~``, ``format``, ``center``, ``join``,
``replace``, ``indent``, ``lipsum``...) and refuses it *before* it runs when the
prediction exceeds ``room``; every string built is then charged. Exceeding any
limit raises :class:`jinja2.exceptions.SecurityError`, turned into a
``ConfigurationError`` by :func:`sm_llm._templating.render`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

__all__ = [
    "BASE_SECONDS",
    "BASE_UNITS",
    "ELEMENT",
    "INPUT_FACTOR",
    "MACRO_STEPS",
    "MAX_INT_BITS",
    "MAX_STEPS",
    "STEPS_PER_INPUT",
    "Budget",
    "budget",
    "current",
    "format_spec_width",
    "measure",
    "printf_size",
    "refuse",
    "text_size",
]

BASE_UNITS = 1 << 20
"""Units (≈ characters) a render may build beyond :data:`INPUT_FACTOR` × its inputs."""
INPUT_FACTOR = 16
"""Each unit (and each element) of input adds this many units (and steps) of allowance."""
ELEMENT = 8
"""Units one container element costs."""
MAX_STEPS = 200_000
"""Steps a render may take: a ``for`` iteration, call, filter, operator or output piece is
one, a macro call :data:`MACRO_STEPS` (about as slow); plus :data:`STEPS_PER_INPUT` per
input element."""
MACRO_STEPS = 20
STEPS_PER_INPUT = 64
BASE_SECONDS = 0.5
"""CPU seconds (of the rendering thread) a render may take, plus one per 20 million input
units. CPU rather than wall-clock time, so a loaded machine or threads waiting for the
GIL cannot fail a render that is not itself slow."""
MAX_INT_BITS = 16_384
"""Largest integer a template may compute (about 4,900 digits; Python prints at most 4,300)."""

_UNITS_PER_SECOND = 20_000_000
_CLOCK_SHIFT = 8  # the clock is a system call: read every 256 steps, never in a short render


def refuse(message: str) -> Any:
    from jinja2.exceptions import SecurityError

    raise SecurityError(message)


class Budget:
    """What is left of one render's allowance (see the module docstring)."""

    __slots__ = ("_started", "deadline", "room", "sizes", "steps")

    def __init__(self) -> None:
        self.room = BASE_UNITS
        self.steps = MAX_STEPS
        self.deadline = BASE_SECONDS  # CPU seconds, from the first clock reading
        self._started = False
        self.sizes: dict[int, tuple[int, int, int, Any]] = {}
        """``id`` → (units, elements, depth, the object): containers already measured.
        Sound because templates cannot mutate containers (immutable sandbox) and a
        namespace, the one mutable value, is never cached nor stored in a container."""

    def admit(self, inputs: Any) -> None:
        """Grow the allowance by :data:`INPUT_FACTOR` times the size of the inputs."""
        units, elements, _ = measure(inputs, 1 << 62, self)
        self.room += INPUT_FACTOR * units
        self.steps += STEPS_PER_INPUT * elements
        self.deadline += units / _UNITS_PER_SECOND

    def step(self, count: int = 1) -> None:
        """Account for ``count`` steps; refuse once the steps or the time run out."""
        before = self.steps
        self.steps -= count
        if self.steps < 0:
            refuse(f"a template took more than its budget of {MAX_STEPS:,} steps")
        if before >> _CLOCK_SHIFT != self.steps >> _CLOCK_SHIFT:
            self._check_clock()

    def _check_clock(self) -> None:
        now = time.thread_time()
        if not self._started:  # the first 256 steps are not timed: they are cheap and bounded
            self._started, self.deadline = True, now + self.deadline
        elif now > self.deadline:
            refuse("a template took too long to render")

    def check(self, units: int, what: str = "value") -> None:
        """Refuse an operation predicted to build more than what is left."""
        if units > self.room:
            refuse(f"a template tried to build an oversized {what} (about {units:,} units)")

    def charge(self, units: int, what: str = "value") -> None:
        """Account for ``units`` just built."""
        self.check(units, what)
        self.room -= units


_CURRENT: ContextVar[Budget | None] = ContextVar("sm_llm_render_budget", default=None)


def current() -> Budget:
    """The budget of the render in progress (templates render only inside :func:`budget`)."""
    active = _CURRENT.get()
    if active is None:
        return refuse("templates render only through sm_llm._templating.render")  # type: ignore[no-any-return]
    return active


@contextmanager
def budget(inputs: Any) -> Iterator[Budget]:
    """Open a render's budget, sized by the values passed in."""
    active = Budget()
    active.admit(inputs)
    token = _CURRENT.set(active)
    try:
        yield active
    finally:
        _CURRENT.reset(token)


def _namespace_attrs(value: Any) -> dict[str, Any]:
    return object.__getattribute__(value, "_Namespace__attrs")  # type: ignore[no-any-return]


def measure(value: Any, cap: int, active: Budget) -> tuple[int, int, int]:
    """``(units, elements, depth)`` of ``value``, counting shared references every time.

    Refuses a value of more than ``cap`` units. Each container walked costs a step;
    containers are measured once per render (``active.sizes``). A ``Namespace`` may
    only be the value itself: one stored inside another value (which it could later
    grow behind that value's back) is refused.
    """
    if isinstance(value, str):
        return len(value), 1, 0
    units, elements, depth = _walk(value, 0, cap, active)
    return units, elements, depth


@cache
def _namespace_class() -> type:
    from jinja2.utils import Namespace

    return Namespace


_SCALAR_UNITS = {bool: 5, type(None): 5, float: 24}
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))


def _walk(item: Any, level: int, cap: int, active: Budget) -> tuple[int, int, int]:
    kind = type(item)
    if kind is str or kind is bytes:
        return len(item), 1, 0
    units = _SCALAR_UNITS.get(kind)
    if units is not None:
        return units, 1, 0
    if kind is int:
        return item.bit_length() // 3 + 2, 1, 0
    cached = active.sizes.get(id(item))
    if cached is not None:
        return cached[0], cached[1], cached[2]
    children: Any
    if kind is dict or (kind is not list and isinstance(item, Mapping)):
        children = [part for pair in item.items() for part in pair]
    elif kind is list or isinstance(item, (list, tuple, set, frozenset)):
        children = item
    elif isinstance(item, (str, bytes, bytearray)):
        return len(item), 1, 0
    elif isinstance(item, _VIEWS):
        return _walk(item.mapping, level, cap, active)  # type: ignore[attr-defined]  # a view prints its dict
    elif isinstance(item, _namespace_class()):
        if level:
            refuse("a namespace cannot be stored inside another value")
        return _walk(_namespace_attrs(item), 0, cap, active)
    elif isinstance(item, (int, float)):
        return 24, 1, 0
    else:  # undefined, macros, loops, generators, ranges: short reprs
        return 64, 1, 0
    active.step()
    units, elements, depth = ELEMENT * (len(item) + 1), 1, 0
    for child in children:
        size, count, deep = _walk(child, level + 1, cap, active)
        units += size
        elements += count
        if deep >= depth:
            depth = deep + 1
        if units > cap:
            refuse(f"a template tried to build an oversized value (over {cap:,} units)")
    active.sizes[id(item)] = (units, elements, depth, item)
    return units, elements, depth


def text_size(value: Any, active: Budget) -> int:
    """Upper estimate of ``len(str(value))`` (reprs escape up to 10 units per character)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, float):
        return 320  # '%f' % 1e308
    units, _, _ = measure(value, active.room, active)
    return 10 * units + 64


_PRINTF_FLAGS = "-#0 +"


def _digits(text: str, start: int) -> tuple[int, int]:
    end = start
    while end < len(text) and text[end].isdigit():
        end += 1
    if end - start > 9:
        refuse("a format width or precision is too large")
    return (int(text[start:end]) if end > start else 0), end


def printf_size(fmt: str, args: Any, active: Budget) -> int:
    """Upper estimate of ``len(fmt % args)``, parsed as Python does; ``*`` widths refused."""
    total, index, position = len(fmt), 0, 0
    mapping = args if isinstance(args, Mapping) else None
    values = args if isinstance(args, tuple) else (args,)
    while (position := fmt.find("%", position)) >= 0:
        position += 1
        key = None
        if fmt.startswith("(", position):
            depth, end = 1, position + 1
            while end < len(fmt) and depth:
                depth += {"(": 1, ")": -1}.get(fmt[end], 0)
                end += 1
            key, position = fmt[position + 1 : end - 1], end
        while position < len(fmt) and fmt[position] in _PRINTF_FLAGS:
            position += 1
        if fmt.startswith("*", position) or fmt.startswith(".*", position):
            refuse("'*' widths are not allowed in template formatting")
        width, position = _digits(fmt, position)
        precision = 0
        if fmt.startswith(".", position):
            precision, position = _digits(fmt, position + 1)
        while position < len(fmt) and fmt[position] in "hlL":
            position += 1
        conversion = fmt[position : position + 1]
        position += 1
        total += max(width, precision)
        if conversion == "%" or not conversion:
            continue
        if key is not None and mapping is not None:
            value = mapping.get(key, "")
        elif index < len(values):
            value, index = values[index], index + 1
        else:
            value = ""
        total += text_size(value, active)
        if total > active.room:
            break
    return total


_SPEC_NUMBER = re.compile(r"\d+")


def format_spec_width(spec: str) -> int:
    """The largest width or precision in a ``str.format`` spec (``>400000000`` → 400000000)."""
    numbers = _SPEC_NUMBER.findall(spec)
    if any(len(number) > 9 for number in numbers):
        refuse("a format width or precision is too large")
    return max(map(int, numbers), default=0)
