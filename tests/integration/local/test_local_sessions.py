"""Stateful sessions: open, reuse on both routes, close, and refusal afterwards."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sm_llm.local import LocalEndpoint

NEW_SESSION_RE = re.compile(
    r"([a-zA-Z0-9](-*[a-zA-Z0-9])*);\sExpires=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
)


def test_session_open_reuse_close(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    opened = runtime_client.invoke_endpoint(
        EndpointName="tgi",
        Body=json.dumps({"requestType": "NEW_SESSION"}),
        ContentType="application/json",
        SessionId="NEW_SESSION",
    )
    match = NEW_SESSION_RE.fullmatch(opened["NewSessionId"])
    assert match is not None
    session_id = match.group(1)
    expires = datetime.strptime(match.group(3), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    ahead = expires - datetime.now(UTC)
    assert timedelta(minutes=19) < ahead <= timedelta(minutes=20, seconds=1)
    assert json.loads(opened["Body"].read())["sessionId"] == session_id

    reply = runtime_client.invoke_endpoint(
        EndpointName="tgi", Body=json.dumps({"inputs": "in session"}), SessionId=session_id
    )
    assert json.loads(reply["Body"].read()) == [{"generated_text": "Echo: in session"}]
    stream = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="tgi", Body=json.dumps({"inputs": "x", "stream": True}), SessionId=session_id
    )
    assert b"".join(e["PayloadPart"]["Bytes"] for e in stream["Body"])

    closed = runtime_client.invoke_endpoint(
        EndpointName="tgi", Body=json.dumps({"requestType": "CLOSE"}), SessionId=session_id
    )
    assert closed["ClosedSessionId"] == session_id
    with pytest.raises(runtime_client.exceptions.ValidationError, match=session_id):
        runtime_client.invoke_endpoint(
            EndpointName="tgi", Body=json.dumps({"inputs": "x"}), SessionId=session_id
        )
    recorded = [r.headers.get("x-amzn-sagemaker-session-id") for r in local_endpoint.requests]
    assert recorded == ["NEW_SESSION", session_id, session_id, session_id, session_id]


def test_new_session_with_a_generation(runtime_client: Any) -> None:
    reply = runtime_client.invoke_endpoint(
        EndpointName="openai",
        Body=json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        SessionId="NEW_SESSION",
    )
    assert NEW_SESSION_RE.fullmatch(reply["NewSessionId"])
    body = json.loads(reply["Body"].read())
    assert body["choices"][0]["message"]["content"] == "Echo: hi"


def test_unknown_session_and_other_endpoint(runtime_client: Any) -> None:
    with pytest.raises(runtime_client.exceptions.ValidationError):
        runtime_client.invoke_endpoint(EndpointName="tgi", Body=b"{}", SessionId="sess-unknown")
    opened = runtime_client.invoke_endpoint(
        EndpointName="tgi", Body=json.dumps({"requestType": "NEW_SESSION"}), SessionId="NEW_SESSION"
    )
    session_id = opened["NewSessionId"].split(";")[0]
    with pytest.raises(runtime_client.exceptions.ValidationError):
        runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="lmi", Body=b"{}", SessionId=session_id
        )
