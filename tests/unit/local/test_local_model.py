"""The deterministic echo model."""

from __future__ import annotations

from sm_llm.local._model import chat_prompt, generate


def test_echo_until_eos() -> None:
    g = generate("the quick fox", max_tokens=10, stop=[])
    assert g.tokens == ["Echo:", " the", " quick", " fox"]
    assert g.text == "Echo: the quick fox"
    assert (g.finish_reason, g.prompt_tokens, g.completion_tokens) == ("eos", 3, 4)


def test_max_tokens() -> None:
    g = generate("a b c d", max_tokens=2, stop=[])
    assert (g.text, g.finish_reason, g.completion_tokens) == ("Echo: a", "length", 2)
    exact = generate("a b", max_tokens=3, stop=[])
    assert (exact.text, exact.finish_reason) == ("Echo: a b", "length")


def test_stop_sequence_is_kept_in_text() -> None:
    g = generate("one two three four", max_tokens=20, stop=["thr"])
    assert g.text == "Echo: one two three"
    assert (g.finish_reason, g.stop_sequence, g.completion_tokens) == ("stop_sequence", "thr", 4)


def test_stop_spanning_tokens_and_greeting() -> None:
    assert generate("a b", max_tokens=9, stop=[": a"]).text == "Echo: a"
    assert generate("a b", max_tokens=9, stop=["Echo"]).completion_tokens == 1
    assert generate("a b", max_tokens=9, stop=["zzz", ""]).finish_reason == "eos"


def test_greeting_and_empty_prompt() -> None:
    g = generate("", max_tokens=5, stop=[], greeting="A:")
    assert (g.tokens, g.finish_reason, g.prompt_tokens) == (["A:"], "eos", 0)


def test_chat_prompt_uses_last_user_message_and_counts_all() -> None:
    prompt, words = chat_prompt(
        [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "last one"}]},
        ]
    )
    assert (prompt, words) == ("last one", 8)
