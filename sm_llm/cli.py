"""The ``sm-llm`` command line: invoke, render, handlers, local serve.

Bad input prints one line on stderr and exits 2; a failed call prints one line
and exits 1. No tracebacks for either. Errors name the command's flags, not the
library's field names (``--region``, not ``region_name=``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from sm_llm._cli_args import add_connection_args, add_param_arg, param_values, read_prompt
from sm_llm._cli_jobs import add_job_parser, run_job_command
from sm_llm._routing import INVOKE, STREAM
from sm_llm.chat_models import ChatSageMaker
from sm_llm.config import config_schema, load_config, masked
from sm_llm.embeddings import SageMakerEmbeddings
from sm_llm.errors import (
    ConfigurationError,
    EndpointNotFoundError,
    ModelError,
    RequestValidationError,
    SageMakerError,
)
from sm_llm.handlers import ContentHandler, list_presets
from sm_llm.transports.wire import describe_request

__all__ = ["main"]

_ROUTING_FLAGS = {
    "target_model": "--target-model",
    "target_variant": "--target-variant",
    "target_container_hostname": "--target-container-hostname",
    "inference_component_name": "--inference-component",
    "custom_attributes": "--custom-attributes",
    "enable_explanations": "--enable-explanations",
    "session_id": "--session-id",
    "inference_id": "--inference-id",
}

# What to do, in this command line's terms, for a ConfigurationError naming a field.
_ADVICE = {
    "region_name": "pass --region (e.g. --region us-east-1), or set AWS_REGION",
    "credentials_profile_name": (
        "pass --profile NAME, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or set the keys in a --config file"
    ),
    "allow_remote": "pass --allow-remote to expose it",
    "name": "pass --name NAME",
    "async_inference": (
        "send it as an asynchronous job instead: sm-llm job submit --input-s3-uri s3://bucket/prefix/ ..."
    ),
    "input_s3_uri": "pass --input-s3-uri s3://bucket/prefix/ to upload it to S3 instead",
    "port": "pick another --port (--port 0 takes any free one)",
}
_HANDLER_HINT = (
    "the endpoint refused the request body; if its container does not speak this handler's "
    "format, try another --handler (see 'sm-llm handlers')"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sm-llm: error: {message} (see 'sm-llm --help')\n")


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="the prompt; '-' reads it from standard input")
    _add_model_flags(parser)


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (sm_llm.load_config): an llm or chat model")
    parser.add_argument("--name", help="the model to use from a models: config file")
    add_connection_args(parser)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--stop", action="append", help="stop sequence (repeatable)")
    add_param_arg(parser)
    for field, flag in _ROUTING_FLAGS.items():
        parser.add_argument(flag, dest=field)


def _build_parser() -> argparse.ArgumentParser:
    from sm_llm import __version__

    parser = _Parser(prog="sm-llm", description="LLMs on Amazon SageMaker endpoints, from the shell.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    invoke = commands.add_parser("invoke", help="call an endpoint and print the reply")
    _add_model_args(invoke)
    invoke.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    invoke.add_argument(
        "--json", action="store_true",
        help="print text and metadata as JSON; with --stream, JSON lines: {\"delta\": ...} per "
        "chunk, then the text and metadata",
    )

    render = commands.add_parser("render", help="print the exact request (sends nothing)")
    _add_model_args(render)
    render.add_argument("--stream", action="store_true", help="render the streaming request")

    commands.add_parser("handlers", help="list the content handler presets")

    config = commands.add_parser("config", help="configuration files")
    config_commands = config.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    config_commands.add_parser("schema", help="print the JSON Schema of config files")
    check = config_commands.add_parser("check", help="validate a file; print it resolved, secrets masked")
    check.add_argument("file")
    check.add_argument("--name", help="the model to check in a models: file (default: all)")

    add_job_parser(commands)
    from sm_llm._cli_batch import add_batch_parser

    _add_model_flags(add_batch_parser(commands))
    from sm_llm._cli_token import add_token_parser

    add_token_parser(commands)

    local = commands.add_parser("local", help="the local SageMaker-compatible endpoint")
    local_commands = local.add_subparsers(dest="local_command", required=True, parser_class=_Parser)
    serve = local_commands.add_parser("serve", help="serve the local endpoint until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--config", help="YAML file with endpoints and fault injection")
    serve.add_argument("--upstream", help="forward to a container at this URL (POST /invocations)")
    serve.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    serve.add_argument(
        "--with-s3", action="store_true", help="also start a local S3 (moto) for async jobs"
    )
    serve.add_argument(
        "--notifications", action="store_true",
        help="with --with-s3: publish job outcomes to SNS topics and an SQS queue (moto), like SageMaker",
    )
    return parser


def _llm(args: argparse.Namespace, **settings: Any) -> Any:
    """The adapter: ``--config`` (any kind, via :func:`sm_llm.load_config`) with the
    command-line flags (and ``settings``) on top, or ``SageMakerLLM`` from flags alone."""
    fields = _flag_fields(args)
    fields.update(settings)
    extra = param_values(args.param)
    if args.config:
        adapter = load_config(args.config, name=args.name)
        if isinstance(adapter, SageMakerEmbeddings):
            raise ConfigurationError("an embeddings model cannot generate text; pick a llm or chat model")
        if not fields and not extra:
            return adapter  # exactly what load_config built: credentials and all
        # the file's fields as load_config set them (secrets included), the flags on top
        merged = {name: getattr(adapter, name) for name in adapter.model_fields_set}
        if extra:
            fields["model_kwargs"] = {**merged.get("model_kwargs", {}), **extra}
        return type(adapter)(**{**merged, **fields})
    if "endpoint_name" not in fields:
        raise ConfigurationError("--endpoint (or endpoint_name in --config) is required")
    if extra:
        fields["model_kwargs"] = extra
    return load_config({"kind": "llm", **fields})


def _flag_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The adapter fields given as flags."""
    fields: dict[str, Any] = {}
    for key, value in (
        ("endpoint_name", args.endpoint),
        ("content_handler", args.handler),
        ("region_name", args.region),
        ("endpoint_url", args.endpoint_url),
        ("credentials_profile_name", args.profile),
        ("transport", args.transport),
        ("max_tokens", args.max_tokens),
        ("temperature", args.temperature),
        ("stop", args.stop),
        *((field, getattr(args, field)) for field in _ROUTING_FLAGS),
    ):
        if value is not None:
            fields[key] = value
    return fields


