"""get_num_tokens: the model's own tokenizer, or a clear error — never GPT-2's guess."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm.errors import ConfigurationError

TOKENIZER = {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
    "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
    "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2}, "unk_token": "[UNK]"},
}


def _model_dir(tmp_path: Path, with_tokenizer: bool) -> Path:
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": "{{ messages[0]['content'] }}", "eos_token": "</s>"}))
    if with_tokenizer:
        (tmp_path / "tokenizer.json").write_text(json.dumps(TOKENIZER))
    return config


@pytest.mark.parametrize(
    "adapter",
    [
        lambda: SageMakerLLM(endpoint_name="ep", region_name="us-east-1"),
        lambda: ChatSageMaker(endpoint_name="ep", region_name="us-east-1", content_handler="tgi", chat_template="llama3"),
        lambda: ChatSageMaker(endpoint_name="ep", region_name="us-east-1", content_handler="openai"),
    ],
    ids=["llm", "chat-preset-template", "chat-messages"],
)
def test_without_a_tokenizer_counting_is_a_clear_error_not_gpt2(adapter: object) -> None:
    model = adapter()  # type: ignore[operator]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Using fallback GPT-2 tokenizer" warning
        with pytest.raises(ConfigurationError, match=r"cannot count tokens.*custom_get_token_ids"):
            model.get_num_tokens("hello world")


def test_a_chat_template_config_without_tokenizer_json_is_a_clear_error(tmp_path: Path) -> None:
    chat = ChatSageMaker(endpoint_name="ep", region_name="us-east-1", content_handler="tgi",
                         chat_template=str(_model_dir(tmp_path, with_tokenizer=False)))
    with pytest.raises(ConfigurationError, match=r"its tokenizer\.json beside it"):
        chat.get_num_tokens("hello")


def test_custom_get_token_ids_wins() -> None:
    llm = SageMakerLLM(endpoint_name="ep", region_name="us-east-1", custom_get_token_ids=lambda t: [7] * len(t))
    assert llm.get_num_tokens("abc") == 3


def test_the_tokenizer_beside_the_chat_templates_config_counts(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    chat = ChatSageMaker(endpoint_name="ep", region_name="us-east-1", content_handler="tgi",
                         chat_template=str(_model_dir(tmp_path, with_tokenizer=True)))
    assert chat.get_token_ids("hello world again") == [1, 2, 0]
    assert chat.get_num_tokens("hello hello world") == 3
    (tmp_path / "tokenizer.json").write_text("{not json")  # a changed file is read again
    broken = ChatSageMaker(endpoint_name="ep", region_name="us-east-1", content_handler="tgi",
                           chat_template=str(tmp_path / "tokenizer_config.json"))
    with pytest.raises(ConfigurationError, match="cannot load the tokenizer"):
        broken.get_num_tokens("hello")
