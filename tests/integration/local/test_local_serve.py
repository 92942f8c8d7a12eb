"""``serve()`` in a subprocess: the banner line, a request, clean exit on Ctrl-C."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sm_llm.errors import ConfigurationError
from sm_llm.local import LocalEndpoint


def test_serve_prints_banner_and_stops_on_sigint(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "local.yaml"
    config.write_text("endpoints:\n  - {name: only-one, container: lmi}\n")
    code = f"from sm_llm.local import serve; serve(port={port}, config_path={str(config)!r})"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == (
            f"sm-llm local endpoint listening on http://127.0.0.1:{port} (endpoints: only-one)"
        )
        assert process.stdout.readline().strip() == (
            f"OpenAI route: http://127.0.0.1:{port}/endpoints/only-one/openai/v1 "
            "(bearer tokens for region us-east-1, access keys: local)"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as reply:
            assert reply.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_refuses_non_loopback_host() -> None:
    with pytest.raises(ConfigurationError):
        LocalEndpoint(host="0.0.0.0")
    LocalEndpoint(host="0.0.0.0", allow_remote=True)  # not started: nothing bound


@pytest.mark.serial  # timing-sensitive: run alone, after the parallel run
def test_stop_closes_idle_keep_alive_connections() -> None:
    endpoint = LocalEndpoint().start()
    before = set(threading.enumerate())
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=5)
    try:
        connection.request("GET", "/ping")
        reply = connection.getresponse()
        reply.read()
        assert reply.status == 200 and not reply.will_close
        started = time.monotonic()
        endpoint.stop()
        assert time.monotonic() - started < 2
        lingering = [
            t for t in threading.enumerate() if t not in before and t.name.startswith("sm-llm-local")
        ]
        assert lingering == []
        assert not endpoint.running
    finally:
        connection.close()