def _text(output: Any) -> str:
    """An LLM's str, or a chat message's content."""
    return output if isinstance(output, str) else str(output.content)


def _invoke(args: argparse.Namespace) -> int:
    if args.stream and args.json:
        return _stream_json(args)
    llm = _llm(args)
    prompt = read_prompt(args.prompt)
    if args.stream:
        for piece in llm.stream(prompt):
            sys.stdout.write(_text(piece))
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    if not args.json:
        print(_text(llm.invoke(prompt)))
        return 0
    text, info = _reply(llm, prompt)
    print(json.dumps({"text": text, **info}, indent=2, default=str))
    return 0


def _reply(llm: Any, prompt: str, callbacks: list[Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The reply's text and metadata (finish reason, usage, request id...)."""
    if isinstance(llm, ChatSageMaker):  # metadata is on the message
        message = llm.invoke(prompt, config={"callbacks": callbacks})
        return _text(message), dict(message.response_metadata)
    generation = llm.generate([prompt], callbacks=callbacks).generations[0][0]
    return generation.text, dict(generation.generation_info or {})


def _stream_json(args: argparse.Namespace) -> int:
    """``--stream --json``: JSON lines, ``{"delta": text}`` per chunk as it arrives, then
    the object ``--json`` prints (whole text and metadata) on one line."""
    from langchain_core.callbacks import BaseCallbackHandler

    class _Deltas(BaseCallbackHandler):
        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            if isinstance(token, str) and token:
                print(json.dumps({"delta": token}), flush=True)

    llm = _llm(args, streaming=True)  # invoke streams and joins; tokens reach callbacks
    text, info = _reply(llm, read_prompt(args.prompt), callbacks=[_Deltas()])
    print(json.dumps({"text": text, **info}, default=str), flush=True)
    return 0


def _render(args: argparse.Namespace) -> int:
    llm = _llm(args)
    request = llm.prepare_request(read_prompt(args.prompt), operation=STREAM if args.stream else INVOKE)
    print(describe_request(request.operation, request.params))
    return 0


def _handlers() -> int:
    rows = [("preset", "input", "stream", "description")]
    for name in list_presets():
        handler = ContentHandler.from_preset(name)
        spec = handler.stream
        stream = "-" if spec is None else "whole reply" if spec.whole_reply else spec.format
        rows.append((name, handler.input, stream, handler.description))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for *cells, description in rows:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)), description, sep="  ")
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.config_command == "schema":
        print(json.dumps(config_schema(), indent=2))
        return 0
    import yaml

    from sm_llm._yaml import load as load_yaml

    try:
        with open(args.file, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {args.file}: {exc}") from exc
    data = load_yaml(text, args.file) or {}
    names = [args.name] if args.name else list((data.get("models") or {}) if isinstance(data, dict) else []) or [None]
    resolved, problems = {}, []
    for name in names:  # every model is checked, and every problem reported at once
        try:
            adapter = load_config(args.file, name=name)
        except ConfigurationError as exc:
            problems += [problem for problem in exc.problems if problem not in problems]
            continue
        resolved[name or "model"] = masked(adapter)
    if len(problems) == 1:
        raise ConfigurationError(problems[0])
    if problems:
        raise ConfigurationError(
            f"{len(problems)} problems in {args.file}:\n  " + "\n  ".join(problems), problems=tuple(problems)
        )
    out = resolved if len(names) > 1 or names[0] else resolved["model"]
    print(yaml.safe_dump(out, sort_keys=False, allow_unicode=True), end="")
    print(f"ok: {args.file} ({len(names)} model{'s' if len(names) > 1 else ''})", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from sm_llm.local import serve

    serve(
        host=args.host,
        port=args.port,
        config_path=args.config,
        upstream=args.upstream,
        allow_remote=args.allow_remote,
        with_s3=args.with_s3,
        notifications=args.notifications,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sm-llm`` console script."""
    args = _build_parser().parse_args(argv)
    import warnings

    warnings.showwarning = lambda message, *_rest, **_kw: print(  # one line, no source dump
        f"sm-llm: warning: {message}", file=sys.stderr
    )
    try:
        if args.command == "invoke":
            return _invoke(args)
        if args.command == "render":
            return _render(args)
        if args.command == "handlers":
            return _handlers()
        if args.command == "config":
            return _config(args)
        if args.command == "job":
            return run_job_command(args)
        if args.command == "batch":
            from sm_llm._cli_batch import run_batch_command

            return run_batch_command(args, _llm(args))
        if args.command == "token":
            from sm_llm._cli_token import run_token_command

            return run_token_command(args)
        return _serve(args)
    except ConfigurationError as exc:
        print(f"sm-llm: error: {_error_text(exc)}", file=sys.stderr)
        return 2
    except SageMakerError as exc:
        print(f"sm-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
        if args.command == "invoke" and _refused_body(exc):
            print(f"sm-llm: hint: {_HANDLER_HINT}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _error_text(exc: ConfigurationError) -> str:
    """The message, with the advice in flags when the error names a field."""
    advice = _ADVICE.get(exc.field) if exc.field else None
    return f"{exc.problem}: {advice}" if advice else str(exc)


def _refused_body(exc: SageMakerError) -> bool:
    """A 400 about the request itself (not a missing endpoint): maybe the wrong handler."""
    if isinstance(exc, ModelError):  # the container's own 4xx, passed on as a 424
        return exc.original_status_code in (400, 415, 422)
    return isinstance(exc, RequestValidationError) and not isinstance(exc, EndpointNotFoundError)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
