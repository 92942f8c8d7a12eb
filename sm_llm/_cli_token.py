"""``sm-llm token``: print a bearer token for SageMaker's OpenAI-compatible route.

Only the token goes to standard output, so that it can be captured::

    export OPENAI_API_KEY=$(sm-llm token --region us-east-1)
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from sm_llm.errors import ConfigurationError

__all__ = ["add_token_parser", "run_token_command"]

_MAX_SECONDS = 43_200


def add_token_parser(subcommands: Any) -> None:
    """Add ``token`` to ``subcommands``."""
    token = subcommands.add_parser(
        "token", help="print a bearer token for SageMaker's OpenAI-compatible route (/openai/v1)"
    )
    token.add_argument("--region", help="AWS region the token is signed for")
    token.add_argument("--profile", help="AWS credentials profile")
    token.add_argument(
        "--expiry-seconds", type=int, default=_MAX_SECONDS, metavar="N",
        help=f"lifetime, 1 to {_MAX_SECONDS} (12 h, the default); never longer than the credentials",
    )


def run_token_command(args: argparse.Namespace) -> int:
    """Print the token and a newline; nothing else."""
    from sm_llm.auth import generate_bearer_token

    seconds = args.expiry_seconds
    if not 1 <= seconds <= _MAX_SECONDS:
        raise ConfigurationError(f"--expiry-seconds must be between 1 and {_MAX_SECONDS} (12 hours), got {seconds}")
    try:
        token = generate_bearer_token(
            args.region, expiry=timedelta(seconds=seconds), profile_name=args.profile
        )
    except ConfigurationError as exc:
        if exc.field == "credentials_profile_name":  # the library's advice names credentials=
            raise ConfigurationError(
                exc.problem, advice="pass --profile NAME, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from exc
        raise
    sys.stdout.write(token + "\n")
    return 0
