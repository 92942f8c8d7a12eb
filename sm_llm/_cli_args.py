"""What the ``sm-llm`` commands share: the connection flags, ``--param KEY=JSON`` and
prompts read from standard input with ``-``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sm_llm._adapter import TRANSPORTS
from sm_llm.errors import ConfigurationError

__all__ = ["add_connection_args", "add_param_arg", "param_values", "read_prompt"]


def add_connection_args(parser: argparse.ArgumentParser, *, endpoint_help: str = "endpoint name",
                        handler_help: str = "content handler preset or YAML file (default tgi)",
                        required_endpoint: bool = False) -> None:
    """``--endpoint``, ``--handler``, ``--region``, ``--endpoint-url``, ``--profile``, ``--transport``."""
    parser.add_argument("--endpoint", required=required_endpoint, help=endpoint_help)
    parser.add_argument("--handler", help=handler_help)
    parser.add_argument("--region", help="AWS region")
    parser.add_argument("--endpoint-url", help="SageMaker Runtime URL (e.g. the local endpoint)")
    parser.add_argument("--profile", help="AWS credentials profile")
    parser.add_argument(
        "--transport", choices=TRANSPORTS,
        help="how SageMaker Runtime is called: botocore (boto3, the default) or httpx",
    )


def add_param_arg(parser: argparse.ArgumentParser) -> None:
    """``--param KEY=JSON`` (repeatable)."""
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=JSON",
        help="extra body parameter, value parsed as JSON when it can be (repeatable)",
    )


def param_values(items: list[str]) -> dict[str, Any]:
    """``--param`` items as a mapping, each value parsed as JSON when it can be."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--param expects KEY=VALUE, got {item!r}")
        try:
            values[key] = json.loads(value)
        except ValueError:
            values[key] = value
    return values


def read_prompt(prompt: str) -> str:
    """The prompt argument, or standard input for ``-``."""
    return sys.stdin.read() if prompt == "-" else str(prompt)
