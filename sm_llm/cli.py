"""The ``sm-llm`` command line: invoke, render, handlers, local serve.

Bad input prints one line on stderr and exits 2; a failed call prints one line
and exits 1. No tracebacks for either.
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
from sm_llm.errors import ConfigurationError, SageMakerError
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sm-llm: error: {message} (see 'sm-llm --help')\n")


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="the prompt; '-' reads it from standard input")
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
    parser = _Parser(prog="sm-llm", description="LLMs on Amazon SageMaker endpoints, from the shell.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    invoke = commands.add_parser("invoke", help="call an endpoint and print the reply")
    _add_model_args(invoke)
    invoke.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    invoke.add_argument("--json", action="store_true", help="print text and metadata as JSON")

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
    return parser


def _llm(args: argparse.Namespace) -> Any:
    """The adapter: ``--config`` (any kind, via :func:`sm_llm.load_config`) with the
    command-line flags on top, or ``SageMakerLLM`` from flags alone."""
    fields: dict[str, Any] = {"kind": "llm"}
    if args.config:
        fields = load_config(args.config, name=args.name).to_config()
    for key, value in (
        ("endpoint_name", args.endpoint),
        ("content_handler", args.handler),
        ("region_name", args.region),
        ("endpoint_url", args.endpoint_url),
        ("credentials_profile_name", args.profile),
        ("max_tokens", args.max_tokens),
        ("temperature", args.temperature),
        ("stop", args.stop),
        *((field, getattr(args, field)) for field in _ROUTING_FLAGS),
    ):
        if value is not None:
            fields[key] = value
    extra = {**(fields.pop("model_kwargs", None) or {}), **param_values(args.param)}
    if "endpoint_name" not in fields:
        raise ConfigurationError("--endpoint (or endpoint_name in --config) is required")
    if extra:
        fields["model_kwargs"] = extra
    if fields["kind"] == "embeddings":
        raise ConfigurationError("an embeddings model cannot generate text; pick a llm or chat model")
    return load_config(fields)


def _text(output: Any) -> str:
    """An LLM's str, or a chat message's content."""
    return output if isinstance(output, str) else str(output.content)


def _invoke(args: argparse.Namespace) -> int:
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
    if isinstance(llm, ChatSageMaker):  # metadata is on the message
        message = llm.invoke(prompt)
        text, info = _text(message), dict(message.response_metadata)
    else:
        generation = llm.generate([prompt]).generations[0][0]
        text, info = generation.text, dict(generation.generation_info or {})
    print(json.dumps({"text": text, **info}, indent=2, default=str))
    return 0


def _render(args: argparse.Namespace) -> int:
    llm = _llm(args)
    request = llm.prepare_request(read_prompt(args.prompt), operation=STREAM if args.stream else INVOKE)
    print(describe_request(request.operation, request.params))
    return 0


def _handlers() -> int:
    rows = []
    for name in list_presets():
        handler = ContentHandler.from_preset(name)
        stream = handler.stream.format if handler.stream else "-"
        rows.append((name, handler.input, stream, handler.description))
    width = max(len(r[0]) for r in rows)
    print(f"{'preset':<{width}}  input     stream  description")
    for name, kind, stream, description in rows:
        print(f"{name:<{width}}  {kind:<8}  {stream:<6}  {description}")
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.config_command == "schema":
        print(json.dumps(config_schema(), indent=2))
        return 0
    import yaml

    try:
        with open(args.file, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read {args.file}: {exc}") from exc
    names = [args.name] if args.name else list((data.get("models") or {}) if isinstance(data, dict) else []) or [None]
    resolved = {}
    for name in names:
        adapter = load_config(args.file, name=name)
        resolved[name or "model"] = masked(adapter)
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
        return _serve(args)
    except ConfigurationError as exc:
        print(f"sm-llm: error: {exc}", file=sys.stderr)
        return 2
    except SageMakerError as exc:
        print(f"sm-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
