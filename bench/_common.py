"""Helpers shared by the bench scripts: a local endpoint in its own process, a dummy
AWS environment, subprocess contenders, statistics and tables.

Not a benchmark itself: run directly without arguments it prints this note and exits 0
(``make bench`` runs every ``bench/*.py``). ``serve-with-stats`` is what
:class:`ServerProcess` runs when it needs server-side statistics (see there);
``serve-streams`` is what :class:`StreamServerProcess` runs for many paced streams.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOOPBACK = "127.0.0.1"
RESULT_PREFIX = "BENCH-RESULT "

# Dummy credentials and a fixed region: nothing may look for real credentials or reach
# the instance metadata service; every request goes to 127.0.0.1.
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
}
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
          "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "LANGCHAIN_API_KEY",
          "LANGSMITH_API_KEY")


def dummy_aws_env() -> None:
    """Point this process (and its children) at dummy credentials only."""
    os.environ.update(DUMMY_AWS_ENV)
    for name in _UNSET:
        os.environ.pop(name, None)


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> None:
    """Raise the soft open-files limit to the hard one (1,000 streams need 1,000 sockets)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _get(url: str, timeout: float = 1.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            _get(url, timeout=0.5)
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not answer {url} within {timeout}s:\n{log.read_text()[-2000:]}")


def _yaml(faults: dict[str, Any]) -> str:
    # JSON is YAML: no need for a YAML writer. Default endpoints, these faults.
    return json.dumps({"faults": faults})


class ServerProcess:
    """The local endpoint in a separate process on a free loopback port.

    By default it is ``sm-llm local serve --port P --config F.yaml``. With
    ``stats=True`` it is this module's ``serve-with-stats`` command instead: the same
    :class:`sm_llm.local.LocalEndpoint` that ``sm-llm local serve`` runs, plus a second
    loopback port answering ``GET /stats`` (its ``peak_in_flight``, ``in_flight`` and
    request count) and ``POST /reset`` — the local endpoint has no HTTP route for its
    statistics. Startup waits (bounded) for ``GET /ping``; stopping is SIGINT, then
    SIGKILL after a bounded wait.
    """

    def __init__(self, faults: dict[str, Any] | None = None, *, stats: bool = False,
                 startup_timeout: float = 30.0) -> None:
        self.faults = faults or {}
        self.stats = stats
        self.startup_timeout = startup_timeout
        self.port = 0
        self.stats_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def stats_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self.stats_port}" if self.stats else None

    def start(self) -> ServerProcess:
        self._dir = tempfile.TemporaryDirectory(prefix="sm-llm-bench-")
        config = Path(self._dir.name) / "server.yaml"
        config.write_text(_yaml(self.faults))
        log = Path(self._dir.name) / "server.log"
        for _ in range(3):  # a port picked free may be taken before the server binds it
            self.port = free_port()
            cmd = self.command(config)
            with log.open("wb") as out:
                self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.PIPE, cwd=ROOT)
            try:
                wait_http(f"{self.url}/ping", self._proc, self.startup_timeout, log)
                if self.stats:
                    wait_http(f"{self.stats_url}/stats", self._proc, self.startup_timeout, log)
                return self
            except RuntimeError:
                self.stop()
                if "Address already in use" not in log.read_text():
                    raise
        raise RuntimeError("could not start the local endpoint on a free port")

    def command(self, config: Path) -> list[str]:
        """The server's command line (``self.port`` is already chosen)."""
        if self.stats:
            self.stats_port = free_port()
            return [sys.executable, str(BENCH / "_common.py"), "serve-with-stats",
                    "--port", str(self.port), "--stats-port", str(self.stats_port),
                    "--config", str(config)]
        cli = Path(sys.executable).with_name("sm-llm")
        head = [str(cli)] if cli.exists() else [sys.executable, "-m", "sm_llm.cli"]
        return [*head, "local", "serve", "--port", str(self.port), "--config", str(config)]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()  # serve-with-stats exits at EOF
            proc.send_signal(signal.SIGINT)  # sm-llm local serve exits on Ctrl-C
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class StreamServerProcess(ServerProcess):
    """``bench/_common.py serve-streams`` in a separate process on a free loopback port: an
    asyncio server for many paced streams at once (see :func:`_serve_streams`). Started,
    waited for and stopped as :class:`ServerProcess`."""

    def __init__(self, token_ms: float, *, startup_timeout: float = 30.0) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self.token_ms = token_ms

    def command(self, config: Path) -> list[str]:
        return [sys.executable, str(BENCH / "_common.py"), "serve-streams",
                "--port", str(self.port), "--token-ms", str(self.token_ms)]


