"""The listening socket: a threading HTTP server that can close its connections on stop."""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sm_llm.local._state import ServerState

__all__ = ["LocalHTTPServer"]

logger = logging.getLogger("sm_llm.local")


class LocalHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections so it can close them on stop."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        state: ServerState,
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        self.state = state
        self._active: dict[threading.Thread, socket.socket] = {}
        self._active_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS lookup); not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run, args=(request, client_address), name="sm-llm-local", daemon=True
        )
        with self._active_lock:
            self._active[thread] = request
        thread.start()

    def _run(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._active_lock:
                self._active.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("error while serving %s", client_address, exc_info=True)

    def close_connections(self, timeout: float = 5.0) -> None:
        """Shut down every open connection and join its thread (bounded by ``timeout``)."""
        with self._active_lock:
            active = list(self._active.items())
        for _, sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread, _ in active:
            thread.join(max(0.0, deadline - time.monotonic()))
