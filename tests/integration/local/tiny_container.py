"""A tiny SageMaker-contract container (stdlib only) for the upstream-proxy test.

``python tiny_container.py PORT`` serves on 127.0.0.1:PORT:

- ``GET /ping`` → 200
- ``POST /invocations`` with ``{"inputs": str}`` → ``{"echo": inputs, "headers": {...}}``
  (the headers it received, lower-cased), echoing ``X-Amzn-SageMaker-Custom-Attributes``;
- with ``"stream": true`` → chunked ``text/event-stream``, one ``data: {"token": w}`` per word;
- with ``"fail": N`` → status N and body ``tiny failure``.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        status = 200 if self.path == "/ping" else 404
        self._reply(status, b"", "text/plain", {})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/invocations":
            self._reply(404, b"", "text/plain", {})
            return
        payload = json.loads(body)
        extra = {}
        attributes = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
        if attributes is not None:
            extra["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        if "fail" in payload:
            self._reply(int(payload["fail"]), b"tiny failure", "text/plain", extra)
            return
        if payload.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            for word in str(payload["inputs"]).split():
                data = b"data: " + json.dumps({"token": word}).encode() + b"\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = json.dumps({"echo": payload["inputs"], "headers": headers}).encode()
        self._reply(200, reply, "application/json", extra)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
