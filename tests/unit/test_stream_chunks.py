"""Stream chunks built on the per-token fast paths equal the ones built field by field."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessageChunk

from sm_llm import _messages

_tool_deltas = st.lists(
    st.fixed_dictionaries({"index": st.integers(0, 2)}, optional={
        "id": st.text(max_size=3), "function": st.fixed_dictionaries({}, optional={
            "name": st.text(max_size=3), "arguments": st.text(max_size=5)})}),
    max_size=2,
)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=5), raw=_tool_deltas, reasoning=st.sampled_from(["", "think"]))
def test_a_chunk_equals_the_field_by_field_chunk(text: str, raw: list[dict[str, Any]], reasoning: str) -> None:
    built = _messages.chunk(text, raw, reasoning)
    reference = AIMessageChunk(
        content=text, additional_kwargs=_messages.reasoning_kwargs(reasoning),
        tool_call_chunks=_messages.tool_call_chunks(raw),
    )
    assert built == reference
    assert built.model_dump() == reference.model_dump()
    assert (built + built).model_dump() == (reference + reference).model_dump()
