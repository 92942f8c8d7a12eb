"""Checks and formatting shared by every layer (one home each): pydantic errors as
one line, ``s3://`` locations, http(s) URLs, and "is this string an existing file"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sm_llm.errors import ConfigurationError

__all__ = [
    "check_http_url",
    "first_configuration_error",
    "is_file",
    "parse_s3_uri",
    "validation_problems",
]

# Matched with fullmatch (``$`` accepts a final "\n"); ``.`` never matches a newline.
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?")
_URL_CHARS = re.compile(r"[\x21-\x7e]+")  # urlsplit silently drops tabs and newlines


def validation_problems(exc: Any, *, unwrap: bool = False) -> list[str]:
    """A pydantic ``ValidationError`` as ``field.path: message`` items; with ``unwrap``, a
    :class:`ConfigurationError` raised by a validator is given as its own message."""
    problems = []
    for err in exc.errors():
        original = (err.get("ctx") or {}).get("error")
        if unwrap and isinstance(original, ConfigurationError):
            problems.append(str(original))
        else:
            problems.append(f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}")
    return problems


def first_configuration_error(exc: Any) -> ConfigurationError | None:
    """The first :class:`ConfigurationError` a validator raised inside a ``ValidationError``."""
    for err in exc.errors():
        original = (err.get("ctx") or {}).get("error")
        if isinstance(original, ConfigurationError):
            return original
    return None


def parse_s3_uri(value: str) -> tuple[str, str] | None:
    """``s3://bucket/key`` → ``(bucket, key)`` (key may be empty); ``None`` when it is not one."""
    match = _S3_URI.fullmatch(value)
    if match is None:
        return None
    return match.group(1), match.group(2) or ""


def check_http_url(value: str, what: str) -> None:
    """``value`` is an ``http://`` or ``https://`` URL with a host; anything else (``ftp:``,
    ``file:``, a bare host, a bad port) is a :class:`ConfigurationError` now rather than a
    retryable connection error at the first call."""
    try:
        parts = urlsplit(value) if _URL_CHARS.fullmatch(value) else None
        ok = (
            parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)  # .port raises ValueError for "x" or 99999
        )
    except ValueError:  # also a malformed [IPv6] host
        ok = False
    if not ok:
        raise ConfigurationError(
            f"{what}={value!r} is not allowed: give an http:// or https:// URL with a host"
        )


def is_file(value: str | Path) -> bool:
    """Whether ``value`` names an existing file (a name too long, or with NUL, is not one)."""
    try:
        return bool(str(value)) and Path(value).is_file()
    except (OSError, ValueError):
        return False
