"""Reference containers write each preset's real wire format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sm_llm.local._containers import (
    ContainerRequest,
    ContainerResponse,
    ModelInfo,
    invoke,
    parse_custom_attributes,
)
from sm_llm.local._jumpstart import EULA_MESSAGE
from sm_llm.local._routing import CONTAINERS


def call(
    name: str, body: Any, headers: dict[str, str] | None = None, model: ModelInfo | None = None
) -> ContainerResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = ContainerRequest(raw, headers or {}, model or ModelInfo())
    return invoke(CONTAINERS[name], request)  # type: ignore[index]


def body_json(response: ContainerResponse) -> Any:
    return json.loads(response.body())


def sse_events(data: bytes, prefix: bytes) -> list[Any]:
    events = []
    for block in data.split(b"\n\n"):
        if block:
            assert block.startswith(prefix), block
            payload = block[len(prefix) :]
            events.append(payload if payload == b"[DONE]" else json.loads(payload))
    return events


# -- TGI -------------------------------------------------------------------------------------


def test_tgi_plain_and_details() -> None:
    r = call("tgi", {"inputs": "a b c"})
    assert (r.status, r.content_type) == (200, "application/json")
    assert body_json(r) == [{"generated_text": "Echo: a b c"}]
    r = call("tgi", {"inputs": "a b c", "parameters": {"max_new_tokens": 2, "details": True}})
    (result,) = body_json(r)
    assert result["generated_text"] == "Echo: a"
    details = result["details"]
    assert details["finish_reason"] == "length"
    assert details["generated_tokens"] == 2
    assert details["seed"] is None and details["prefill"] == []
    assert [t["text"] for t in details["tokens"]] == ["Echo:", " a"]
    assert set(details["tokens"][0]) == {"id", "text", "logprob", "special"}


def test_tgi_default_max_new_tokens_is_20() -> None:
    words = " ".join(f"w{i}" for i in range(40))
    (result,) = body_json(call("tgi", {"inputs": words, "parameters": {"details": True}}))
    assert result["details"]["generated_tokens"] == 20


def test_tgi_stop_sequence_kept() -> None:
    r = call("tgi", {"inputs": "a b c", "parameters": {"stop": [" b"], "details": True}})
    (result,) = body_json(r)
    assert result["generated_text"] == "Echo: a b"
    assert result["details"]["finish_reason"] == "stop_sequence"


def test_tgi_stream_eos() -> None:
    r = call("tgi", {"inputs": "a b", "stream": True})
    assert r.content_type == "text/event-stream"
    data = r.body()
    assert b"[DONE]" not in data
    events = sse_events(data, b"data: ")  # axum 0.7 (TGI >= 2.1) writes the space
    assert [e["index"] for e in events] == [1, 2, 3, 4]
    assert [e["token"]["text"] for e in events] == ["Echo:", " a", " b", "</s>"]
    assert events[-1]["token"]["special"] is True
    assert all(e["generated_text"] is None and e["details"] is None for e in events[:-1])
    assert events[-1]["generated_text"] == "Echo: a b"
    assert events[-1]["details"] == {
        "finish_reason": "eos_token",
        "generated_tokens": 3,
        "seed": None,
        "input_length": 2,
    }


def test_tgi_stream_length_has_no_special_token() -> None:
    events = sse_events(
        call("tgi", {"inputs": "a b c", "stream": True, "parameters": {"max_new_tokens": 2}}).body(),
        b"data: ",
    )
    assert [e["token"]["text"] for e in events] == ["Echo:", " a"]
    assert events[-1]["details"]["finish_reason"] == "length"


@pytest.mark.parametrize("body", [{"inputs": ["x"]}, {"nothing": 1}, b"not json"])
def test_tgi_validation_error_is_422(body: Any) -> None:
    r = call("tgi", body)
    assert r.status == 422
    assert body_json(r)["error_type"] == "validation"


def test_tgi_messages_api_uses_openai_format() -> None:
    r = call(
        "tgi",
        {"messages": [{"role": "user", "content": "hi you"}], "stream": True},
        model=ModelInfo(model_id="m1"),
    )
    events = sse_events(r.body(), b"data: ")
    assert events[-1] == b"[DONE]"
    assert {e["choices"][0]["delta"]["role"] for e in events[:-1]} == {"assistant"}
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    assert text == "Echo: hi you"
    assert events[0]["model"] == "m1"
    whole = body_json(call("tgi", {"messages": [{"role": "user", "content": "x"}]}))
    assert whole["object"] == "chat.completion" and "system_fingerprint" in whole


# -- LMI -------------------------------------------------------------------------------------


def test_lmi_object_reply_and_details() -> None:
    assert body_json(call("lmi", {"inputs": "x y"})) == {"generated_text": "Echo: x y"}
    words = " ".join(f"w{i}" for i in range(40))
    result = body_json(call("lmi", {"inputs": words, "parameters": {"details": True}}))
    assert result["details"]["generated_tokens"] == 30
    assert result["details"]["inputs"] == words
    assert set(result["details"]["tokens"][0]) == {"id", "text", "log_prob"}


def test_lmi_stop_sequences_and_stream() -> None:
    r = call(
        "lmi",
        {"inputs": "a b c", "stream": True, "parameters": {"stop_sequences": [" b"]}},
    )
    assert r.content_type == "application/jsonlines"
    lines = [json.loads(line) for line in r.body().decode().splitlines()]
    assert [line["token"]["text"] for line in lines] == ["Echo:", " a", " b"]
    assert "generated_text" not in lines[0]
    assert lines[-1]["generated_text"] == "Echo: a b"
    assert lines[-1]["details"] == {
        "finish_reason": "stop_sequence",
        "generated_tokens": 3,
        "inputs": "a b c",
    }


def test_lmi_chat_streams_bare_json_lines() -> None:
    r = call("lmi", {"messages": [{"role": "user", "content": "q"}], "stream": True})
    assert r.content_type == "application/jsonlines"
    data = r.body()
    assert b"data:" not in data and b"[DONE]" not in data
    chunks = [json.loads(line) for line in data.decode().splitlines()]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "role" in chunks[0]["choices"][0]["delta"]
    assert "role" not in chunks[1]["choices"][0]["delta"]


def test_lmi_error() -> None:
    r = call("lmi", {"prompt_missing": True})
    assert r.status == 400 and "error" in body_json(r)


# -- OpenAI ----------------------------------------------------------------------------------


def test_openai_chat_completion() -> None:
    r = call(
        "openai",
        {
            "messages": [{"role": "system", "content": "s s"}, {"role": "user", "content": "a b c"}],
            "max_tokens": 3,
        },
        model=ModelInfo(model_id="served"),
    )
    body = body_json(r)
    assert body["object"] == "chat.completion" and body["model"] == "served"
    assert body["id"].startswith("chatcmpl-") and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Echo: a b"}
    assert choice["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_openai_removes_stop_text() -> None:
    body = body_json(
        call("openai", {"messages": [{"role": "user", "content": "a bx d"}], "stop": ["x"]})
    )
    assert body["choices"][0]["message"]["content"] == "Echo: a b"
    assert body["choices"][0]["finish_reason"] == "stop"


def test_openai_stream_with_usage_and_done() -> None:
    r = call(
        "openai",
        {
            "messages": [{"role": "user", "content": "a bx d"}],
            "stop": "x",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.content_type == "text/event-stream"
    events = sse_events(r.body(), b"data: ")
    assert events[-1] == b"[DONE]"
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 3
    final = events[-3]["choices"][0]
    assert final["finish_reason"] == "stop"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2])
    assert text == "Echo: a b"


def test_openai_stream_without_usage() -> None:
    events = sse_events(
        call("openai", {"messages": [{"role": "user", "content": "x"}], "stream": True}).body(),
        b"data: ",
    )
    assert all(e == b"[DONE]" or e["choices"] for e in events)


def test_openai_completions() -> None:
    body = body_json(call("openai", {"prompt": "p q r s t", "max_tokens": 2}))
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "Echo: p"


@pytest.mark.parametrize(
    "body",
    [{"messages": []}, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, {"x": 1}],
)
def test_openai_errors(body: Any) -> None:
    r = call("openai", body)
    assert r.status == 400
    assert set(body_json(r)["error"]) == {"message", "type", "param", "code"}


# -- JumpStart / text2text -------------------------------------------------------------------


def test_jumpstart_text() -> None:
    r = call("jumpstart", {"inputs": "a b", "parameters": {"max_new_tokens": 2}})
    assert body_json(r) == [{"generation": "Echo: a"}]
    full = call("jumpstart", {"inputs": "a", "parameters": {"return_full_text": True}})
    assert body_json(full) == [{"generation": "aEcho: a"}]


def test_jumpstart_chat_requires_eula() -> None:
    body = {"inputs": [[{"role": "user", "content": "hello"}]]}
    refused = call("jumpstart-chat", body)
    assert refused.status == 400
    assert body_json(refused)["message"] == EULA_MESSAGE
    attrs = {"x-amzn-sagemaker-custom-attributes": "accept_eula=false;accept_eula=true"}
    ok = call("jumpstart-chat", body, attrs)
    assert body_json(ok) == [{"generation": {"role": "assistant", "content": "Echo: hello"}}]
    assert ok.headers["x-amzn-sagemaker-custom-attributes"] == attrs[
        "x-amzn-sagemaker-custom-attributes"
    ]


@pytest.mark.parametrize(
    "dialog",
    [
        [{"role": "assistant", "content": "x"}],
        [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}],
        [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
         {"role": "assistant", "content": "a"}],
    ],
)
def test_jumpstart_chat_roles_must_alternate(dialog: list[dict[str, str]]) -> None:
    attrs = {"x-amzn-sagemaker-custom-attributes": "accept_eula=true"}
    assert call("jumpstart-chat", {"inputs": [dialog]}, attrs).status == 400


def test_text2text() -> None:
    r = call("text2text", {"text_inputs": "a b c", "max_length": 2})
    assert body_json(r) == {"generated_texts": ["Echo: a"]}
    assert call("text2text", {"inputs": "x"}).status == 400


def test_custom_attributes_parsing() -> None:
    assert parse_custom_attributes("a=1; b = 2;a=3;junk") == {"a": "3", "b": "2"}


def test_greeting_per_model() -> None:
    body = body_json(call("tgi", {"inputs": "x"}, model=ModelInfo(greeting="B:")))
    assert body == [{"generated_text": "B: x"}]
