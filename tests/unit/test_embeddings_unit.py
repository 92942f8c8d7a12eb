"""SageMakerEmbeddings without a network: presets, reply parsing, validation, reference model."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest
from langchain_tests.unit_tests import EmbeddingsUnitTests

from sm_llm import ConfigurationError, ContentHandler, ModelError, ResponseParseError
from sm_llm.embeddings import SageMakerEmbeddings
from sm_llm.local._containers import ContainerRequest, ContainerResponse, ModelInfo, invoke
from sm_llm.local._embeddings import DIMENSION, TEI_MAX_BATCH, embed_text
from sm_llm.local._routing import CONTAINERS

PRESETS = ["tei", "openai-embeddings", "jumpstart-embeddings"]

HOSTILE = [
    'He said "hi"',
    "back\\slash \\n not a newline",
    "line1\nline2\r\nline3\ttab",
    "nul\x00byte",
    "emoji 🦜🔥 and CJK 你好世界 and combining e\u0301",
    "{{ 7*7 }}",
    "{% raw %}x{% endraw %}",
    "{{ ''.__class__.__mro__ }}",
    "</script><b>&amp;'",
    "\u2028\u2029",
    "",
    "content",
]

# Where each preset puts the batch of texts.
TEXTS_PATH = {
    "tei": lambda b: b["inputs"],
    "openai-embeddings": lambda b: b["input"],
    "jumpstart-embeddings": lambda b: b["text_inputs"],
}


def make(preset: str | dict[str, Any] = "tei", **fields: Any) -> SageMakerEmbeddings:
    return SageMakerEmbeddings(
        endpoint_name="emb", content_handler=preset, region_name="us-east-1", **fields
    )


def bodies(embeddings: SageMakerEmbeddings, texts: list[str]) -> list[Any]:
    return [json.loads(request.params["Body"]) for request, _ in embeddings._requests(texts)]


def parse(embeddings: SageMakerEmbeddings, body: bytes, expected: int) -> list[list[float]]:
    """A reply body through the same parsing ``_call`` applies, then the vectors check."""
    return embeddings._vectors(embeddings._reply_handler.parse_response(body), expected)


# -- construction ------------------------------------------------------------------------


def test_defaults_and_no_client_at_construction() -> None:
    embeddings = SageMakerEmbeddings(endpoint_name="emb", region_name="us-east-1")
    assert embeddings.handler.name == "tei"
    assert (embeddings.batch_size, embeddings.max_concurrency) == (32, 8)
    assert embeddings._engine is None  # the engine (and its clients) come with the first call


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_are_embedding_handlers(preset: str) -> None:
    handler = ContentHandler.from_preset(preset)
    assert handler.input == "texts" and handler.stream is None
    # A bare prompt (CLI `render`, packaging check) is a batch of one.
    assert TEXTS_PATH[preset](json.loads(handler.render_request("hi"))) == ["hi"]


def test_text_handler_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="input: texts"):
        make("tgi")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"inference_component_name": "bad_name"}, "inference_component_name"),
        (
            {
                "content_handler": {
                    "request_template": "{}",
                    "input": "messages",
                    "response": {"text": "a[?"},
                }
            },
            "JMESPath",
        ),
    ],
)
def test_bad_fields_are_configuration_errors(fields: dict[str, Any], match: str) -> None:
    fields.setdefault("content_handler", "tei")
    with pytest.raises(ConfigurationError, match=match):
        SageMakerEmbeddings(endpoint_name="emb", region_name="us-east-1", **fields)


@pytest.mark.parametrize(
    "field",
    [
        {"temperature": 0.5},
        {"max_tokens": 9},
        {"top_p": 0.9},
        {"stop": ["x"]},
        {"streaming": True},
        {"async_inference": {"inline_body": True}},
    ],
)
def test_fields_embeddings_do_not_honour_are_refused(field: dict[str, Any]) -> None:
    (name,) = field
    with pytest.raises(ConfigurationError, match=rf"SageMakerEmbeddings got unknown field: {name}\b"):
        make("tei", **field)


def test_embeddings_cannot_submit_jobs() -> None:
    assert not hasattr(make(), "submit")  # async jobs are for text generation only
    assert not hasattr(make(), "open_session")


# -- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_hostile_texts_reach_the_body_exactly_and_in_order(preset: str) -> None:
    (body,) = bodies(make(preset), HOSTILE)
    assert TEXTS_PATH[preset](body) == HOSTILE
    raw = make(preset)._requests(["{{ 7*7 }}"])[0][0].params["Body"]
    assert b"49" not in raw


@pytest.mark.parametrize("preset", PRESETS)
def test_lone_surrogate_is_refused_before_sending(preset: str) -> None:
    with pytest.raises(ConfigurationError, match="lone surrogate"):
        make(preset)._requests(["ok", "bad \ud800 text"])


def test_batches_split_in_order() -> None:
    texts = [f"t{i}" for i in range(70)]
    requests = make("tei", batch_size=32)._requests(texts)
    assert [n for _, n in requests] == [32, 32, 6]
    joined = [t for request, _ in requests for t in json.loads(request.params["Body"])["inputs"]]
    assert joined == texts
    assert make()._requests([]) == []


def test_model_kwargs_reach_the_body_and_generation_fields_do_not() -> None:
    (body,) = bodies(make("tei", model_kwargs={"truncate": True, "normalize": False}), ["a"])
    assert body == {"inputs": ["a"], "truncate": True, "normalize": False}
    (body,) = bodies(
        make("openai-embeddings", model_kwargs={"model": "bge", "dimensions": 8}), ["a"]
    )
    assert body == {"input": ["a"], "encoding_format": "float", "model": "bge", "dimensions": 8}
    (body,) = bodies(make("jumpstart-embeddings"), ["a", "b"])
    assert body == {"text_inputs": ["a", "b"]}


@pytest.mark.parametrize("preset", PRESETS)
def test_a_parameter_cannot_replace_the_texts(preset: str) -> None:
    key = {"tei": "inputs", "openai-embeddings": "input", "jumpstart-embeddings": "text_inputs"}
    (body,) = bodies(make(preset, model_kwargs={key[preset]: "injected"}), ["a"])
    assert TEXTS_PATH[preset](body) == ["a"]


def test_routing_and_content_types_are_per_instance() -> None:
    embeddings = make(
        "tei", inference_component_name="ic-tei", custom_attributes={"a": 1}, target_variant="v1"
    )
    ((request, _),) = embeddings._requests(["a"])
    params = request.params
    assert params["EndpointName"] == "emb"
    assert params["InferenceComponentName"] == "ic-tei"
    assert params["CustomAttributes"] == "a=1"
    assert params["TargetVariant"] == "v1"
    assert params["ContentType"] == params["Accept"] == "application/json"


def test_body_over_6_mib_is_refused_before_sending() -> None:
    with pytest.raises(ConfigurationError, match="6 MiB"):
        make("tei", batch_size=4)._requests(["x" * 2_000_000] * 4)
    # The same texts in smaller batches fit.
    assert len(make("tei", batch_size=2)._requests(["x" * 2_000_000] * 4)) == 2


def test_non_string_text_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"texts\[1\] is int"):
        make()._requests(["a", 3])  # type: ignore[list-item]


# -- replies -------------------------------------------------------------------------------


def test_parse_tei() -> None:
    assert parse(make("tei"), b"[[0.5, 1], [-1e-3, 2.0]]", 2) == [[0.5, 1.0], [-0.001, 2.0]]


def test_parse_jumpstart() -> None:
    body = b'{"embedding": [[0.1, 0.2], [0.3, 0.4]]}'
    assert parse(make("jumpstart-embeddings"), body, 2) == [[0.1, 0.2], [0.3, 0.4]]


def test_openai_vectors_are_ordered_by_index() -> None:
    reply = {
        "object": "list",
        "model": "m",
        "data": [
            {"index": 2, "object": "embedding", "embedding": [2.0]},
            {"index": 0, "object": "embedding", "embedding": [0.0]},
            {"index": 1, "object": "embedding", "embedding": [1.0]},
        ],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    assert parse(make("openai-embeddings"), json.dumps(reply).encode(), 3) == [[0.0], [1.0], [2.0]]


@pytest.mark.parametrize(
    ("preset", "body", "match"),
    [
        ("tei", b"[[0.1], [0.2]]", "2 vectors for 3 input texts"),
        ("tei", b"[[0.1], [0.2], [0.3], [0.4]]", "4 vectors for 3 input texts"),
        ("tei", b'[[0.1], ["x"], [0.3]]', "vector 1 is not"),
        ("tei", b"[[0.1], [], [0.3]]", "vector 1 is not"),
        ("tei", b"[[0.1], [true], [0.3]]", "vector 1 is not"),
        ("tei", b"[[0.1], 0.2, [0.3]]", "vector 1 is not"),
        ("tei", b'{"vectors": []}', "no array of vectors"),
        ("jumpstart-embeddings", b'{"embeddings": [[1.0]]}', "no array of vectors"),
        ("openai-embeddings", b'{"object": "list"}', "cannot select the vectors"),
        (
            "openai-embeddings",
            b'{"data": [{"embedding": [1.0]}, {"index": 0, "embedding": [1.0]}, {"index": 1}]}',
            "cannot select",
        ),
        ("openai-embeddings", b'{"data": [{"index": 0, "embedding": [1.0]}]}', "1 vectors for 3"),
        ("tei", b"<html>oops</html>", "not JSON"),
    ],
)
def test_bad_replies_are_response_parse_errors(preset: str, body: bytes, match: str) -> None:
    with pytest.raises(ResponseParseError, match=match) as info:
        parse(make(preset), body, 3)
    assert info.value.body_snippet


def test_error_field_in_a_200_reply_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="overloaded"):
        parse(make("tei"), b'{"error": "overloaded", "error_type": "overloaded"}', 1)


def test_vectors_are_not_stringified_by_the_handler() -> None:
    parsed = make("tei")._reply_handler.parse_response(b"[[0.25]]")
    assert parsed.text == "" and parsed.raw == [[0.25]]


@pytest.mark.parametrize("declared", ["texts", "messages"])  # "messages": the earlier spelling
def test_custom_handler_following_the_convention(declared: str) -> None:
    handler = {
        "name": "mine",
        "input": declared,
        "request_template": '{{ {"texts": messages | map(attribute="content") | list} | tojson }}',
        "response": {"text": "results[*].vector"},
    }
    embeddings = make(handler)
    assert bodies(embeddings, ["a", "b"]) == [{"texts": ["a", "b"]}]
    body = b'{"results": [{"vector": [1]}, {"vector": [2]}]}'
    assert parse(embeddings, body, 2) == [[1.0], [2.0]]


# -- the reference model and containers ---------------------------------------------------


def call(name: str, body: Any) -> ContainerResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return invoke(CONTAINERS[name], ContainerRequest(raw, {}, ModelInfo()))  # type: ignore[index]


def test_reference_model_is_deterministic_and_normalised() -> None:
    vector = embed_text("hello")
    assert vector == embed_text("hello") != embed_text("hello ")
    assert len(vector) == DIMENSION
    assert math.isclose(math.fsum(x * x for x in vector), 1.0)
    assert all(-1.0 <= x <= 1.0 for x in embed_text("hello", normalize=False))
    short = embed_text("hello", dimensions=4)
    assert len(short) == 4 and math.isclose(math.fsum(x * x for x in short), 1.0)
    assert len(embed_text("lone \ud800")) == DIMENSION  # JSON may carry one


def test_tei_container() -> None:
    reply = call("tei", {"inputs": ["a", "b"]})
    assert reply.status == 200 and json.loads(reply.body()) == [embed_text("a"), embed_text("b")]
    assert json.loads(call("tei", {"inputs": "a"}).body()) == [embed_text("a")]
    raw = json.loads(call("tei", {"inputs": ["a"], "normalize": False, "dimensions": 3}).body())
    assert raw == [embed_text("a", dimensions=3, normalize=False)]


def test_openai_embeddings_container() -> None:
    reply = json.loads(call("openai-embeddings", {"input": ["a b", "c"], "model": "bge"}).body())
    assert [d["index"] for d in reply["data"]] == [0, 1]
    assert reply["data"][1]["embedding"] == embed_text("c")
    assert reply["model"] == "bge" and reply["usage"]["prompt_tokens"] == 3
    encoded = json.loads(
        call("openai-embeddings", {"input": "a", "encoding_format": "base64"}).body()
    )
    data = base64.b64decode(encoded["data"][0]["embedding"])
    decoded = struct.unpack(f"<{DIMENSION}f", data)
    assert all(
        math.isclose(x, y, rel_tol=1e-6) for x, y in zip(decoded, embed_text("a"), strict=True)
    )


def test_jumpstart_embeddings_container() -> None:
    reply = json.loads(call("jumpstart-embeddings", {"text_inputs": ["a", "b"]}).body())
    assert reply == {"embedding": [embed_text("a"), embed_text("b")]}
    assert json.loads(call("jumpstart-embeddings", {"text_inputs": "a"}).body()) == {
        "embedding": embed_text("a")
    }


@pytest.mark.parametrize(
    ("name", "body", "status", "needle"),
    [
        ("tei", {"inputs": []}, 400, "cannot be empty"),
        ("tei", {"inputs": ["x"] * (TEI_MAX_BATCH + 1)}, 422, "maximum allowed batch size 32"),
        ("tei", {"inputs": ["a", 1]}, 422, "list of strings"),
        ("tei", {"text": ["a"]}, 422, "missing field `inputs`"),
        ("tei", {"inputs": ["a"], "normalize": "yes"}, 422, "normalize"),
        ("tei", {"inputs": ["a"], "dimensions": 99}, 422, "dimensions"),
        ("tei", b"{not json", 422, "deserialize"),
        ("openai-embeddings", {"input": [["a"]]}, 400, "list of strings"),
        ("openai-embeddings", {"input": []}, 400, "must not be empty"),
        ("openai-embeddings", {"input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
        ("openai-embeddings", {"messages": []}, 400, "input"),
        ("jumpstart-embeddings", {"inputs": ["a"]}, 400, "text_inputs"),
        ("jumpstart-embeddings", {"text_inputs": [None]}, 400, "list of strings"),
    ],
)
def test_container_errors(name: str, body: Any, status: int, needle: str) -> None:
    reply = call(name, body)
    assert reply.status == status
    assert needle in reply.body().decode()


# -- langchain-tests' standard unit suite -----------------------------------------------------


class TestSageMakerEmbeddingsStandardUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[SageMakerEmbeddings]:
        return SageMakerEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"endpoint_name": "my-endpoint", "region_name": "us-east-1"}
