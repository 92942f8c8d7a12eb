"""Region and credentials as a request really carries them (the SigV4 credential scope the
local endpoint received): ``AWS_REGION`` honoured by the CLI, the boto3 client and the
aiobotocore client, and on the httpx transport; a loopback endpoint reached with nothing configured."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm.cli import main


def _scope(local_endpoint: Any) -> str:
    """``KEY/DATE/REGION/sagemaker/aws4_request`` of the last request."""
    authorization = local_endpoint.requests[-1].headers["authorization"]
    return str(authorization.split("Credential=", 1)[1].split(",", 1)[0])


def test_cli_honours_aws_region(
    local_endpoint: Any, fresh_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], sm_transport: str,
) -> None:
    """In process, in the fresh shell's environment (no AWS variable but these, empty HOME)."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", fresh_env["HOME"])
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", local_endpoint.url)
    code = main(["invoke", "--endpoint", "tgi", "--transport", sm_transport, "hello there"])
    assert (code, *capsys.readouterr()) == (0, "Echo: hello there\n", "")
    assert _scope(local_endpoint).split("/")[2] == "eu-west-1"


def test_console_script_in_a_fresh_shell_signs_with_the_local_defaults(
    local_endpoint: Any, fresh_env: dict[str, str], sm_transport: str
) -> None:
    """The one real process of the CLI's tests: the installed ``sm-llm`` script, found on the
    fresh shell's PATH, streaming; everything else runs ``main(argv)`` in process."""
    env = {**fresh_env, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": local_endpoint.url}
    script = shutil.which("sm-llm", path=env["PATH"])
    assert script is not None, "the sm-llm console script is not installed beside the interpreter"
    result = subprocess.run(
        [script, "invoke", "--stream", "--endpoint", "tgi", "--transport", sm_transport, "hello there"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "Echo: hello there\n", "")
    key, _, region, service, _ = _scope(local_endpoint).split("/")
    assert (key, region, service) == ("local", "us-east-1", "sagemaker")
    assert local_endpoint.requests[-1].operation == "InvokeEndpointWithResponseStream"


async def test_aws_region_ahead_of_aws_default_region(
    local_endpoint: Any, monkeypatch: pytest.MonkeyPatch, sm_transport: str, async_path: str
) -> None:
    """The suite sets AWS_DEFAULT_REGION=us-east-1; AWS_REGION wins, sync and async."""
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    llm = SageMakerLLM(endpoint_name="tgi", content_handler="tgi", endpoint_url=local_endpoint.url,
                       transport=sm_transport)
    assert await llm.ainvoke("a") == "Echo: a"
    assert _scope(local_endpoint).split("/")[2] == "eu-west-2"
    assert llm.invoke("b") == "Echo: b"
    assert _scope(local_endpoint).split("/")[2] == "eu-west-2"
    await llm.aclose()
    chat = ChatSageMaker(endpoint_name="openai", content_handler="openai", endpoint_url=local_endpoint.url,
                         region_name="ap-south-1", transport=sm_transport)
    assert "".join([str(c.content) async for c in chat.astream("c")]) == "Echo: c"
    assert _scope(local_endpoint).split("/")[2] == "ap-south-1"  # the field beats the environment
    await chat.aclose()
