"""Tool calls and structured output from the OpenAI-format containers, through real boto3."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import EventStreamError

from sm_llm.local import FaultConfig, LocalEndpoint

MAGIC_TEXT = "What is the value of magic_function(3)? Use the tool."
JOKE_SCHEMA: dict[str, Any] = {
    "title": "Joke",
    "type": "object",
    "properties": {
        "setup": {"type": "string"},
        "punchline": {"type": "string"},
        "rating": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
    },
    "required": ["setup", "punchline"],
}


def function(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": f"The {name} tool.", "parameters": parameters},
    }


MAGIC = function(
    "magic_function",
    {"type": "object", "properties": {"input": {"type": "integer"}}, "required": ["input"]},
)
WEATHER = function(
    "get_weather",
    {
        "type": "object",
        "$defs": {"Unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
        "required": ["city", "unit"],
    },
)
JOKE = function("Joke", JOKE_SCHEMA)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def invoke(client: Any, body: Any, endpoint: str = "openai") -> Any:
    response = client.invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json"
    )
    return json.loads(response["Body"].read())


def stream_records(client: Any, body: Any, endpoint: str = "openai") -> list[Any]:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName=endpoint,
        Body=json.dumps({**body, "stream": True}),
        ContentType="application/json",
    )
    data = b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"])
    records = []
    for line in data.decode("utf-8").splitlines():
        line = line.strip()
        if line.startswith("data:"):
            line = line[5:].strip()
        if line:
            records.append(line if line == "[DONE]" else json.loads(line))
    return records


def only_call(body: Any) -> tuple[str, Any]:
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call["type"] == "function" and tool_call["id"].startswith("call_")
    return tool_call["function"]["name"], json.loads(tool_call["function"]["arguments"])


def reassemble(records: list[Any]) -> tuple[str, str, Any]:
    """(call id, name, parsed arguments) from a stream's ``tool_calls`` deltas."""
    call_id, name, arguments = "", "", ""
    for record in records:
        if record == "[DONE]" or not record["choices"]:
            continue
        for delta in record["choices"][0]["delta"].get("tool_calls") or []:
            assert delta["index"] == 0
            call_id = delta.get("id") or call_id
            name += delta["function"].get("name") or ""
            arguments += delta["function"].get("arguments") or ""
    return call_id, name, json.loads(arguments)


def test_tool_call_whole(runtime_client: Any, local_endpoint: LocalEndpoint) -> None:
    body = invoke(runtime_client, {"messages": user(MAGIC_TEXT), "tools": [MAGIC, WEATHER]})
    assert only_call(body) == ("magic_function", {"input": 3})
    usage = body["usage"]
    assert usage["completion_tokens"] >= 2
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    (recorded,) = local_endpoint.requests
    assert recorded.status == 200 and recorded.endpoint_name == "openai"


def test_tool_call_stream(runtime_client: Any) -> None:
    body = {
        "messages": user(MAGIC_TEXT),
        "tools": [MAGIC],
        "stream_options": {"include_usage": True},
    }
    records = stream_records(runtime_client, body)
    assert records[-1] == "[DONE]"
    first = records[0]["choices"][0]["delta"]
    assert first["role"] == "assistant"
    assert first["tool_calls"][0]["function"] == {"name": "magic_function", "arguments": ""}
    call_id, name, arguments = reassemble(records)
    assert call_id.startswith("call_") and name == "magic_function" and arguments == {"input": 3}
    finish = [r["choices"][0]["finish_reason"] for r in records[:-1] if r["choices"]]
    assert finish[-1] == "tool_calls" and set(finish[:-1]) == {None}
    usage = records[-2]["usage"]
    argument_deltas = len(records) - 4  # header, finish, usage, [DONE]
    assert usage["completion_tokens"] == 1 + argument_deltas


@pytest.mark.parametrize("endpoint", ["tgi", "lmi"])
def test_tool_call_stream_other_containers(runtime_client: Any, endpoint: str) -> None:
    records = stream_records(
        runtime_client, {"messages": user(MAGIC_TEXT), "tools": [MAGIC]}, endpoint
    )
    assert reassemble(records)[1:] == ("magic_function", {"input": 3})


def test_tool_call_stream_fault_counts_deltas(
    runtime_client: Any, local_endpoint: LocalEndpoint
) -> None:
    local_endpoint.faults = FaultConfig(stream_error_after_tokens=2)
    response = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="openai",
        Body=json.dumps({"messages": user(MAGIC_TEXT), "tools": [MAGIC], "stream": True}),
    )
    received = []
    with pytest.raises(EventStreamError) as info:
        for event in response["Body"]:
            received.append(event["PayloadPart"]["Bytes"])
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    blocks = [b for b in b"".join(received).split(b"\n\n") if b]
    deltas = [json.loads(b[6:])["choices"][0]["delta"] for b in blocks]
    assert deltas[0]["tool_calls"][0]["function"]["name"] == "magic_function"
    assert len(deltas) == 2 and deltas[1]["tool_calls"][0]["function"]["arguments"]


def test_tool_result_answers_in_text(runtime_client: Any) -> None:
    whole = invoke(runtime_client, {"messages": user(MAGIC_TEXT), "tools": [MAGIC]})
    tool_call = whole["choices"][0]["message"]["tool_calls"][0]
    messages = [
        *user(MAGIC_TEXT),
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": tool_call["id"], "content": "5"},
    ]
    body = {"messages": messages, "tools": [MAGIC], "tool_choice": "required"}
    reply = invoke(runtime_client, body)
    (choice,) = reply["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Tool result: 5"}
    assert choice["finish_reason"] == "stop"
    records = stream_records(runtime_client, body)
    text = "".join(
        r["choices"][0]["delta"].get("content") or "" for r in records[:-1] if r["choices"]
    )
    assert text == "Tool result: 5"
    assert records[-2]["choices"][0]["finish_reason"] == "stop"


def test_tool_choice_none_answers_text(runtime_client: Any) -> None:
    body = {"messages": user(MAGIC_TEXT), "tools": [MAGIC], "tool_choice": "none"}
    message = invoke(runtime_client, body)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": f"Echo: {MAGIC_TEXT}"}


def test_auto_without_mention_answers_text(runtime_client: Any) -> None:
    body = {"messages": user("just chatting"), "tools": [MAGIC], "tool_choice": "auto"}
    assert invoke(runtime_client, body)["choices"][0]["message"]["content"] == "Echo: just chatting"


def test_tool_choice_required_and_named(runtime_client: Any) -> None:
    body: dict[str, Any] = {
        "messages": user("in Paris"),
        "tools": [WEATHER, MAGIC],
        "tool_choice": "required",
    }
    assert only_call(invoke(runtime_client, body)) == (
        "get_weather",
        {"city": "in Paris", "unit": "celsius"},
    )
    body["messages"] = user("city: Oslo via magic_function please")
    name, arguments = only_call(invoke(runtime_client, body))
    assert (name, arguments) == ("magic_function", {"input": 0})
    body["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
    assert only_call(invoke(runtime_client, body)) == (
        "get_weather",
        {"city": "Oslo", "unit": "celsius"},
    )


def test_structured_output_via_forced_tool(runtime_client: Any) -> None:
    body = {
        "messages": user("Tell me a joke about cats"),
        "tools": [JOKE],
        "tool_choice": {"type": "function", "function": {"name": "Joke"}},
    }
    name, arguments = only_call(invoke(runtime_client, body))
    assert name == "Joke" and set(arguments) == {"setup", "punchline"}
    assert all(isinstance(v, str) and v for v in arguments.values())


def test_unknown_named_tool_is_model_error(runtime_client: Any) -> None:
    body = {
        "messages": user("x"),
        "tools": [MAGIC],
        "tool_choice": {"type": "function", "function": {"name": "missing"}},
    }
    with pytest.raises(runtime_client.exceptions.ModelError) as info:
        invoke(runtime_client, body)
    response = info.value.response
    assert response["OriginalStatusCode"] == 400
    assert "missing" in json.loads(response["OriginalMessage"])["error"]["message"]


@pytest.mark.parametrize("endpoint", ["openai", "tgi", "lmi"])
def test_json_schema_response_format(runtime_client: Any, endpoint: str) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "Joke", "schema": JOKE_SCHEMA, "strict": True},
    }
    body = {"messages": user("Tell me a joke about cats"), "response_format": fmt}
    choice = invoke(runtime_client, body, endpoint)["choices"][0]
    assert choice["finish_reason"] == "stop"
    parsed = json.loads(choice["message"]["content"])
    assert set(JOKE_SCHEMA["required"]) <= set(parsed)
    assert all(isinstance(parsed[k], str) for k in JOKE_SCHEMA["required"])
    records = stream_records(runtime_client, body, endpoint)
    contents = [
        r["choices"][0]["delta"].get("content")
        for r in records
        if r != "[DONE]" and r["choices"] and r["choices"][0]["delta"].get("content")
    ]
    assert len(contents) > 3
    assert json.loads("".join(contents)) == parsed


def test_json_object_response_format(runtime_client: Any) -> None:
    body = {"messages": user("describe cats"), "response_format": {"type": "json_object"}}
    content = invoke(runtime_client, body)["choices"][0]["message"]["content"]
    assert json.loads(content) == {"echo": "describe cats"}
