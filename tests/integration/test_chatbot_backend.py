"""examples/chatbot_backend.py when the model fails: the server answers 502 with the error
(before any reply byte) or cuts a started reply off, and the client says so in one line —
never ``ValueError: invalid literal for int() with base 16: b''``."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sm_llm import ChatSageMaker
from sm_llm.local import FaultConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def chatbot() -> Iterator[ModuleType]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("chatbot_backend")
    finally:
        sys.path.remove(str(EXAMPLES))


async def test_model_failures_reach_the_client_as_errors(chatbot: ModuleType, local_endpoint: Any, sm_transport: str) -> None:
    async with ChatSageMaker(
        endpoint_name="openai", content_handler="openai", endpoint_url=local_endpoint.url, max_retries=0,
        transport=sm_transport,
    ) as chat:
        app = chatbot.ChatServer(chat)
        server = await asyncio.start_server(app.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            local_endpoint.faults = FaultConfig(fail_next=["ModelError"])
            with pytest.raises(chatbot.ChatFailed, match=r"502 Bad Gateway.*ModelError"):
                await asyncio.wait_for(chatbot.ask(port, "bob", "hello"), 30)

            local_endpoint.faults = FaultConfig(stream_error_after_tokens=2)
            with pytest.raises(chatbot.ChatFailed, match="cut off after 'Echo: hello'"):
                await asyncio.wait_for(chatbot.ask(port, "bob", "hello there friend"), 30)

            local_endpoint.faults = FaultConfig()
            assert await asyncio.wait_for(chatbot.ask(port, "bob", "hi"), 30) == "Echo: hi"
            assert len(app.history["bob"]) == 2  # failed turns are not kept
