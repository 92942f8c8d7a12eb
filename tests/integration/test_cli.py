"""The sm-llm command line, in process (``main(argv)``, output through ``capsys``) against the
shared local endpoint. The console script itself runs as a real process in
test_region_and_credentials.py::test_console_script_in_a_fresh_shell_signs_with_the_local_defaults."""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import pytest

from sm_llm.cli import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli(*argv, url=None, stdin=None)`` → ``(exit code, stdout, stderr)`` of ``main(argv)``.

    ``url`` is set as ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (the way a shell user points the
    CLI at a local endpoint); an argparse error's ``SystemExit`` is its exit code."""

    def run(*argv: str, url: str | None = None, stdin: str | None = None) -> tuple[int, str, str]:
        with monkeypatch.context() as patch:
            patch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
            if url:
                patch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
            else:
                patch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
            if stdin is not None:
                patch.setattr("sys.stdin", io.StringIO(stdin))
            try:
                code = main(list(argv))
            except SystemExit as exit_info:
                code = exit_info.code if isinstance(exit_info.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_invoke(cli: Any, local_endpoint: Any, sm_transport: str) -> None:
    code, out, err = cli(
        "invoke", "--endpoint", "tgi", "--region", "us-east-1", "--transport", sm_transport, "hello cli",
        url=local_endpoint.url,
    )
    assert (code, out, err) == (0, "Echo: hello cli\n", "")
    assert local_endpoint.requests[-1].operation == "InvokeEndpoint"


def test_invoke_json_and_routing(cli: Any, local_endpoint: Any, sm_transport: str) -> None:
    code, out, err = cli(
        "invoke", "--endpoint", "mme", "--region", "us-east-1", "--target-model", "model-b.tar.gz", "--transport", sm_transport,
        "--json", "--max-tokens", "2", "a b c", url=local_endpoint.url,
    )
    assert code == 0, err
    reply = json.loads(out)
    assert reply["text"] == "B: a" and reply["finish_reason"] == "length"
    assert local_endpoint.requests[-1].headers["x-amzn-sagemaker-target-model"] == "model-b.tar.gz"


def test_invoke_stream_prints_tokens(cli: Any, local_endpoint: Any, sm_transport: str) -> None:
    code, out, err = cli(
        "invoke", "--stream", "--endpoint", "openai", "--handler", "openai", "--region", "us-east-1",
        "--transport", sm_transport, "x y",
        url=local_endpoint.url,
    )
    assert (code, out, err) == (0, "Echo: x y\n", "")
    assert local_endpoint.requests[-1].operation == "InvokeEndpointWithResponseStream"


def test_prompt_from_stdin(cli: Any, local_endpoint: Any, sm_transport: str) -> None:
    code, out, _ = cli("invoke", "--endpoint", "tgi", "--region", "us-east-1", "--transport", sm_transport, "-",
                       url=local_endpoint.url, stdin="from stdin")
    assert (code, out) == (0, "Echo: from stdin\n")
    assert json.loads(local_endpoint.requests[-1].body)["inputs"] == "from stdin"


def test_render_sends_nothing(cli: Any, local_endpoint: Any) -> None:
    code, out, err = cli(
        "render", "--endpoint", "mme", "--region", "us-east-1", "--target-model", "m.tar.gz",
        "--custom-attributes", "a=1", 'say "hi"', url=local_endpoint.url,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "operation: InvokeEndpoint"
    assert lines[1] == "POST /endpoints/mme/invocations"
    assert "X-Amzn-SageMaker-Target-Model: m.tar.gz" in lines
    assert "X-Amzn-SageMaker-Custom-Attributes: a=1" in lines
    assert json.loads(lines[-1])["inputs"] == 'say "hi"'
    code, out, _ = cli("render", "--stream", "--endpoint", "tgi", "--region", "us-east-1", "x")
    assert code == 0
    assert out.splitlines()[0] == "operation: InvokeEndpointWithResponseStream"
    assert "X-Amzn-SageMaker-Accept: application/json" in out.splitlines()
    assert local_endpoint.requests == []


def test_handlers_lists_presets(cli: Any) -> None:
    code, out, _ = cli("handlers")
    assert code == 0
    for name in ("tgi", "lmi", "openai", "jumpstart", "jumpstart-chat", "text2text"):
        assert f"\n{name} " in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("invoke", "--endpoint", "tgi", "--region", "us-east-1", "--target-variant", "bad_name", "x"), "bad_name"),
        (("invoke", "--region", "us-east-1", "x"), "--endpoint"),
        (("invoke", "--endpoint", "tgi", "--handler", "nope", "x"), "nope"),
        (("bogus",), "bogus"),
        (("invoke", "--endpoint", "tgi", "--max-tokens", "many", "x"), "many"),
    ],
    ids=["variant", "no-endpoint", "handler", "command", "max-tokens"],
)
def test_bad_input_is_one_line_and_exit_2(cli: Any, local_endpoint: Any, args: tuple[str, ...], fragment: str) -> None:
    code, out, err = cli(*args, url=local_endpoint.url)
    assert code == 2, err
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("sm-llm: ") and fragment in err, err
    assert local_endpoint.requests == []


def test_service_error_is_one_line_and_exit_1(cli: Any, local_endpoint: Any, sm_transport: str) -> None:
    code, _, err = cli("invoke", "--endpoint", "no-such", "--region", "us-east-1", "--transport", sm_transport, "x",
                       url=local_endpoint.url)
    assert code == 1
    assert err.startswith("sm-llm: EndpointNotFoundError:")
    assert len(err.strip().splitlines()) == 1


def test_invoke_from_a_config_file(cli: Any, local_endpoint: Any, tmp_path: Any, sm_transport: str) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        f"defaults:\n  region_name: us-east-1\n  transport: {sm_transport}\nmodels:\n"
        "  writer: {kind: llm, endpoint_name: tgi, max_tokens: 2}\n"
        "  assistant: {kind: chat, endpoint_name: openai, content_handler: openai}\n"
    )
    url = local_endpoint.url
    code, out, err = cli("invoke", "--config", str(config), "--name", "writer", "a b c", url=url)
    assert (code, out, err) == (0, "Echo: a\n", "")
    code, out, err = cli("invoke", "--config", str(config), "--name", "assistant", "--json", "--max-tokens", "5", "hi there", url=url)
    assert code == 0, err
    reply = json.loads(out)
    assert reply["text"] == "Echo: hi there" and reply["model_provider"] == "amazon_sagemaker"
    assert json.loads(local_endpoint.requests[-1].body)["max_tokens"] == 5  # the flag overrides the file
    code, out, _ = cli("invoke", "--config", str(config), "--name", "assistant", "--stream", "x y", url=url)
    assert (code, out) == (0, "Echo: x y\n")
    code, _, err = cli("invoke", "--config", str(config), "--name", "nope", "x", url=url)
    assert code == 2 and "no model named 'nope'" in err


@pytest.mark.timeout(30)  # before the check this served until killed: a hang is the failure
@pytest.mark.parametrize("upstream", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x"])
def test_local_serve_refuses_a_non_http_upstream(cli: Any, upstream: str) -> None:
    code, out, err = cli("local", "serve", "--port", "0", "--upstream", upstream)
    assert code == 2, err
    assert err.startswith("sm-llm: error: upstream=") and len(err.splitlines()) == 1
    assert out == ""
