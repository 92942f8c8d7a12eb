"""Literal stop sequences: whole text and across every chunking of a stream."""

from __future__ import annotations

import itertools

import pytest

from sm_llm._stop import StopScanner, truncate_at_stop


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [
        ("Hello. World.", ["."], ("Hello", True)),
        ("Why? Because", ["?"], ("Why", True)),
        ("a|b", ["|"], ("a", True)),
        ("x (y) z", ["("], ("x ", True)),
        ("no stop here", ["STOP"], ("no stop here", False)),
        ("aSTOPbEND", ["END", "STOP"], ("a", True)),
        ("text", [], ("text", False)),
        ("text", None, ("text", False)),
        ("text", [""], ("text", False)),
        ("[a-z]+ literal", ["[a-z]+"], ("", True)),
    ],
)
def test_truncate_at_stop(text: str, stops: list[str] | None, expected: tuple[str, bool]) -> None:
    assert truncate_at_stop(text, stops) == expected


def _scan(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    out = "".join(scanner.feed(p) for p in pieces)
    return out + scanner.flush(), scanner.stopped


TEXT = "alpha beta STOP gamma. delta?"


@pytest.mark.parametrize("stops", [["STOP"], ["."], ["?"], ["gamma.", "STOP"], ["zzz"], ["a b"], ["STOPPED", "STOP"]])
def test_scanner_matches_whole_text_at_every_split(stops: list[str]) -> None:
    expected = truncate_at_stop(TEXT, stops)
    for i, j in itertools.combinations(range(len(TEXT) + 1), 2):
        assert _scan([TEXT[:i], TEXT[i:j], TEXT[j:]], stops) == expected, (i, j)


def test_scanner_one_char_at_a_time() -> None:
    assert _scan(list(TEXT), ["STOP"]) == ("alpha beta ", True)


def test_scanner_straddling_stop() -> None:
    scanner = StopScanner(["STOP"])
    assert scanner.feed("go ST") == "go "
    assert scanner.feed("OP tail") == ""
    assert scanner.stopped


def test_scanner_releases_non_matching_prefix_immediately() -> None:
    scanner = StopScanner(["STOP"])
    assert scanner.feed("abc") == "abc"  # nothing held: no suffix begins "STOP"
    assert scanner.feed("xS") == "x"
    assert scanner.flush() == "S"


def test_scanner_without_stops_passes_through() -> None:
    scanner = StopScanner(None)
    assert scanner.feed("abc") == "abc" and scanner.flush() == ""
