"""Property tests (hypothesis): handlers, the YAML loader and the local endpoint's parsing.

The stream decoder has its own in test_decoding_props.py. Examples per property:
``SM_LLM_HYPOTHESIS_EXAMPLES`` (default 100; set e.g. 5000 for a long run).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sm_llm import ConfigurationError, ContentHandler, load_config
from sm_llm.errors import ModelError, ResponseParseError, StreamError, StreamParseError
from sm_llm.handlers import list_presets
from sm_llm.local._containers import ContainerRequest, ContainerResponse, invoke
from sm_llm.local._routing import CONTAINERS
from sm_llm.local._validation import validate_request

EXAMPLES = int(os.environ.get("SM_LLM_HYPOTHESIS_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXT_PRESETS = [p for p in list_presets() if "embeddings" not in p and p != "tei"]
# Any valid Unicode except lone surrogates (refused deliberately; see test_handlers.py).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | text
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12)
parameters = st.dictionaries(st.text(st.characters(categories=("L", "N"), max_codepoint=0x7F), min_size=1, max_size=12), json_values, max_size=5)


@FUZZ
@given(st.sampled_from(TEXT_PRESETS), text, parameters, st.booleans())
def test_handlers_always_render_valid_json_holding_the_prompt(name: str, prompt: str, params: dict[str, Any], stream: bool) -> None:
    handler = ContentHandler.from_preset(name)
    body = handler.render_request(prompt, parameters=params, stream=stream)
    decoded = json.loads(body.decode("utf-8"))
    assert prompt in _strings(decoded)


@FUZZ
@given(st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]), "content": text}), min_size=1, max_size=5))
def test_messages_render_exactly(messages: list[dict[str, str]]) -> None:
    body = json.loads(ContentHandler.from_preset("openai").render_request(messages=messages))
    assert body["messages"] == messages


_NOT_JSON = object()


def _json_or_not(document: bytes | str) -> Any:
    try:
        return json.loads(document)
    except (ValueError, RecursionError):
        return _NOT_JSON


@FUZZ
@given(st.sampled_from(TEXT_PRESETS), st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_parse_response_returns_what_the_body_holds_or_raises_typed(name: str, body: bytes) -> None:
    """Every preset expects JSON: anything else is a ResponseParseError; a JSON reply is kept
    as ``raw`` and its text is one of the reply's strings, the JSON of one of its values, or
    empty beside tool calls; an error the container reported is a ModelError."""
    data = _json_or_not(body)
    try:
        out = ContentHandler.from_preset(name).parse_response(body)
    except ResponseParseError:
        return
    except ModelError:
        assert data is not _NOT_JSON
        return
    assert data is not _NOT_JSON, body
    assert json.dumps(out.raw) == json.dumps(data)
    dumped = {json.dumps(value, ensure_ascii=False) for value in _values(data)}
    assert (out.text == "" and out.tool_calls) or out.text in _strings(data) or out.text in dumped, (out, data)


@FUZZ
@given(st.sampled_from(TEXT_PRESETS), st.text(max_size=300) | json_values.map(json.dumps))
def test_parse_stream_record_returns_what_the_record_holds_or_raises_typed(name: str, record: str) -> None:
    """A record that is not JSON is a StreamParseError; a JSON record's text is empty or one
    of its strings, and ``raw`` is the record; an error in the stream is a StreamError."""
    handler = ContentHandler.from_preset(name)
    assert handler.stream is not None and handler.stream.format in ("sse", "jsonl")
    data = _json_or_not(record)
    try:
        delta = handler.parse_stream_record(record)
    except StreamParseError:
        assert data is _NOT_JSON or isinstance(data, float)  # NaN/Infinity are refused: not JSON
        return
    except StreamError:
        assert data is not _NOT_JSON
        return
    assert data is not _NOT_JSON, record
    assert json.dumps(delta.raw) == json.dumps(data)
    assert delta.text == "" or delta.text in _strings(data), (delta, data)


FIELDS = ["kind", "endpoint_name", "content_handler", "max_tokens", "temperature", "stop", "model_kwargs",
          "target_variant", "custom_attributes", "chat_template", "models", "defaults", "region_name", "bogus"]
config_docs = st.recursive(
    json_scalars | st.sampled_from(["llm", "chat", "tgi", "openai", "llama3", "ep-1", "${HOME}", "${NOPE_SM}", "${X:-1}"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS) | text, inner, max_size=6),
    max_leaves=15,
)


@FUZZ
@given(config_docs)
def test_yaml_loader_returns_an_adapter_or_configuration_error(document: Any) -> None:
    import yaml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source in (document, yaml.safe_dump(document)):
            try:
                usable = isinstance(source, dict) or (isinstance(source, str) and source.strip())
                adapter = load_config(source) if usable else None
            except ConfigurationError:
                continue
            if adapter is not None:
                config = adapter.to_config()
                assert config["kind"] in ("llm", "chat", "embeddings")
                assert load_config(config).to_config() == config  # what it saves, it loads


@FUZZ
@given(st.text(max_size=300))
def test_yaml_loader_answers_arbitrary_text_with_located_one_line_problems(source: str) -> None:
    """Arbitrary YAML text: an adapter, or a ConfigurationError whose every problem starts with
    where it is (``<string>``); text PyYAML itself refuses, or that is no mapping, is never an
    adapter (one problem then). One line each: see test_yaml_reader_errors_are_one_line."""
    import yaml

    text = source + "\n"  # always YAML text, never a path
    try:
        parsed: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = _NOT_JSON
    try:
        adapter = load_config(text)
    except ConfigurationError as exc:
        assert exc.problems and str(exc)
        for problem in exc.problems:
            assert problem.startswith("<string>") and "\n" not in problem, exc.problems
        if not isinstance(parsed, dict):
            assert len(exc.problems) == 1
        return
    assert isinstance(parsed, dict), source
    assert adapter.to_config()["kind"] in ("llm", "chat", "embeddings")


def test_yaml_reader_errors_are_one_line() -> None:
    """Found by the property above: a control character is one line naming its line, like
    every other problem (the CLI prints each)."""
    with pytest.raises(ConfigurationError) as info:
        load_config("kind: llm\nendpoint_name: a\x08\n")
    assert info.value.problems == (
        "<string>:2: not valid YAML: unacceptable character #x0008: special characters are not allowed",
    )


@FUZZ
@given(st.sampled_from(sorted(CONTAINERS)), st.binary(max_size=400) | json_values.map(lambda v: json.dumps(v).encode()), st.booleans())
def test_local_containers_answer_any_body(container: Any, body: bytes, streaming: bool) -> None:
    response = invoke(CONTAINERS[container], ContainerRequest(body=body, headers={}, streaming_api=streaming))
    assert isinstance(response, ContainerResponse)
    assert 200 <= response.status < 600


@FUZZ
@given(
    st.sampled_from(["InvokeEndpoint", "InvokeEndpointWithResponseStream", "InvokeEndpointAsync"]),
    text,
    st.dictionaries(st.sampled_from([
        "x-amzn-sagemaker-target-model", "x-amzn-sagemaker-target-variant", "x-amzn-sagemaker-custom-attributes",
        "x-amzn-sagemaker-inference-id", "x-amzn-sagemaker-session-id", "x-amzn-sagemaker-inference-component",
        "content-type", "accept",
    ]), text, max_size=5),
    st.integers(0, 7_000_000),
)
def test_local_request_validation_never_crashes(operation: str, name: str, headers: dict[str, str], length: int) -> None:
    message = validate_request(operation, name, headers, length)
    assert message is None or re.match(r"^[1-9]\d* validation errors? detected: ", message), message


def _values(value: Any) -> list[Any]:
    """``value`` and every value nested in it."""
    if isinstance(value, list):
        return [value, *(v for item in value for v in _values(item))]
    if isinstance(value, dict):
        return [value, *(v for item in value.values() for v in _values(item))]
    return [value]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []
