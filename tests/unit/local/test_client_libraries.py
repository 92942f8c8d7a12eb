"""The reference containers' streams, held against independent client libraries' own types.

``huggingface_hub``'s ``ChatCompletionStreamOutput`` (generated from TGI's specs) for the TGI
container's Messages API, ``openai``'s ``ChatCompletionChunk`` for the vLLM container. The
hub's ``parse_obj`` fills a missing field with None instead of failing, so the required
fields (those without a default) are checked here from the hub's own dataclass declarations.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

import pytest
from huggingface_hub import ChatCompletionStreamOutput
from openai.types.chat import ChatCompletionChunk

from sm_llm.local._containers import ContainerRequest, ModelInfo, invoke
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


def call(container: str, body: dict[str, Any]) -> bytes:
    request = ContainerRequest(json.dumps(body).encode(), {}, ModelInfo("m1"))
    response = invoke(CONTAINERS[container], request)  # type: ignore[index]
    assert response.status == 200, response.body()
    return response.body()


def stream(container: str, body: dict[str, Any]) -> bytes:
    return call(container, {**body, "stream": True})


def sse_payloads(data: bytes) -> list[str]:
    """Each event's data, requiring the ``data: `` prefix (with its space)."""
    events = [block for block in data.split(b"\n\n") if block]
    for event in events:
        assert event.startswith(b"data: "), event
    return [event[len(b"data: ") :].decode() for event in events]


def _hub_class(hint: Any) -> tuple[type | None, bool]:
    """The hub dataclass behind ``hint`` and whether it is a list of them."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if typing.get_origin(option) is list:
            (item,) = typing.get_args(option)
            if dataclasses.is_dataclass(item):
                return item, True
        elif dataclasses.is_dataclass(option):
            return option, False
    return None, False


def check_hub(cls: type, data: Any, path: str = "$") -> None:
    """``data`` has every field ``cls`` requires, with the declared scalar type."""
    assert isinstance(data, dict), f"{path}: {data!r} is not an object"
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        value = data.get(field.name)
        if value is None:
            assert not required, f"{path}.{field.name}: required by {cls.__name__}, missing"
            continue
        nested, many = _hub_class(hint)
        if nested is not None:
            for index, item in enumerate(value if many else [value]):
                check_hub(
                    nested,
                    item,
                    f"{path}.{field.name}[{index}]" if many else f"{path}.{field.name}",
                )
        elif hint in (str, int, float, bool) or isinstance(hint, types.UnionType):
            allowed = typing.get_args(hint) or (hint,)
            assert isinstance(value, tuple(t for t in allowed if t is not type(None))), (
                f"{path}.{field.name}: {value!r} is not {hint}"
            )


def hub_chunks(data: bytes) -> list[dict[str, Any]]:
    payloads = sse_payloads(data)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    for chunk in chunks:
        check_hub(ChatCompletionStreamOutput, chunk)
        ChatCompletionStreamOutput.parse_obj_as_instance(chunk)
    return chunks


# -- TGI Messages API (item 14, 15) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "finish"),
    [
        ({"messages": [{"role": "user", "content": "a b c d"}]}, "stop"),
        ({"messages": [{"role": "user", "content": "a b c d"}], "max_tokens": 3}, "length"),
    ],
)
def test_tgi_chat_stream_matches_huggingface_hub_types(body: dict[str, Any], finish: str) -> None:
    chunks = hub_chunks(stream("tgi", body))
    choices = [c["choices"][0] for c in chunks]
    assert all(c["delta"]["role"] == "assistant" for c in choices)
    assert "".join(c["delta"]["content"] for c in choices) == (
        "Echo: a b c d" if finish == "stop" else "Echo: a b"
    )
    # finish_reason rides on the last token's chunk: no empty delta after the text.
    assert [c["finish_reason"] for c in choices] == [None] * (len(choices) - 1) + [finish]
    assert choices[-1]["delta"]["content"] == ("" if finish == "stop" else " b")
    assert all(c["model"] == "m1" and c["object"] == "chat.completion.chunk" for c in chunks)


def test_tgi_chat_stream_usage_chunk_matches_huggingface_hub_types() -> None:
    body = {
        "messages": [{"role": "user", "content": "a b"}],
        "stream_options": {"include_usage": True},
    }
    chunks = hub_chunks(stream("tgi", body))
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_tgi_tool_call_stream_matches_huggingface_hub_types() -> None:
    chunks = hub_chunks(
        stream("tgi", {"messages": [{"role": "user", "content": MAGIC_TEXT}], "tools": [MAGIC]})
    )
    deltas = [c["choices"][0]["delta"] for c in chunks]
    calls = [d["tool_calls"][0] for d in deltas]
    assert all(d["role"] == "assistant" and len(d["tool_calls"]) == 1 for d in deltas)
    assert {(c["index"], c["type"]) for c in calls} == {(0, "function")}
    assert len({c["id"] for c in calls}) == 1
    # TGI names the function in the first delta only; arguments arrive in pieces.
    assert [c["function"]["name"] for c in calls] == ["magic_function"] + [None] * (len(calls) - 1)
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"input": 3}


def test_tgi_streams_write_data_with_a_space() -> None:
    """axum's ``Event::json_data`` / ``data`` (axum 0.7, TGI >= 2.1) write ``data: ``."""
    chat = stream("tgi", {"messages": [{"role": "user", "content": "hi"}]})
    assert chat.endswith(b"\n\ndata: [DONE]\n\n")
    generate = stream("tgi", {"inputs": "hi"})
    assert [json.loads(p)["token"]["text"] for p in sse_payloads(generate)] == [
        "Echo:",
        " hi",
        "</s>",
    ]


