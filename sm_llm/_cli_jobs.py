"""``sm-llm job submit|status|wait|list``: asynchronous inference jobs from the shell.

``submit`` prints the job as one JSON line (append it to a file to collect many);
``status`` and ``wait`` take jobs as JSON text, a file of JSON objects (one object,
a list, or one per line) or ``-`` for standard input::

    sm-llm job submit --endpoint my-ep --input-s3-uri s3://bucket/in/ "long prompt" >> jobs.jsonl
    sm-llm job status jobs.jsonl
    sm-llm job wait --timeout 3600 --progress jobs.jsonl

With ``--ledger jobs.db`` the jobs live in a :class:`~sm_llm.async_inference.JobLedger`
instead: ``submit`` records each job there (a prompt already recorded is not sent
again), and ``status``, ``wait`` and ``list`` need nothing but the ledger.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sm_llm._cli_args import add_connection_args, add_param_arg, param_values, read_prompt
from sm_llm.async_inference import AsyncInferenceConfig, InferenceJob, JobLedger, submit, wait_all
from sm_llm.errors import ConfigurationError, JobTimeoutError
from sm_llm.llms import SageMakerLLM

__all__ = ["add_job_parser", "run_job_command"]


def _connection_args(parser: argparse.ArgumentParser, *, required_endpoint: bool) -> None:
    add_connection_args(
        parser, required_endpoint=required_endpoint,
        endpoint_help="endpoint name" + ("" if required_endpoint else " (default: the job's)"),
        handler_help="content handler preset or YAML file (default: the job's, else tgi)",
    )
    parser.add_argument("--s3-endpoint-url", help="S3 URL (default: AWS_ENDPOINT_URL_S3 or AWS)")


def add_job_parser(subcommands: Any) -> None:
    """Add ``job`` and its ``submit`` / ``status`` / ``wait`` / ``list`` commands to ``subcommands``."""
    job = subcommands.add_parser("job", help="asynchronous inference jobs (InvokeEndpointAsync)")
    commands = job.add_subparsers(dest="job_command", required=True, parser_class=type(job))

    submit = commands.add_parser("submit", help="submit a prompt; print the job as JSON")
    submit.add_argument("prompt", help="the prompt; '-' reads it from standard input")
    _connection_args(submit, required_endpoint=True)
    submit.add_argument("--input-s3-uri", help="s3://bucket/prefix/ to upload the input to")
    submit.add_argument("--inline", action="store_true",
                        help="send bodies of at most 128,000 bytes inline instead of uploading")
    submit.add_argument("--max-tokens", type=int)
    submit.add_argument("--temperature", type=float)
    submit.add_argument("--stop", action="append", help="stop sequence (repeatable)")
    add_param_arg(submit)
    submit.add_argument("--custom-attributes")
    submit.add_argument("--inference-id")
    submit.add_argument("--request-ttl", type=int, metavar="SECONDS", help="RequestTTLSeconds (60-21600)")
    submit.add_argument("--invocation-timeout", type=int, metavar="SECONDS",
                        help="InvocationTimeoutSeconds (1-3600)")
    _ledger_arg(submit)
    submit.add_argument("--key", help="the job's key in the ledger (default: a hash of the request)")
    submit.add_argument("--notification-queue-url",
                        help="SQS queue subscribed to the endpoint's success and error topics (kept in the ledger)")
    submit.add_argument("--notification-wait", type=int, metavar="SECONDS", help="SQS long poll (0-20, default 20)")
    submit.add_argument("--notification-fallback", type=float, metavar="SECONDS",
                        help="check S3 for jobs without news after this long (default 300)")

    status = commands.add_parser("status", help="print pending / completed / failed for each job")
    status.add_argument("job", nargs="?", help="job JSON, a file of jobs, or '-' for standard input")
    _connection_args(status, required_endpoint=False)
    _ledger_arg(status)

    wait = commands.add_parser("wait", help="wait for jobs and print their results")
    wait.add_argument("jobs", nargs="*", help="job JSON, files of jobs, or '-' for standard input")
    _connection_args(wait, required_endpoint=False)
    _ledger_arg(wait)
    wait.add_argument("--resubmit-after", type=float, metavar="SECONDS",
                      help="send a job left in 'submitting' by a crash again after this long "
                      "with nothing in S3 (default 120)")
    wait.add_argument("--timeout", type=float, default=900.0, help="seconds to wait at most (default 900)")
    wait.add_argument("--progress", action="store_true", help="show a progress bar on a terminal")
    wait.add_argument("--json", action="store_true", help="one JSON line per job, even for one job")

    listing = commands.add_parser("list", help="print every job of a ledger as a JSON line")
    _ledger_arg(listing, required=True)
    listing.add_argument("--state", choices=["submitting", "pending", "completed", "failed", "expired"],
                         help="only jobs in this state")


def _ledger_arg(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument("--ledger", metavar="FILE", required=required,
                        help="a job ledger (SQLite file, created if missing)")


def _llm(args: argparse.Namespace, endpoint: str, handler: str | None) -> SageMakerLLM:
    fields: dict[str, Any] = {"endpoint_name": endpoint, "content_handler": args.handler or handler or "tgi"}
    for key, value in (
        ("region_name", args.region),
        ("endpoint_url", args.endpoint_url),
        ("credentials_profile_name", args.profile),
        ("transport", args.transport),
    ):
        if value is not None:
            fields[key] = value
    return SageMakerLLM(**fields)


def _submit(args: argparse.Namespace) -> int:
    config = AsyncInferenceConfig(
        input_s3_uri=args.input_s3_uri,
        inline_body=args.inline,
        s3_endpoint_url=args.s3_endpoint_url,
        request_ttl_seconds=args.request_ttl,
        invocation_timeout_seconds=args.invocation_timeout,
        **{
            name: value
            for name, value in (
                ("notification_queue_url", args.notification_queue_url),
                ("notification_wait_seconds", args.notification_wait),
                ("notification_fallback_seconds", args.notification_fallback),
            )
            if value is not None
        },
    )
    body_params = param_values(args.param)
    kwargs: dict[str, Any] = {"model_kwargs": body_params} if body_params else {}
    for key, value in (
        ("max_tokens", args.max_tokens),
        ("temperature", args.temperature),
        ("custom_attributes", args.custom_attributes),
        ("inference_id", args.inference_id),
    ):
        if value is not None:
            kwargs[key] = value
    prompt = read_prompt(args.prompt)
    llm = _llm(args, args.endpoint, args.handler)
    with llm:
        if args.ledger:
            with JobLedger(args.ledger) as ledger:
                job = submit(llm, prompt, config=config, stop=args.stop, ledger=ledger, key=args.key, **kwargs)
                print(json.dumps({"job_id": job.ledger_id, **job.to_dict()}), flush=True)
            return 0
        job = llm.submit(prompt, config=config, stop=args.stop, **kwargs)
        print(json.dumps(job.to_dict()), flush=True)
    return 0


def _read_jobs(source: str) -> list[dict[str, Any]]:
    """Jobs from JSON text, a file (one object, a list, or JSON lines) or ``-``."""
    if source == "-":
        text, where = sys.stdin.read(), "standard input"
    elif source.lstrip().startswith(("{", "[")):
        text, where = source, "the job argument"
    else:
        try:
            text, where = Path(source).read_text(encoding="utf-8"), source
        except OSError as exc:
            raise ConfigurationError(f"cannot read jobs from {source}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
    except ValueError:
        try:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise ConfigurationError(f"{where} is not a job (JSON from 'sm-llm job submit'): {exc}") from exc
    for item in items:
        if not isinstance(item, dict) or "output_location" not in item:
            raise ConfigurationError(f"{where} holds something that is not a job (no output_location)")
    return items


def _jobs(args: argparse.Namespace, sources: list[str]) -> list[InferenceJob]:
    config = AsyncInferenceConfig(
        inline_body=True, s3_endpoint_url=args.s3_endpoint_url, timeout=getattr(args, "timeout", 900.0) or 900.0
    )
    adapters: dict[tuple[str, str | None], Any] = {}
    jobs = []
    for source in sources:
        for data in _read_jobs(source):
            endpoint = args.endpoint or data.get("endpoint_name")
            if not endpoint:
                raise ConfigurationError("the job names no endpoint: pass --endpoint")
            key = (str(endpoint), data.get("content_handler"))
            if key not in adapters:
                adapters[key] = _llm(args, key[0], key[1])
            jobs.append(InferenceJob.from_dict(data, llm=adapters[key], config=config))
    return jobs


def _need_jobs(args: argparse.Namespace, given: Any) -> None:
    if not given and not args.ledger:
        raise ConfigurationError("name the jobs (JSON, a file, or '-') or pass --ledger jobs.db")


def _status(args: argparse.Namespace) -> int:
    if args.ledger:
        with JobLedger(args.ledger) as ledger:
            for entry in ledger.entries():
                print(json.dumps({"job_id": entry.id, "inference_id": entry.inference_id, "status": entry.state}),
                      flush=True)
        return 0
    _need_jobs(args, args.job)
    for job in _jobs(args, [args.job]):
        print(json.dumps({"inference_id": job.inference_id, "status": job.status()}), flush=True)
    return 0


def _wait_ledger(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {} if args.resubmit_after is None else {"resubmit_after": args.resubmit_after}
    with JobLedger(args.ledger, **settings) as ledger:
        results = wait_all(ledger, timeout=args.timeout, progress=args.progress)
        entries = ledger.entries()
        failed = 0
        for entry, result in zip(entries, results, strict=True):
            line: dict[str, Any] = {"job_id": entry.id, "inference_id": entry.inference_id}
            if isinstance(result, BaseException):
                failed += 1
                status = "timeout" if isinstance(result, JobTimeoutError) else entry.state
                line.update(status=status, error=f"{type(result).__name__}: {result}")
            else:
                line.update(status="completed", text=str(result))
            print(json.dumps(line), flush=True)
        for adapter in ledger.adapters.values():
            adapter.close()
    return 1 if failed else 0


def _list(args: argparse.Namespace) -> int:
    with JobLedger(args.ledger) as ledger:
        for entry in ledger.entries((args.state,) if args.state else None):
            print(json.dumps(entry.summary()), flush=True)
    return 0


def _wait(args: argparse.Namespace) -> int:
    if args.ledger:
        return _wait_ledger(args)
    _need_jobs(args, args.jobs)
    jobs = _jobs(args, args.jobs)
    results = wait_all(jobs, timeout=args.timeout, progress=args.progress)
    if len(jobs) == 1 and not args.json:
        if isinstance(results[0], BaseException):
            raise results[0]
        print(results[0])
        return 0
    failed = 0
    for job, result in zip(jobs, results, strict=True):
        line: dict[str, Any] = {"inference_id": job.inference_id}
        if isinstance(result, BaseException):
            failed += 1
            status = "timeout" if isinstance(result, JobTimeoutError) else "failed"
            line.update(status=status, error=f"{type(result).__name__}: {result}")
        else:
            line.update(status="completed", text=str(result))
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


def run_job_command(args: argparse.Namespace) -> int:
    """Run ``sm-llm job ...``; errors propagate to ``main`` (exit 2 for bad input, 1 for failures)."""
    if args.job_command == "submit":
        return _submit(args)
    if args.job_command == "status":
        return _status(args)
    if args.job_command == "list":
        return _list(args)
    return _wait(args)
