"""``with_structured_output(method="json_mode")`` through real boto3 to the local endpoint.

JSON mode sends only ``{"type": "json_object"}``: the prompt names the keys, as in
LangChain's own example, and the local echo model answers with those keys.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

PROMPT = "Tell me a joke about cats, respond in JSON with `setup` and `punchline` keys"


class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


@pytest.mark.parametrize("endpoint", ["openai", "tgi", "lmi"])
def test_json_mode_answers_the_keys_the_prompt_asks_for(make_chat: Any, local_endpoint: Any, endpoint: str) -> None:
    chat = make_chat(endpoint, max_retries=2)
    joke = chat.with_structured_output(Joke, method="json_mode").invoke(PROMPT)
    assert isinstance(joke, Joke) and joke.setup == PROMPT
    assert json.loads(local_endpoint.requests[-1].body)["response_format"] == {"type": "json_object"}
    chunks = list(chat.bind(response_format={"type": "json_object"}).stream(PROMPT))
    assert set(json.loads("".join(str(c.content) for c in chunks))) == {"setup", "punchline"}
