"""A chatbot backend on asyncio: per-conversation history, replies streamed as they arrive.

    POST /chat/<conversation-id>   body: the user's message   →   chunked text/plain stream
                                   (502 with the error when the model call fails)

Standard library only (asyncio streams); in production put ChatSageMaker behind
FastAPI/Starlette the same way. Run as a script it starts the server, holds a
two-turn conversation with it over real HTTP, and stops.
"""

import asyncio
import sys
from collections import defaultdict

from _endpoint import endpoint
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from sm_llm import ChatSageMaker
from sm_llm.errors import SageMakerError

SYSTEM = SystemMessage("You are a concise assistant.")


class ChatServer:
    """Keeps each conversation's history and streams the model's replies."""

    def __init__(self, chat: ChatSageMaker, max_turns: int = 20) -> None:
        self.chat = chat
        self.max_turns = max_turns
        self.history: dict[str, list[BaseMessage]] = defaultdict(list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode()
            headers = {}
            while (line := (await reader.readline()).decode().strip()) and len(headers) < 100:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            method, path, _ = request_line.split(" ", 2)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if method != "POST" or not path.startswith("/chat/"):
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            await self.reply(path.removeprefix("/chat/"), body.decode(), writer)
        finally:
            await writer.drain()
            writer.close()

    async def reply(self, conversation: str, text: str, writer: asyncio.StreamWriter) -> None:
        turns = self.history[conversation]
        stream = aiter(self.chat.astream([SYSTEM, *turns[-self.max_turns :], HumanMessage(text)]))
        try:  # the first chunk before the status line: a failed call is a 502, not a 200 cut short
            first = await anext(stream, None)
        except SageMakerError as exc:
            message = f"{type(exc).__name__}: {exc}".encode()
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(message), message))
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n")
        answer: list[str] = []
        self._send(str(first.content) if first is not None else "", answer, writer)
        try:
            async for chunk in stream:
                self._send(str(chunk.content), answer, writer)
                await writer.drain()
        except SageMakerError as exc:  # mid-stream: no last chunk, so the client sees it cut off
            print(f"conversation {conversation}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        writer.write(b"0\r\n\r\n")
        turns += [HumanMessage(text), AIMessage("".join(answer))]

    @staticmethod
    def _send(piece: str, answer: list[str], writer: asyncio.StreamWriter) -> None:
        if piece:
            answer.append(piece)
            data = piece.encode()
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))


class ChatFailed(Exception):
    """The chat server answered with an error or its reply was cut off."""


async def ask(port: int, conversation: str, text: str) -> str:
    """A tiny HTTP client: POST a message, print the streamed reply as it arrives.

    Raises ``ChatFailed`` with the server's message on an error status or a cut-off reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = text.encode()
        writer.write(b"POST /chat/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (conversation.encode(), len(data), data))
        await writer.drain()
        status = (await reader.readline()).decode().split(" ", 2)
        while (await reader.readline()).strip():  # headers
            pass
        if len(status) < 2 or status[1] != "200":
            detail = (await reader.read(64 * 1024)).decode(errors="replace")
            raise ChatFailed(f"the server answered {' '.join(status).strip() or 'nothing'}: {detail}")
        received = []
        for _ in range(10_000):  # bounded
            size_line = (await reader.readline()).strip()
            if not size_line:
                raise ChatFailed(f"the reply was cut off after {''.join(received)!r}")
            size = int(size_line, 16)
            if size == 0:
                break
            piece = (await reader.readexactly(size + 2))[:-2].decode()
            received.append(piece)
            print(piece, end="", flush=True)
        print()
        return "".join(received)
    except asyncio.IncompleteReadError as exc:
        raise ChatFailed("the reply was cut off mid-chunk") from exc
    finally:
        writer.close()


async def main() -> None:
    with endpoint("openai") as where:
        async with ChatSageMaker(**where, content_handler="openai", max_tokens=64) as chat:
            app = ChatServer(chat)
            server = await asyncio.start_server(app.handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            async with server:
                await ask(port, "alice", "Hello, I am Alice")
                await ask(port, "alice", "What did I just tell you?")
                print(f"history of alice: {len(app.history['alice'])} messages")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (ChatFailed, SageMakerError) as exc:
        sys.exit(f"chatbot_backend: {exc}")
