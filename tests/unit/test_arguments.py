"""Arguments are never dropped or sent by accident: unknown constructor fields and
per-call keyword arguments are refused with a suggestion, langchain-aws's
``endpoint_kwargs`` map onto the routing fields, and a chat template that a
messages handler would ignore is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from sm_llm import ChatSageMaker, ConfigurationError, SageMakerEmbeddings, SageMakerLLM, load_config
from sm_llm._routing import INVOKE, STREAM


def llm(**fields: Any) -> SageMakerLLM:
    return SageMakerLLM(endpoint_name="tgi", region_name="us-east-1", **fields)


def body(model: Any, value: Any = "hi", operation: Any = INVOKE, **kwargs: Any) -> Any:
    return json.loads(model.prepare_request(value, operation=operation, **kwargs).params["Body"])


# -- constructor fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named", "suggested"),
    [
        ({"max_token": 5}, "max_token", "max_tokens"),
        ({"tempreature": 0.1}, "tempreature", "temperature"),
        ({"max_new_tokens": 5}, "max_new_tokens", "max_tokens"),
        ({"target_modle": "a.tar.gz"}, "target_modle", "target_model"),
        ({"region": "us-east-1"}, "region", "region_name"),
    ],
)
def test_unknown_field_refused_with_suggestion(fields: dict[str, Any], named: str, suggested: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"unknown field: {named} \(did you mean [^)]*\b{suggested}\b"):
        llm(**fields)


def test_every_unknown_field_named_at_once() -> None:
    with pytest.raises(ConfigurationError) as info:
        llm(max_token=5, tempreature=0.1)
    assert "unknown fields: max_token (did you mean max_tokens?); tempreature (did you mean temperature?)" in str(info.value)
    assert "model_kwargs" in str(info.value)


@pytest.mark.parametrize("cls", [ChatSageMaker, SageMakerEmbeddings])
def test_other_adapters_refuse_unknown_fields(cls: Any) -> None:
    with pytest.raises(ConfigurationError, match="unknown field: endpoint_nam "):
        cls(endpoint_name="x", endpoint_nam="y")


@pytest.mark.parametrize(
    ("name", "hint"), [("api_key", "AWS credentials"), ("model", "endpoint_name, target_model"), ("model_name", "endpoint_name")]
)
def test_standard_names_sagemaker_has_not_explain_themselves(name: str, hint: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"unknown field: {name} \(.*{hint}"):
        ChatSageMaker(endpoint_name="x", **{name: "v"})


def test_langchain_fields_and_aliases_still_accepted() -> None:
    model = llm(
        stop_sequences=["\n"], base_url="http://127.0.0.1:9", tags=["t"], metadata={"m": 1},
        verbose=False, callbacks=None, cache=False, name="n",
    )
    assert model.stop == ["\n"] and model.endpoint_url == "http://127.0.0.1:9" and model.tags == ["t"]
    chat = ChatSageMaker(endpoint_name="x", disable_streaming=True, output_version="v0", rate_limiter=None)
    assert chat.disable_streaming is True


# -- endpoint_kwargs (langchain-aws) -------------------------------------------------


def test_endpoint_kwargs_map_onto_routing_fields() -> None:
    model = llm(endpoint_kwargs={
        "CustomAttributes": "accept_eula=true", "TargetVariant": "blue", "InferenceComponentName": "ic-1",
        "TargetContainerHostname": "c1", "InferenceId": "id-1", "EnableExplanations": "`true`",
        "SessionId": "s-1", "TargetModel": "m.tar.gz",
    })
    assert (model.custom_attributes, model.target_variant, model.inference_component_name) == (
        "accept_eula=true", "blue", "ic-1"
    )
    params = model.prepare_request("hi", operation=INVOKE).params
    assert params["CustomAttributes"] == "accept_eula=true"
    assert params["TargetModel"] == "m.tar.gz" and params["SessionId"] == "s-1"
    assert params["EnableExplanations"] == "`true`" and params["InferenceId"] == "id-1"
    assert "endpoint_kwargs" not in model.to_config()  # stored as the routing fields it names
    assert model.to_config()["custom_attributes"] == "accept_eula=true"


def test_endpoint_kwargs_field_names_accepted_too() -> None:
    assert llm(endpoint_kwargs={"custom_attributes": "a=1"}).custom_attributes == "a=1"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("CustomAttribute", r"'CustomAttribute' is not a routing option .*did you mean CustomAttributes\?"),
        ("Accept", "comes from the content handler"),
        ("ContentType", "comes from the content handler"),
        ("EndpointName", "use endpoint_name="),
        ("Foo", "known keys: TargetModel, .*CustomAttributes"),
    ],
)
def test_endpoint_kwargs_unknown_keys_refused(key: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        llm(endpoint_kwargs={key: "x"})


def test_endpoint_kwargs_conflict_and_type() -> None:
    with pytest.raises(ConfigurationError, match="target_variant is given twice"):
        llm(target_variant="a", endpoint_kwargs={"TargetVariant": "b"})
    assert llm(target_variant="a", endpoint_kwargs={"TargetVariant": "a"}).target_variant == "a"
    with pytest.raises(ConfigurationError, match="endpoint_kwargs must be a mapping"):
        llm(endpoint_kwargs="CustomAttributes=x")
    with pytest.raises(ConfigurationError, match="custom_attributes="):  # values are validated as usual
        llm(endpoint_kwargs={"CustomAttributes": "a=\n"})


# -- per-call keyword arguments ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named", "suggested"),
    [
        ({"max_token": 2}, "max_token", "max_tokens"),
        ({"target_modle": "b.tar.gz"}, "target_modle", "target_model"),
        ({"max_new_tokens": 2}, "max_new_tokens", "max_tokens"),
        ({"stop_sequence": ["x"]}, "stop_sequence", "stop"),
    ],
)
@pytest.mark.parametrize("operation", [INVOKE, STREAM])
def test_unknown_call_kwarg_refused(kwargs: dict[str, Any], named: str, suggested: str, operation: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        body(llm(), operation=operation, **kwargs)
    text = str(info.value)
    assert f"unknown keyword argument for SageMakerLLM: {named} (did you mean " in text
    assert suggested in text.split(named, 1)[1].split(")")[0]
    assert f"model_kwargs={{{named!r}: ...}}" in text


def test_call_model_kwargs_reach_the_body_as_they_are() -> None:
    model = llm(model_kwargs={"max_new_tokens": 9, "do_sample": False})
    sent = body(model, model_kwargs={"do_sample": True, "top_k": 5}, max_tokens=3, target_variant="blue")
    assert sent["parameters"] == {"details": True, "max_new_tokens": 3, "do_sample": True, "top_k": 5}
    assert body(model, temperature=0.5)["parameters"]["temperature"] == 0.5
    with pytest.raises(ConfigurationError, match="model_kwargs must be a mapping"):
        body(model, model_kwargs=["top_k"])


def test_langchain_stream_flag_is_not_sent() -> None:
    chat = ChatSageMaker(endpoint_name="x")
    sent = body(chat, [HumanMessage("hi")], stream=False)
    assert "stream" not in sent


def test_bound_unknown_kwarg_refused_at_call() -> None:
    with pytest.raises(ConfigurationError, match="unknown keyword argument for SageMakerLLM: max_token "):
        llm().bind(max_token=2).invoke("hi")


def test_chat_call_kwargs_suggest_chat_names() -> None:
    chat = ChatSageMaker(endpoint_name="x")
    with pytest.raises(ConfigurationError, match=r"tool \(did you mean tools"):
        body(chat, [HumanMessage("hi")], tool=[])


# -- chat templates a messages handler would ignore ----------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"chat_template": "llama3"}, "chat_template"), ({"chat_template_kwargs": {"bos_token": "<s>"}}, "chat_template_kwargs")],
)
def test_chat_template_with_messages_handler_refused(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{named} would be ignored: content handler 'openai' sends"):
        ChatSageMaker(endpoint_name="x", content_handler="openai", **fields)


def test_chat_template_with_messages_handler_refused_in_yaml() -> None:
    with pytest.raises(ConfigurationError, match=r"chat_template: chat_template would be ignored"):
        load_config({"kind": "chat", "endpoint_name": "x", "content_handler": "openai", "chat_template": "llama3"})


def test_chat_template_with_text_handler_still_works() -> None:
    chat = ChatSageMaker(endpoint_name="x", content_handler="tgi", chat_template="llama3")
    assert "<|start_header_id|>user" in body(chat, [HumanMessage("hi")])["inputs"]
