"""Tool calling and structured output in the OpenAI-format container: generator and rules."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from sm_llm.local._containers import ContainerRequest, ContainerResponse, ModelInfo, invoke
from sm_llm.local._openai import ChatValidationError, choose_tool, schema_instance
from sm_llm.local._routing import CONTAINERS

MAGIC: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "magic_function",
        "description": "Apply a magic function to an input.",
        "parameters": {
            "type": "object",
            "properties": {"input": {"type": "integer"}},
            "required": ["input"],
        },
    },
}
MAGIC_TEXT = "What is the value of magic_function(3)? Use the tool."


def tool(name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "description": name}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def call(name: str, body: Any) -> ContainerResponse:
    request = ContainerRequest(json.dumps(body).encode(), {}, ModelInfo())
    return invoke(CONTAINERS[name], request)  # type: ignore[index]


def reply(body: Any, container: str = "openai") -> Any:
    response = call(container, body)
    assert response.status == 200, response.body()
    return json.loads(response.body())


def records(data: bytes, prefix: bytes = b"data: ") -> list[Any]:
    out = []
    for block in data.split(b"\n\n"):
        if block:
            assert block.startswith(prefix), block
            payload = block[len(prefix) :]
            out.append(payload if payload == b"[DONE]" else json.loads(payload))
    return out


# -- schema_instance -------------------------------------------------------------------------


def test_magic_function_takes_first_integer() -> None:
    assert schema_instance(MAGIC["function"]["parameters"], MAGIC_TEXT) == {"input": 3}


@pytest.mark.parametrize(
    ("schema", "text", "expected"),
    [
        ({"type": "integer"}, "go -12 then 5", -12),
        ({"type": "integer"}, "no digits", 0),
        ({"type": "number"}, "pi is 3.14", 3.14),
        ({"type": "number"}, "seven 7", 7.0),
        ({"type": "number"}, "none", 0.0),
        ({"type": "boolean"}, "anything", True),
        ({"type": "null"}, "x", None),
        ({"type": "string"}, "hello there", "hello there"),
        ({}, "untyped", "untyped"),
        ({"type": ["null", "integer"]}, "n 4", 4),
        ({"type": "integer", "minimum": 10}, "3", 10),
        ({"type": "integer", "exclusiveMaximum": 3}, "9", 2),
        ({"type": "number", "maximum": 1.5}, "9", 1.5),
        ({"type": "string", "maxLength": 5}, "abcdefgh", "abcde"),
        ({"type": "string", "minLength": 3}, "", "xxx"),
        ({"type": "string", "enum": ["red", "green"]}, "blue", "red"),
        ({"const": "fixed", "type": "string"}, "other", "fixed"),
        ({"type": "integer", "default": 42}, "7", 42),
        ({"anyOf": [{"type": "null"}, {"type": "integer"}]}, "n=8", 8),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "8", "8"),
        ({"anyOf": [{"type": "null"}]}, "x", None),
        ({"type": "array", "items": {"type": "integer"}}, "5", []),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, "5", [5, 5]),
        ({"type": "object"}, "x", {}),
    ],
)
def test_scalar_and_container_rules(schema: dict[str, Any], text: str, expected: Any) -> None:
    value = schema_instance(schema, text)
    assert value == expected and type(value) is type(expected)


def test_only_required_properties_are_generated() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "string", "default": "dflt"},
            "c": {"type": "boolean"},
        },
        "required": ["c", "a"],
    }
    assert schema_instance(schema, "take 9") == {"c": True, "a": 9}


def test_required_property_with_default_uses_default() -> None:
    schema = {"properties": {"k": {"type": "string", "default": "d"}}, "required": ["k"]}
    assert schema_instance(schema, "text") == {"k": "d"}


def test_named_values_override_per_property() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string"},
            "days": {"type": "integer"},
            "a": {"type": "integer"},
            "b": {"type": "integer"},
            "verbose": {"type": "boolean"},
            "note": {"type": "string"},
        },
        "required": ["city", "unit", "days", "a", "b", "verbose", "note"],
    }
    text = "Weather for City: Paris, unit='deg C' days=x a=1 b=2 verbose=false."
    assert schema_instance(schema, text) == {
        "city": "Paris",
        "unit": "deg C",
        "days": 1,  # 'x' is no integer: falls back to the first integer
        "a": 1,
        "b": 2,
        "verbose": False,
        "note": text,
    }


class Color(StrEnum):
    BLUE = "blue"
    RED = "red"


class Joke(BaseModel):
    setup: str
    punchline: str
    rating: int | None = None


class Inner(BaseModel):
    count: int = Field(ge=1)
    color: Color
    mode: Literal["fast", "slow"]


class Outer(BaseModel):
    inner: Inner
    maybe: Inner | None
    items: list[Inner] = Field(min_length=1)
    jokes: list[Joke]
    optional: Joke | None = None


def test_pydantic_joke() -> None:
    value = schema_instance(Joke.model_json_schema(), "Tell me a joke about cats")
    assert value == {"setup": "Tell me a joke about cats", "punchline": "Tell me a joke about cats"}
    Joke.model_validate(value)


def test_pydantic_refs_defs_anyof_enum_nested_arrays() -> None:
    schema = Outer.model_json_schema()
    assert "$defs" in schema
    value = schema_instance(schema, "make 0 of them")
    inner = {"count": 1, "color": "blue", "mode": "fast"}
    assert value == {"inner": inner, "maybe": inner, "items": [inner], "jokes": []}
    Outer.model_validate(value)


def test_ref_siblings_and_allof_merge() -> None:
    schema = {
        "definitions": {
            "Base": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
            "Name": {"type": "string"},
        },
        "allOf": [
            {"$ref": "#/definitions/Base"},
            {
                "properties": {"y": {"$ref": "#/definitions/Name", "default": "why"}},
                "required": ["y"],
            },
        ],
    }
    assert schema_instance(schema, "5") == {"x": 5, "y": "why"}


def test_recursive_required_ref_stops() -> None:
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"child": {"$ref": "#/$defs/Node"}},
                "required": ["child"],
            }
        },
        "$ref": "#/$defs/Node",
    }
    value = schema_instance(schema, "x")
    depth = 0
    while isinstance(value, dict):
        value, depth = value["child"], depth + 1
    assert value is None and depth > 3


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "#/$defs/Missing"}, "unresolvable"),
        ({"$ref": "https://example.com/schema.json"}, "only local"),
        ({"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}, "cycle"),
    ],
)
def test_bad_refs(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ChatValidationError, match=message):
        schema_instance(schema, "x")


# -- choose_tool -----------------------------------------------------------------------------

NAMES = ["get_weather", "magic_function", "magic_function_no_args"]


@pytest.mark.parametrize(
    ("choice", "text", "expected"),
    [
        ("none", "call get_weather now", None),
        (None, "call GET_WEATHER now", "get_weather"),
        ("auto", "call get_weather now", "get_weather"),
        ("auto", "nothing relevant", None),
        (None, "magic_function_no_args() please", "magic_function_no_args"),
        (None, "magic_function(3) and get_weather", "get_weather"),
        ("required", "nothing relevant", "get_weather"),
        ("required", "use magic_function", "magic_function"),
        ("any", "nothing relevant", "get_weather"),
        (
            {"type": "function", "function": {"name": "magic_function"}},
            "get_weather",
            "magic_function",
        ),
        ("magic_function", "x", "magic_function"),
    ],
)
def test_choose_tool(choice: Any, text: str, expected: str | None) -> None:
    assert choose_tool(NAMES, choice, text) == expected


@pytest.mark.parametrize(
    ("names", "choice", "message"),
    [
        (NAMES, {"type": "function", "function": {"name": "nope"}}, "has not been passed"),
        (NAMES, "nope", "has not been passed"),
        ([], "required", "needs a non-empty"),
        (NAMES, {"type": "function"}, "tool_choice"),
        (NAMES, 3, "invalid"),
    ],
)
def test_choose_tool_errors(names: list[str], choice: Any, message: str) -> None:
    with pytest.raises(ChatValidationError, match=message):
        choose_tool(names, choice, "x")


# -- container replies -----------------------------------------------------------------------


def test_tool_call_reply_and_usage() -> None:
    body = reply({"messages": user(MAGIC_TEXT), "tools": [MAGIC]})
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["role"] == "assistant" and message["content"] is None
    (tool_call,) = message["tool_calls"]
    assert tool_call["id"].startswith("call_") and tool_call["type"] == "function"
    assert tool_call["function"]["name"] == "magic_function"
    assert json.loads(tool_call["function"]["arguments"]) == {"input": 3}
    # name + ceil(len('{"input": 3}') / 8) argument deltas
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["prompt_tokens"] == 9


def test_no_parameters_means_empty_arguments() -> None:
    body = reply({"messages": user("x"), "tools": [tool("ping")], "tool_choice": "required"})
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_n_choices_get_distinct_call_ids() -> None:
    body = reply({"messages": user(MAGIC_TEXT), "tools": [MAGIC], "n": 2})
    ids = [c["message"]["tool_calls"][0]["id"] for c in body["choices"]]
    assert len(set(ids)) == 2


def test_tool_call_stream_pieces_count_as_tokens() -> None:
    text = "magic_function 2 input=7"
    parameters = {
        "type": "object",
        "properties": {"input": {"type": "integer"}, "label": {"type": "string"}},
        "required": ["input", "label"],
    }
    body = {
        "messages": user(text),
        "tools": [tool("magic_function", parameters)],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    pieces = list(call("openai", body).pieces)
    events = records(b"".join(p.data for p in pieces))
    assert events[-1] == b"[DONE]"
    chunks = events[:-1]
    header = chunks[0]["choices"][0]["delta"]
    assert header["role"] == "assistant" and header["content"] is None
    assert header["tool_calls"][0]["function"] == {"name": "magic_function", "arguments": ""}
    assert header["tool_calls"][0]["index"] == 0 and header["tool_calls"][0]["type"] == "function"
    arguments = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-2]
    ]
    assert all(0 < len(a) <= 8 for a in arguments)
    assert json.loads("".join(arguments)) == {"input": 7, "label": text}
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 1 + len(
        arguments
    )
    assert [p.token for p in pieces] == [True] * (1 + len(arguments)) + [False, False, False]


# TGI swallows the end-of-sequence token after a call's JSON: its stream has no finish_reason.
@pytest.mark.parametrize(
    ("container", "prefix", "finish"), [("tgi", b"data: ", None), ("lmi", None, "tool_calls")]
)
def test_tool_call_stream_in_tgi_and_lmi_framing(
    container: str, prefix: bytes | None, finish: str | None
) -> None:
    body = {"messages": user(MAGIC_TEXT), "tools": [MAGIC], "stream": True}
    data = call(container, body).body()
    if prefix is None:
        chunks = [json.loads(line) for line in data.splitlines()]
    else:
        chunks = [r for r in records(data, prefix) if r != b"[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    arguments = "".join(t["function"]["arguments"] for d in deltas for t in d.get("tool_calls", []))
    assert json.loads(arguments) == {"input": 3}
    assert chunks[-1]["choices"][0]["finish_reason"] == finish


def test_tool_call_in_tgi_whole_reply() -> None:
    body = reply({"messages": user(MAGIC_TEXT), "tools": [MAGIC]}, "tgi")
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "magic_function"
    assert body["system_fingerprint"]


def test_tool_results_since_last_assistant() -> None:
    messages = [
        *user("magic_function(3)"),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a"}]},
        {"role": "tool", "tool_call_id": "a", "content": "old"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "b"}, {"id": "c"}]},
        {"role": "tool", "tool_call_id": "b", "content": "5"},
        {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "x  y"}]},
    ]
    named = {"type": "function", "function": {"name": "magic_function"}}
    body = reply({"messages": messages, "tools": [MAGIC], "tool_choice": named})
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Tool result: 5; x  y"}
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 5


def test_tool_result_text_honours_max_tokens_and_stop() -> None:
    messages = [*user("q"), {"role": "tool", "tool_call_id": "a", "content": "one two three"}]
    body = reply({"messages": messages, "max_tokens": 3})
    assert body["choices"][0]["message"]["content"] == "Tool result: one"
    assert body["choices"][0]["finish_reason"] == "length"
    body = reply({"messages": messages, "stop": ["two"]})
    assert body["choices"][0]["message"]["content"] == "Tool result: one "
    assert body["choices"][0]["finish_reason"] == "stop"


def test_tool_choice_none_and_unmentioned_auto_answer_text() -> None:
    body = {"messages": user("hello magic"), "tools": [MAGIC], "tool_choice": "none"}
    assert reply(body)["choices"][0]["message"] == {"role": "assistant", "content": "Echo: hello magic"}
    body = {"messages": user("hello there"), "tools": [MAGIC], "tool_choice": "auto"}
    assert reply(body)["choices"][0]["message"] == {"role": "assistant", "content": "Echo: hello there"}


def test_auto_matches_a_distinctive_part_of_the_tool_name() -> None:
    body = {"messages": user("any magic today?"), "tools": [MAGIC], "tool_choice": "auto"}
    assert reply(body)["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "magic_function"
    # Generic verbs do not count: "get" alone never selects get_weather.
    assert choose_tool(["get_weather"], "auto", "get me a coffee") is None
    assert choose_tool(["get_weather"], "auto", "What is the weather in Paris?") == "get_weather"


def test_json_mode_uses_keys_named_in_the_prompt() -> None:
    body = reply({"messages": user("Return JSON with 'setup' and 'punchline' keys."), "response_format": {"type": "json_object"}})
    assert set(json.loads(body["choices"][0]["message"]["content"])) == {"setup", "punchline"}


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        # LangChain's own json_mode example names the keys in backticks.
        ("Tell me a joke about cats, respond in JSON with `setup` and `punchline` keys", ["setup", "punchline"]),
        ("Answer in JSON with keys setup and punchline.", ["setup", "punchline"]),
        ("Reply as JSON with the fields name, age and city", ["name", "age", "city"]),
        ("A JSON object with title, year keys please", ["title", "year"]),
        ("keys: a_b, c", ["a_b", "c"]),
        ("Give JSON with the name key", ["name"]),
    ],
)
def test_json_mode_reads_keys_in_backticks_or_listed_plainly(text: str, keys: list[str]) -> None:
    body = reply({"messages": user(text), "response_format": {"type": "json_object"}})
    assert list(json.loads(body["choices"][0]["message"]["content"])) == keys


def test_json_schema_and_json_object_content() -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "Joke", "schema": Joke.model_json_schema()},
    }
    body = reply({"messages": user("Tell me a joke about cats"), "response_format": fmt})
    content = body["choices"][0]["message"]["content"]
    assert Joke.model_validate_json(content).setup == "Tell me a joke about cats"
    assert body["usage"]["completion_tokens"] == len(content.split())
    fmt = {"type": "json_object"}
    body = reply({"messages": user("a  b"), "response_format": fmt})
    assert json.loads(body["choices"][0]["message"]["content"]) == {"echo": "a  b"}
    fmt = {
        "type": "json_object",
        "value": {"properties": {"n": {"type": "integer"}}, "required": ["n"]},
    }
    body = reply({"messages": user("n is 4"), "response_format": fmt}, "tgi")
    assert json.loads(body["choices"][0]["message"]["content"]) == {"n": 4}


def test_tool_call_beats_response_format() -> None:
    fmt = {"type": "json_object"}
    body = reply({"messages": user(MAGIC_TEXT), "tools": [MAGIC], "response_format": fmt})
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_json_schema_stream_splits_like_text() -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "Joke", "schema": Joke.model_json_schema()},
    }
    body = {"messages": user("cats"), "response_format": fmt, "stream": True}
    chunks = [r for r in records(call("openai", body).body()) if r != b"[DONE]"]
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert deltas == ['{"setup":', ' "cats",', ' "punchline":', ' "cats"}']


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tools": {"x": 1}}, "'tools' must be a list"),
        ({"tools": [{"type": "function"}]}, "each tool must be"),
        ({"tools": [tool("t", [])]}, "'parameters' must be an object"),  # type: ignore[arg-type]
        (
            {"tools": [MAGIC], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "has not been passed",
        ),
        ({"response_format": {"type": "xml"}}, "unsupported response_format"),
        ({"response_format": "json"}, "'response_format' must be an object"),
        ({"response_format": {"type": "json_schema"}}, "needs a 'json_schema' object"),
    ],
)
def test_bad_requests_are_400(extra: dict[str, Any], message: str) -> None:
    response = call("openai", {"messages": user("x"), **extra})
    assert response.status == 400
    assert message in json.loads(response.body())["error"]["message"]


def test_tgi_reports_bad_tool_choice_as_422() -> None:
    response = call("tgi", {"messages": user("x"), "tools": [MAGIC], "tool_choice": "nope"})
    assert response.status == 422
    assert json.loads(response.body())["error_type"] == "validation"
