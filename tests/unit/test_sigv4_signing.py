"""transport="httpx" signs with botocore's ``SigV4Auth`` over a slim request object: the
headers it produces are exactly those of botocore's own ``AWSRequest`` signed the same
way, for every operation, routing header, session token and URL shape."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sm_llm.transports import ClientSettings, SigV4HttpTransport

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5)
ROUTING = {"CustomAttributes": "a=b;  c=d", "TargetVariant": "AllTraffic", "InferenceId": "id-42",
           "SessionId": "NEW_SESSION", "Accept": "application/json", "ContentType": "application/json"}


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW)


def _botocore_signed(url: str, headers: dict[str, str], body: bytes, credentials: Credentials, region: str) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "sagemaker", region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("endpoint_url", ["http://127.0.0.1:8080", "https://runtime.example.com",
                                          "https://runtime.example.com:443", "http://[::1]:9000"])
@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize(("operation", "params"), [
    ("InvokeEndpoint", {"Body": b'{"inputs": "hi \\u00e9"}', **ROUTING}),
    ("InvokeEndpoint", {"Body": "text, é", "ContentType": "text/plain"}),
    ("InvokeEndpointWithResponseStream", {"Body": b"{}", **ROUTING}),
    ("InvokeEndpointAsync", {"InputLocation": "s3://b/in.json", "RequestTTLSeconds": 120}),
])
def test_signed_headers_are_botocores(endpoint_url: str, token: str | None, operation: str, params: dict[str, Any]) -> None:
    settings = ClientSettings(region_name="eu-west-1", endpoint_url=endpoint_url, aws_access_key_id="AKID",
                              aws_secret_access_key="secret", aws_session_token=token)
    transport = SigV4HttpTransport(settings)
    for _ in range(2):  # the second call goes through the cached URL, host and signer
        url, headers, body = transport.request(operation, {"EndpointName": "my endpoint/1", **params})
        unsigned = {k: v for k, v in headers.items() if k not in ("X-Amz-Date", "Authorization", "X-Amz-Security-Token")}
        expected = _botocore_signed(url, unsigned, body, Credentials("AKID", "secret", token), "eu-west-1")
        assert headers == expected
        assert list(headers) == list(expected)  # the same order on the wire
        assert "host" not in {k.lower() for k in headers}  # httpx sends Host from the URL
    transport.close()
