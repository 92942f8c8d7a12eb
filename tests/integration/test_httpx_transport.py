"""transport="httpx" against transport="botocore", over HTTP to the local endpoint: the same
requests on the wire (method, path, headers but the signature's date and the SDK's own,
body), the same replies and the same typed errors with the same fields."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sm_llm import SageMakerLLM
from sm_llm import errors as e
from sm_llm.local import LocalEndpoint
from sm_llm.transports import BotocoreTransport, ClientSettings, SigV4HttpTransport, Transport

# What only one side sends: the signature (its date), the SDK's bookkeeping, the HTTP
# library's own (User-Agent, keep-alive).
_OWN = {"authorization", "x-amz-date", "user-agent", "amz-sdk-invocation-id", "amz-sdk-request", "connection"}
ROUTING = {
    "CustomAttributes": "a=b; c=d",
    "TargetVariant": "AllTraffic",
    "TargetContainerHostname": "container-1",
    "InferenceId": "id-42",
    "InferenceComponentName": "ic-1",
    "SessionId": "NEW_SESSION",
}


def _settings(url: str) -> ClientSettings:
    return ClientSettings(
        region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def pair(local_endpoint: LocalEndpoint) -> Iterator[tuple[Transport, Transport]]:
    botocore, httpx = BotocoreTransport(_settings(local_endpoint.url)), SigV4HttpTransport(_settings(local_endpoint.url))
    yield botocore, httpx
    botocore.close()
    httpx.close()


def _sent(endpoint: LocalEndpoint, call: Any) -> tuple[str, str, dict[str, str], bytes, str]:
    """(operation, endpoint, headers but _OWN, body, signed header names) of the one request ``call`` makes."""
    endpoint.requests.clear()
    with contextlib.suppress(e.SageMakerError):  # the request is what is compared
        call()
    [request] = endpoint.requests
    headers = {k: v for k, v in request.headers.items() if k not in _OWN}
    signed = request.headers["authorization"].split("SignedHeaders=")[1].split(",")[0]
    return request.operation, request.endpoint_name, headers, request.body, signed


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("invoke", {"Body": b'{"inputs": "hi \\u00e9"}', "ContentType": "application/json", "Accept": "application/json", **ROUTING, "TargetModel": "m.tar.gz", "EnableExplanations": "`true`"}),
        ("invoke", {"Body": "text body, é", "ContentType": "text/plain"}),
        ("invoke_stream", {"Body": b'{"inputs": "hi"}', "ContentType": "application/json", "Accept": "application/jsonlines", **ROUTING}),
        ("invoke_async", {"InputLocation": "s3://b/in.json", "ContentType": "application/json", "Accept": "application/json", "CustomAttributes": "x=1", "InferenceId": "id-7", "RequestTTLSeconds": 120, "InvocationTimeoutSeconds": 600, "S3OutputPathExtension": "sub", "Filename": "f.json"}),
    ],
)
def test_both_transports_send_the_same_request(
    pair: tuple[Transport, Transport], local_endpoint: LocalEndpoint, operation: str, params: dict[str, Any]
) -> None:
    params = {"EndpointName": "tgi", **params}

    def call(transport: Transport) -> Any:
        result = getattr(transport, operation)(dict(params))
        if operation == "invoke_stream":
            list(result.parts)
            result.close()
        return result

    botocore, httpx = (_sent(local_endpoint, lambda t=t: call(t)) for t in pair)
    assert httpx == botocore
    assert botocore[2]  # something was compared: the routing headers arrived


def test_same_reply_and_metadata(pair: tuple[Transport, Transport]) -> None:
    params = {"EndpointName": "tgi", "Body": b'{"inputs": "hello"}', "ContentType": "application/json",
              "CustomAttributes": "k=v"}
    botocore, httpx = (t.invoke(dict(params)) for t in pair)
    assert httpx.body == botocore.body and httpx.status == botocore.status == 200
    assert {k for k in httpx.metadata} == {k for k in botocore.metadata}
    assert {k: v for k, v in httpx.metadata.items() if k != "request_id"} == {
        k: v for k, v in botocore.metadata.items() if k != "request_id"
    }
    streams = [t.invoke_stream(dict(params)) for t in pair]
    bodies = [b"".join(s.parts) for s in streams]
    assert bodies[0] == bodies[1] and bodies[0]
    assert streams[0].metadata.keys() == streams[1].metadata.keys()
    for s in streams:
        s.close()


def _fields(error: BaseException) -> dict[str, Any]:
    fields = {k: v for k, v in vars(error).items() if k != "request_id"}
    return {"type": type(error), "message": str(error), **fields}


@pytest.mark.parametrize(
    "code", ["ModelError", "ValidationError", "ModelNotReadyException", "ThrottlingException",
             "ServiceUnavailable", "InternalFailure", "InternalDependencyException"],
)
def test_same_typed_errors_and_fields(
    pair: tuple[Transport, Transport], local_endpoint: LocalEndpoint, fault: Any, code: str
) -> None:
    found = []
    for transport in pair:
        for call in (transport.invoke, transport.invoke_stream):
            local_endpoint.faults = fault(fail_next=[code])
            with pytest.raises(e.SageMakerError) as info:
                call({"EndpointName": "tgi", "Body": b'{"inputs": "x"}', "ContentType": "application/json"})
            found.append(_fields(info.value))
    assert found[2:] == found[:2]
    if code == "ModelError":
        assert found[0]["original_status_code"] and found[0]["original_message"] and found[0]["log_stream_arn"]


def test_same_mid_stream_error(pair: tuple[Transport, Transport], local_endpoint: LocalEndpoint, fault: Any) -> None:
    found = []
    for transport in pair:
        local_endpoint.faults = fault(stream_error_after_tokens=2)
        stream = transport.invoke_stream({"EndpointName": "tgi", "Body": b'{"inputs": "a b c d e", "stream": true}',
                                          "ContentType": "application/json"})
        with pytest.raises(e.StreamError) as info:
            list(stream.parts)
        stream.close()
        found.append(_fields(info.value))
    assert found[0] == found[1]


def test_async_calls(local_endpoint: LocalEndpoint) -> None:
    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=local_endpoint.url, region_name="us-east-1",
                       transport="httpx", max_retries=0)

    async def run() -> tuple[str, str, list[str]]:
        async with llm:
            return (await llm.ainvoke("hi"), "".join([c async for c in llm.astream("a b")]),
                    await llm.abatch(["x", "y"]))

    assert asyncio.run(run()) == ("Echo: hi", "Echo: a b", ["Echo: x", "Echo: y"])
    assert isinstance(llm.engine.transport, SigV4HttpTransport)


def test_endpoint_url_from_the_environment(local_endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", local_endpoint.url)
    llm = SageMakerLLM(endpoint_name="tgi", transport="httpx", region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert llm.invoke("env") == "Echo: env"


def test_profile_credentials_sign_the_request(
    local_endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[other]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s3cret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=local_endpoint.url, region_name="eu-west-1",
                       transport="httpx", credentials_profile_name="other")
    local_endpoint.requests.clear()
    assert llm.invoke("p") == "Echo: p"
    authorization = local_endpoint.requests[0].headers["authorization"]
    assert "Credential=AKIDPROFILE/" in authorization and "/eu-west-1/sagemaker/aws4_request" in authorization


@pytest.mark.parametrize(
    "options", [{}, {"use_fips_endpoint": True}, {"use_dualstack_endpoint": True},
                {"use_fips_endpoint": True, "use_dualstack_endpoint": True}],
)
def test_endpoint_url_resolved_as_boto3_resolves_it(options: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings = ClientSettings(region_name="us-west-2", aws_access_key_id="k", aws_secret_access_key="s",
                              config=Config(**options))
    expected = boto3.client("sagemaker-runtime", region_name="us-west-2", aws_access_key_id="k",
                            aws_secret_access_key="s", config=Config(**options)).meta.endpoint_url
    assert SigV4HttpTransport(settings).setup().endpoint_url == expected.rstrip("/")


def test_refreshable_credentials_are_refreshed_as_boto3_does(
    local_endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A ``credential_process`` profile whose keys expire in 5 minutes (inside botocore's
    mandatory refresh window): every request is signed with freshly fetched keys."""
    import sys

    counter = tmp_path / "count"
    script = tmp_path / "creds.py"
    script.write_text(
        "import datetime, json, pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': f'AKIDROTATE{n}', 'SecretAccessKey': 's',\n"
        "                  'SessionToken': f'tok{n}', 'Expiration': end.isoformat()}))\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile rotating]\ncredential_process = {sys.executable} {script}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=local_endpoint.url, region_name="us-east-1",
                       transport="httpx", credentials_profile_name="rotating")
    local_endpoint.requests.clear()
    assert llm.invoke("one") == "Echo: one" and llm.invoke("two") == "Echo: two"
    keys = [r.headers["authorization"].split("Credential=")[1].split("/")[0] for r in local_endpoint.requests]
    tokens = [r.headers["x-amz-security-token"] for r in local_endpoint.requests]
    assert keys[0] != keys[1] and all(k.startswith("AKIDROTATE") for k in keys)
    assert [t.removeprefix("tok") for t in tokens] == [k.removeprefix("AKIDROTATE") for k in keys]


def test_no_cookies_kept_or_sent_as_boto3() -> None:
    """A reply's ``Set-Cookie`` is not sent back on the next request, sync or async (boto3
    keeps no cookie jar; httpx's client would)."""
    import http.server
    import threading

    cookies: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            cookies.append(self.headers.get("Cookie"))
            self.send_response(200)
            self.send_header("Set-Cookie", "session=abc; Path=/")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    transport = SigV4HttpTransport(_settings(f"http://127.0.0.1:{server.server_port}"))
    try:
        params = {"EndpointName": "tgi", "Body": b"{}", "ContentType": "application/json"}
        for _ in range(2):
            assert transport.invoke(dict(params), timeout=10).body == b"{}"

        async def twice() -> None:
            for _ in range(2):
                assert (await transport.ainvoke(dict(params), timeout=10)).body == b"{}"
            await transport.aclose()

        asyncio.run(twice())
    finally:
        transport.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert cookies == [None] * 4
