"""``sm-llm batch INPUT.jsonl --out OUTPUT.jsonl``: a model over a JSONL file, resumable.

The model comes from ``--config``/``--name`` or the invoke flags (``cli.py`` adds them and
builds it); this module owns the batch flags (those of ``--async-inference`` too) and the
run. Exit status: 0 when every record
has an answer, 1 when some failed (error lines) or ``--max-errors`` stopped the run, 2 for
bad input (nothing sent).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sm_llm.async_inference import AsyncInferenceConfig
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
    batch.add_argument("--concurrency", type=int, default=64,
                       help="calls in flight; with --async-inference, jobs outstanding (default 64)")
    batch.add_argument("--no-resume", dest="resume", action="store_false",
                       help="overwrite --out instead of skipping the ids it holds")
    batch.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="progress bar on a terminal (default on)")
    batch.add_argument("--max-errors", type=int, metavar="N", help="stop after N failed records")
    jobs = batch.add_argument_group(
        "asynchronous inference",
        "--async-inference submits each record as a job (InvokeEndpointAsync) of a job ledger, "
        "with the model's async_inference config (from --config, or the flags below on top of it), "
        "and waits for the results: through SQS notifications with --notification-queue-url, else "
        "by polling S3. The output lines, resume and --max-errors are the same; --concurrency is the "
        "number of jobs outstanding (submitted, not yet written). A rerun sends no job the ledger "
        "already holds (--no-resume also starts the default ledger afresh).",
    )
    jobs.add_argument("--async-inference", action="store_true",
                      help="submit through InvokeEndpointAsync (an endpoint configured for async inference)")
    jobs.add_argument("--ledger", metavar="FILE",
                      help="the job ledger (SQLite, created if missing; default: OUTPUT.jobs.db next to --out)")
    jobs.add_argument("--input-s3-uri", help="s3://bucket/prefix/ to upload the inputs to")
    jobs.add_argument("--inline", action="store_true",
                      help="send bodies of at most 128,000 bytes inline instead of uploading")
    jobs.add_argument("--s3-endpoint-url", help="S3 URL (default: AWS_ENDPOINT_URL_S3 or AWS)")
    jobs.add_argument("--notification-queue-url",
                      help="SQS queue subscribed to the endpoint's success and error topics")
    jobs.add_argument("--resubmit-after", type=float, metavar="SECONDS",
                      help="send a job a crash left unsent again after this long with nothing in S3 (default 120)")
    return batch


_ASYNC_FLAGS = {
    "input_s3_uri": "--input-s3-uri", "inline": "--inline", "s3_endpoint_url": "--s3-endpoint-url",
    "notification_queue_url": "--notification-queue-url", "ledger": "--ledger",
    "resubmit_after": "--resubmit-after",
}


def _with_async_flags(args: argparse.Namespace, model: Any) -> Any:
    """``model`` with the asynchronous-inference flags on top of its own config."""
    given = {
        "input_s3_uri": args.input_s3_uri, "inline_body": args.inline or None,
        "s3_endpoint_url": args.s3_endpoint_url, "notification_queue_url": args.notification_queue_url,
    }
    update = {name: value for name, value in given.items() if value is not None}
    if not update:
        return model
    if not isinstance(getattr(model, "async_inference", None), (AsyncInferenceConfig, type(None))):
        return model  # not an LLM or chat model: run_batch says so
    base = model.async_inference.model_dump(exclude_unset=True) if model.async_inference else {}
    return model.model_copy(update={"async_inference": AsyncInferenceConfig(**{**base, **update})})


@contextmanager
def _batch_gc() -> Iterator[None]:
    """Garbage collection for a long run of small calls: the imports and the model live
    for the whole run, so they leave the collector's sight (``gc.freeze``), and the
    youngest generation is collected every 20,000 allocations instead of 700 — with ~200
    calls in flight, each young collection walks all their live objects (measured: GC was
    ~15% of the CPU of a 4,000-record batch, ~2% after). Both undone afterwards (``main``
    may run inside another program)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def run_batch_command(args: argparse.Namespace, model: Any) -> int:
    """Run ``sm-llm batch`` with ``model``; the summary goes to stderr."""
    if not args.async_inference:
        stray = [flag for name, flag in _ASYNC_FLAGS.items() if getattr(args, name) not in (None, False)]
        if stray:
            raise ConfigurationError(f"{', '.join(stray)} go with --async-inference")
    else:
        model = _with_async_flags(args, model)
    with _batch_gc():
        report = run_batch(
            model, args.input, args.out, concurrency=args.concurrency, resume=args.resume,
            progress=args.progress, max_errors=args.max_errors, async_inference=args.async_inference,
            ledger=args.ledger, resubmit_after=args.resubmit_after,
        )
    print(f"sm-llm batch: {report.summary()}", file=sys.stderr)
    if report.stopped:
        print(f"sm-llm batch: --max-errors {args.max_errors} reached; fix the cause and rerun "
              "the same command to resume", file=sys.stderr)
    return 1 if report.failed or report.stopped else 0