# -- vLLM (item 16) --------------------------------------------------------------------------


def openai_chunks(data: bytes) -> list[Any]:
    payloads = sse_payloads(data)
    assert payloads[-1] == "[DONE]"
    return [ChatCompletionChunk.model_validate_json(p) for p in payloads[:-1]]


def _per_choice(chunks: list[Any]) -> dict[int, tuple[str, list[str | None]]]:
    texts: dict[int, str] = {}
    finishes: dict[int, list[str | None]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            finishes.setdefault(choice.index, []).append(choice.finish_reason)
    return {i: (texts[i], finishes[i]) for i in texts}


def test_vllm_stream_with_n_streams_every_choice() -> None:
    body = {
        "messages": [{"role": "user", "content": "a b"}],
        "n": 2,
        "stream_options": {"include_usage": True},
    }
    chunks = openai_chunks(stream("openai", body))
    per_choice = _per_choice(chunks)
    assert sorted(per_choice) == [0, 1]
    for text, finishes in per_choice.values():
        assert text == "Echo: a b"
        assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    # The first chunk of each choice carries the role, as vLLM sends them.
    assert [c.choices[0].delta.role for c in chunks[:2]] == ["assistant", "assistant"]
    assert [c.choices[0].index for c in chunks[:2]] == [0, 1]
    whole = json.loads(call("openai", {"messages": body["messages"], "n": 2}))
    assert [c["message"]["content"] for c in whole["choices"]] == ["Echo: a b", "Echo: a b"]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 2 * 3
    assert whole["usage"]["completion_tokens"] == usage.completion_tokens


def test_vllm_tool_call_stream_with_n_streams_every_choice() -> None:
    body = {"messages": [{"role": "user", "content": MAGIC_TEXT}], "tools": [MAGIC], "n": 2}
    chunks = openai_chunks(stream("openai", body))
    calls: dict[int, list[Any]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            calls.setdefault(choice.index, []).extend(choice.delta.tool_calls or [])
    assert sorted(calls) == [0, 1]
    ids = set()
    for deltas in calls.values():
        ids.add(deltas[0].id)
        assert deltas[0].function.name == "magic_function"
        assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"input": 3}
    assert len(ids) == 2


def test_vllm_chunks_match_openai_types() -> None:
    body = {
        "messages": [{"role": "user", "content": "a b"}],
        "stream_options": {"include_usage": True},
    }
    chunks = openai_chunks(stream("openai", body))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: a b"
    tools = openai_chunks(
        stream("openai", {"messages": [{"role": "user", "content": MAGIC_TEXT}], "tools": [MAGIC]})
    )
    assert tools[-1].choices[0].finish_reason == "tool_calls"