def server_stats(stats_url: str | None) -> dict[str, Any] | None:
    """``GET /stats`` of a ``serve-with-stats`` server (None without one)."""
    if not stats_url:
        return None
    return dict(json.loads(_get(f"{stats_url}/stats", timeout=5.0)))


def reset_server_stats(stats_url: str | None) -> None:
    """``POST /reset``: peak in-flight back to the current count, recorded requests dropped."""
    if stats_url:
        request = urllib.request.Request(f"{stats_url}/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5.0) as response:
            response.read()


class Gauge:
    """Client-side in-flight counter (thread-safe), with its peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            if self.current > self.peak:
                self.peak = self.current

    def leave(self) -> None:
        with self._lock:
            self.current -= 1

    def reset(self) -> None:
        with self._lock:
            self.peak = self.current

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()


# -- contenders in subprocesses -----------------------------------------------------------


def emit_result(result: dict[str, Any]) -> None:
    """What a ``--contender`` child prints for its parent (one line, JSON)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(script: Path, args: Sequence[str], timeout: float,
              env: dict[str, str] | None = None, python_args: Sequence[str] = ()) -> dict[str, Any]:
    """Run ``python script args`` and return the result it emitted (bounded by ``timeout``)."""
    cmd = [sys.executable, *python_args, str(script), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=False)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX):]))
    raise RuntimeError(
        f"{' '.join(cmd)} exited with {done.returncode} without a result:\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )


# -- numbers and tables -------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine() -> str:
    """nproc, CPU model and Python version, for the header of every table."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}"


def load() -> str:
    """The 1/5/15-minute load averages (other work on the machine skews every figure)."""
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "?"


def verdict(value: float, target: float, *, below: bool = True) -> str:
    ok = value <= target if below else value >= target
    return "met" if ok else "MISSED"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], aligns: str = "") -> str:
    """A plain-text table; ``aligns`` is one of ``<``/``>`` per column (default: first
    column left, the others right)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    aligns = aligns or "<" + ">" * (len(headers) - 1)
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, aligns, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- serve-with-stats ---------------------------------------------------------------------


def _serve_with_stats(port: int, stats_port: int, config_path: str) -> None:
    from sm_llm.local import LocalEndpoint
    from sm_llm.local._config import ServerConfig

    endpoint = LocalEndpoint(ServerConfig.from_yaml(config_path), port=port)

    class Stats(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply({"peak_in_flight": endpoint.peak_in_flight,
                         "in_flight": endpoint.in_flight,
                         "requests": len(endpoint.requests)})

        def do_POST(self) -> None:
            endpoint.reset_stats()
            endpoint.requests.clear()
            self._reply({"ok": True})

    stats = ThreadingHTTPServer((LOOPBACK, stats_port), Stats)
    stats.daemon_threads = True
    threading.Thread(target=stats.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    with endpoint:
        print(f"local endpoint on {endpoint.url}, stats on http://{LOOPBACK}:{stats_port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()  # until the parent closes our stdin (or dies)
    stats.shutdown()


# -- serve-streams ------------------------------------------------------------------------


def _tgi_stream_frames(body: bytes) -> list[bytes]:
    """The local endpoint's reply to a streamed ``tgi`` request ``body``: its TGI
    container's SSE records, each in a ``PayloadPart`` event-stream frame, each frame one
    HTTP chunk (one token each), as ``sm-llm local serve`` writes them."""
    from sm_llm.local._containers import ContainerRequest
    from sm_llm.local._eventstream import chunked, payload_part
    from sm_llm.local._tgi import tgi_container

    response = tgi_container(ContainerRequest(body=body, headers={}))
    return [chunked(payload_part(piece.data)) for piece in response.pieces if piece.data]


def _serve_streams(port: int, token_ms: float) -> None:
    """An asyncio HTTP/1.1 server (keep-alive) for many concurrent paced streams:
    ``GET /ping``, and ``POST /endpoints/NAME/invocations-response-stream`` answered with
    :func:`_tgi_stream_frames` of the body (computed once per distinct body), frame ``k``
    written ``(k + 1) * token_ms`` after the request arrived (an absolute schedule, as a
    model paced at a fixed rate). ``sm-llm local serve`` runs a thread per connection and
    sleeps before each token; on a small machine that cannot pace 1,000 streams. Here
    the streams due in the same millisecond are written by one timer callback, so a token
    costs the server little more than its ``send``. Exits at EOF on stdin."""
    import asyncio
    import uuid

    delay = token_ms / 1000.0
    cache: dict[bytes, list[bytes]] = {}
    slots: dict[int, list[list[Any]]] = {}  # ms tick -> [transport, frames, index, t0, done]
    head = ("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
            "X-Amzn-SageMaker-Content-Type: text/event-stream\r\n"
            "x-Amzn-Invoked-Production-Variant: AllTraffic\r\n"
            "Transfer-Encoding: chunked\r\nx-amzn-RequestId: ")

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def schedule(stream: list[Any]) -> None:
            due = stream[3] + (stream[2] + 1) * delay
            slots.setdefault(int(due * 1000) + 1, []).append(stream)

        def tick() -> None:
            now = int(loop.time() * 1000)
            for slot in sorted(k for k in slots if k <= now):
                for stream in slots.pop(slot):
                    transport, frames, index, _, done = stream
                    if done.done():  # the connection's task is gone
                        continue
                    if transport.is_closing():
                        done.set_result(False)
                        continue
                    transport.write(frames[index])
                    stream[2] = index + 1
                    if stream[2] < len(frames):
                        schedule(stream)
                    else:
                        transport.write(b"0\r\n\r\n")
                        done.set_result(True)
            loop.call_at((now + 1) / 1000, tick)

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                    method, path, _ = lines[0].split(" ", 2)
                    length = 0
                    for line in lines[1:]:
                        if line.lower().startswith("content-length:"):
                            length = int(line.split(":", 1)[1])
                    body = await reader.readexactly(length) if length else b""
                    if method == "POST" and path.endswith("/invocations-response-stream"):
                        t0 = loop.time()
                        frames = cache.get(body)
                        if frames is None:
                            frames = cache[body] = _tgi_stream_frames(body)
                        writer.write(f"{head}{uuid.uuid4()}\r\n\r\n".encode())
                        done: asyncio.Future[bool] = loop.create_future()
                        schedule([writer.transport, frames, 0, t0, done])
                        if not await done:
                            return
                    else:
                        status = "200 OK" if path == "/ping" else "404 Not Found"
                        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            except Exception as exc:  # a request the bench does not send: say so, then close
                print(f"serve-streams: {type(exc).__name__}: {exc}", flush=True)
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
            finally:
                writer.close()

        server = await asyncio.start_server(connection, LOOPBACK, port, backlog=4096)
        loop.call_soon(tick)
        print(f"serve-streams on http://{LOOPBACK}:{port}, {token_ms:g} ms per token", flush=True)
        async with server:
            await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["serve-with-stats"]:
        import argparse

        parser = argparse.ArgumentParser(prog="bench/_common.py serve-with-stats")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--stats-port", type=int, required=True)
        parser.add_argument("--config", required=True)
        args = parser.parse_args(argv[1:])
        _serve_with_stats(args.port, args.stats_port, args.config)
        return 0
    if argv[:1] == ["serve-streams"]:
        import argparse

        parser = argparse.ArgumentParser(prog="bench/_common.py serve-streams")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--token-ms", type=float, required=True)
        args = parser.parse_args(argv[1:])
        raise_fd_limit()
        _serve_streams(args.port, args.token_ms)
        return 0
    print((__doc__ or "").strip().split("\n\n")[0] + " (helpers only; nothing to run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


def langchain_aws_tgi(url: str | None = None, client: Any = None) -> Any:
    """langchain-aws's ``SagemakerEndpoint`` with the usual hand-written TGI content handler."""
    from langchain_aws.llms.sagemaker_endpoint import LLMContentHandler, SagemakerEndpoint

    class TGIHandler(LLMContentHandler):  # type: ignore[misc]
        content_type = "application/json"
        accepts = "application/json"

        def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
            return json.dumps({"inputs": prompt, "parameters": model_kwargs}).encode()

        def transform_output(self, output: Any) -> str:
            return str(json.loads(output.read())[0]["generated_text"])

    return SagemakerEndpoint(endpoint_name="tgi", region_name="us-east-1", endpoint_url=url,
                             client=client, content_handler=TGIHandler(), model_kwargs={"details": True})
