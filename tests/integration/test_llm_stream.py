"""SageMakerLLM streaming through real boto3 → event stream → local endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from sm_llm import ContentHandler, StreamError

STREAMING = ["tgi", "lmi", "openai", "jumpstart", "jumpstart-chat", "text2text"]
PROMPT = "stream 🦜 this 你好世界 text please"
EXPECTED = "Echo:" + "".join(" " + w for w in PROMPT.split())


@pytest.mark.parametrize("preset", STREAMING)
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_stream_every_preset_with_random_splits(make_llm: Any, local_endpoint: Any, fault: Any, preset: str, seed: int | None) -> None:
    local_endpoint.faults = fault(stream_split_seed=seed, stream_max_part=7)
    llm = make_llm(preset, content_handler=preset)
    pieces = list(llm.stream(PROMPT))
    assert "".join(pieces) == EXPECTED
    assert local_endpoint.requests[-1].operation == "InvokeEndpointWithResponseStream"
    if preset in ("tgi", "lmi", "openai"):
        assert len([p for p in pieces if p]) >= 5  # token by token, not one blob


@pytest.mark.parametrize("preset", ["tgi", "lmi", "openai"])
def test_stream_without_trailing_newline(make_llm: Any, local_endpoint: Any, fault: Any, preset: str) -> None:
    local_endpoint.faults = fault(stream_omit_trailing_newline=True, stream_split_seed=5)
    started = time.monotonic()
    assert "".join(make_llm(preset, content_handler=preset).stream(PROMPT)) == EXPECTED
    assert time.monotonic() - started < 5  # flushed at end of stream, never a hang


@pytest.mark.parametrize("preset", ["tgi", "lmi", "openai"])
@pytest.mark.parametrize("seed", [None, 11, 12])
def test_stop_sequence_straddling_chunks(make_llm: Any, local_endpoint: Any, fault: Any, preset: str, seed: int | None) -> None:
    local_endpoint.faults = fault(stream_split_seed=seed, stream_max_part=3)
    llm = make_llm(preset, content_handler=preset, max_tokens=64)
    # The model emits " ST" then... no: words are tokens; "xSTOPy" arrives as one token, and
    # "ST" + "OP" arrive in consecutive tokens when the prompt has them as separate words.
    text = "".join(llm.stream("before ST OP after", stop=["ST OP"]))
    assert text == "Echo: before "
    text = "".join(llm.stream("alpha beta. gamma", stop=["."]))
    assert text == "Echo: alpha beta"


def test_streaming_flag_makes_invoke_stream(make_llm: Any, local_endpoint: Any) -> None:
    tokens: list[str] = []

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    llm = make_llm("tgi", streaming=True)
    assert llm.invoke("a b c", config={"callbacks": [Collect()]}) == "Echo: a b c"
    assert local_endpoint.requests[-1].operation == "InvokeEndpointWithResponseStream"
    assert "".join(tokens) == "Echo: a b c" and len([t for t in tokens if t]) == 4


@pytest.mark.parametrize("error_type", ["ModelStreamError", "InternalStreamFailure"])
def test_mid_stream_error_keeps_partial_text(make_llm: Any, local_endpoint: Any, fault: Any, error_type: str) -> None:
    local_endpoint.faults = fault(stream_error_after_tokens=3, stream_error_type=error_type)
    received: list[str] = []
    with pytest.raises(StreamError) as info:
        for piece in make_llm("tgi").stream("one two three four five"):
            received.append(piece)
    assert info.value.partial_text == "".join(received) == "Echo: one two"
    assert info.value.error_code == error_type
    assert len(local_endpoint.requests) == 1  # never retried after the first token


def test_early_exit_closes_the_connection(make_llm: Any, local_endpoint: Any, fault: Any) -> None:
    local_endpoint.faults = fault(token_delay_ms=20)
    stream = make_llm("tgi", max_tokens=200).stream(" ".join(f"w{i}" for i in range(200)))
    first = next(stream)
    assert first == "Echo:"
    stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not local_endpoint.requests[-1].client_disconnected:
        time.sleep(0.02)
    assert local_endpoint.requests[-1].client_disconnected


@pytest.mark.serial  # timing-sensitive: run alone, after the parallel run
def test_stop_closes_the_stream_at_once(make_llm: Any, local_endpoint: Any, fault: Any) -> None:
    # A handler that does not forward stop sequences: only the client can stop this stream.
    tgi = ContentHandler.from_preset("tgi")
    no_server_stop = tgi.model_copy(update={"parameters": {**tgi.parameters, "stop": None}})
    local_endpoint.faults = fault(token_delay_ms=20)
    words = " ".join(["go", "STOP"] + [f"w{i}" for i in range(200)])
    started = time.monotonic()
    llm = make_llm("tgi", content_handler=no_server_stop, max_tokens=300)
    assert "".join(llm.stream(words, stop=["STOP"])) == "Echo: go "
    assert "stop" not in json.loads(local_endpoint.requests[-1].body)["parameters"]
    assert time.monotonic() - started < 2  # did not wait for the 200 tokens after the stop
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not local_endpoint.requests[-1].client_disconnected:
        time.sleep(0.02)
    assert local_endpoint.requests[-1].client_disconnected


async def test_astream(make_llm: Any, local_endpoint: Any, fault: Any) -> None:
    local_endpoint.faults = fault(stream_split_seed=9)
    pieces = [p async for p in make_llm("openai", content_handler="openai").astream(PROMPT)]
    assert "".join(pieces) == EXPECTED


def test_stream_metadata_in_final_chunk(make_llm: Any) -> None:
    llm = make_llm("tgi", max_tokens=2)
    chunks = list(llm._stream("a b c"))
    info = chunks[-1].generation_info
    assert info["finish_reason"] == "length"
    assert info["usage"]["completion_tokens"] == 2
    assert info["invoked_production_variant"] == "AllTraffic"


class _Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


@pytest.mark.parametrize("preset", ["tgi", "lmi", "openai"])
@pytest.mark.parametrize("kind", ["llm", "chat"])
async def test_no_empty_chunks_the_last_one_carries_the_metadata(
    local_endpoint: Any, fault: Any, preset: str, kind: str, sm_transport: str
) -> None:
    from sm_llm import ChatSageMaker, SageMakerLLM

    local_endpoint.faults = fault(stream_split_seed=5)
    fields: dict[str, Any] = {"endpoint_name": preset, "content_handler": preset, "endpoint_url": local_endpoint.url,
                              "region_name": "us-east-1", "max_tokens": 3, "transport": sm_transport}
    if kind == "chat" and preset != "openai":
        fields["chat_template"] = "chatml"
    model: Any = SageMakerLLM(**fields) if kind == "llm" else ChatSageMaker(**fields)
    sync, asynchronous = _Tokens(), _Tokens()
    chunks = list(model.stream("a b c d", config={"callbacks": [sync]}))
    achunks = [c async for c in model.astream("a b c d", config={"callbacks": [asynchronous]})]
    for got, seen in ((chunks, sync), (achunks, asynchronous)):
        texts = [c if isinstance(c, str) else c.content for c in got]
        assert texts and all(texts), texts  # no '' chunk, at the end or anywhere
        assert seen.tokens == texts
        if kind == "chat":
            last = got[-1]
            assert last.chunk_position == "last"
            assert last.response_metadata["finish_reason"] == "length"
            if preset != "lmi":  # the lmi preset's stream reports no usage
                assert last.usage_metadata is not None and last.usage_metadata["output_tokens"] == 3
    if kind == "llm":
        generation = model.generate(["a b c d"]).generations[0][0]
        streamed = SageMakerLLM(**fields, streaming=True).generate(["a b c d"]).generations[0][0]
        assert streamed.text == generation.text
        assert streamed.generation_info["finish_reason"] == "length"
