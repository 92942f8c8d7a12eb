"""``sm-llm batch INPUT.jsonl --out OUTPUT.jsonl``: a model over a JSONL file, resumable.

The model comes from ``--config``/``--name`` or the invoke flags (``cli.py`` adds them and
builds it); this module owns the batch flags and the run. Exit status: 0 when every record
has an answer, 1 when some failed (error lines) or ``--max-errors`` stopped the run, 2 for
bad input (nothing sent).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sm_llm.batch import run_batch
from sm_llm.errors import ConfigurationError

__all__ = ["add_batch_parser", "run_batch_command"]


def add_batch_parser(subcommands: Any) -> argparse.ArgumentParser:
    """Add ``batch`` and its own flags; the caller adds the model flags."""
    batch: argparse.ArgumentParser = subcommands.add_parser(
        "batch", help="run a model over a JSONL file of prompts (resumable, concurrent)",
        description="One output line per record, in the order calls finish; a rerun skips ids "
        "already in --out. Input lines: {\"id\": ..., \"prompt\": \"...\"} or {\"id\": ..., "
        "\"messages\": [...]}, plus per-call arguments (target_model, max_tokens, ...).",
    )
    batch.add_argument("input", help="JSONL input file")
    batch.add_argument("--out", required=True, help="JSONL output file (appended to when resuming)")
    batch.add_argument("--concurrency", type=int, default=64, help="calls in flight (default 64)")
    batch.add_argument("--no-resume", dest="resume", action="store_false",
                       help="overwrite --out instead of skipping the ids it holds")
    batch.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="progress bar on a terminal (default on)")
    batch.add_argument("--max-errors", type=int, metavar="N", help="stop after N failed records")
    batch.add_argument("--async-inference", action="store_true",
                       help="submit through InvokeEndpointAsync (not available yet)")
    return batch


def run_batch_command(args: argparse.Namespace, model: Any) -> int:
    """Run ``sm-llm batch`` with ``model``; the summary goes to stderr."""
    if args.async_inference:
        raise ConfigurationError(
            "sm-llm batch --async-inference is not available yet: it needs the asynchronous "
            "job ledger; for now run without it (real-time InvokeEndpoint), or submit jobs "
            "with 'sm-llm job submit'"
        )
    report = run_batch(
        model, args.input, args.out, concurrency=args.concurrency, resume=args.resume,
        progress=args.progress, max_errors=args.max_errors,
    )
    print(f"sm-llm batch: {report.summary()}", file=sys.stderr)
    if report.stopped:
        print(f"sm-llm batch: --max-errors {args.max_errors} reached; fix the cause and rerun "
              "the same command to resume", file=sys.stderr)
    return 1 if report.failed or report.stopped else 0
