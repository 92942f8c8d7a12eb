"""``LocalEndpoint`` (a background server for tests and scripts) and ``serve`` (blocking)."""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self
from urllib.parse import quote

from pydantic import SecretStr

from sm_llm.errors import ConfigurationError
from sm_llm.local._config import FaultConfig, ServerConfig
from sm_llm.local._faults import FaultState
from sm_llm.local._httpserver import LocalHTTPServer
from sm_llm.local._routing import Router
from sm_llm.local._server import create_server
from sm_llm.local._state import AsyncBackend, RecordedRequest, new_state
from sm_llm.local._upstream import UpstreamContainer

__all__ = ["LocalEndpoint", "serve"]

_POLL_S = 0.02


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LocalEndpoint:
    """A SageMaker-Runtime-compatible server on loopback, run in a background thread.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`); point boto3 at
    :attr:`url`. ``faults`` and ``upstream`` override the ones in ``config``. Binding a
    non-loopback ``host`` requires ``allow_remote=True``.

    ``credentials`` (access key id -> secret key; default ``config.credentials``, itself
    ``{"local": "local"}``) are what bearer tokens on the OpenAI-compatible route
    (:meth:`openai_base_url`) must be signed with.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultConfig | None = None,
        upstream: str | None = None,
        allow_remote: bool = False,
        async_backend: AsyncBackend | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        if not _is_loopback(host) and not allow_remote:
            raise ConfigurationError(
                f"refusing to bind the local endpoint to non-loopback host {host!r}",
                field="allow_remote", advice="pass allow_remote=True to expose it",
            )
        self.config = config if config is not None else ServerConfig()
        if credentials is not None:
            self.config = self.config.model_copy(
                update={"credentials": {k: SecretStr(v) for k, v in credentials.items()}}
            )
        self.host = host
        self._port = port
        upstream = upstream if upstream is not None else self.config.upstream
        self.upstream = UpstreamContainer(upstream) if upstream else None
        self._router = Router(self.config, self.upstream)
        self._state = new_state(self.config, self._router, faults)
        self._state.async_backend = async_backend
        self._server: LocalHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and start serving in a daemon thread (no-op when already running)."""
        if self._server is not None:
            return self
        self._state.stopping.clear()
        server = create_server((self.host.strip("[]"), self._port), self._state)
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sm-llm-local-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close every connection and join the threads (bounded)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.close_connections(timeout)
        server.server_close()
        if thread is not None:
            thread.join(timeout)
        self._server = self._thread = None
        closer = getattr(self._state.async_backend, "close", None)
        if closer is not None:  # background async jobs stop with the server
            closer(timeout)
        if self.upstream is not None:
            self.upstream.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- facts --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start` when an ephemeral port was asked)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` for ``endpoint_url=``."""
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    def openai_base_url(self, endpoint_name: str, component: str | None = None) -> str:
        """The OpenAI-compatible route's base URL for ``base_url=`` of an OpenAI client:
        ``{url}/endpoints/{name}[/inference-components/{component}]/openai/v1``."""
        path = f"/endpoints/{quote(endpoint_name, safe='')}"
        if component is not None:
            path += f"/inference-components/{quote(component, safe='')}"
        return f"{self.url}{path}/openai/v1"

    @property
    def running(self) -> bool:
        """Whether the server is started."""
        return self._server is not None

    @property
    def endpoint_names(self) -> list[str]:
        """Names of the configured endpoints."""
        return self._router.endpoint_names

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every invocation received, oldest first (appends are atomic; ``clear()`` empties)."""
        return self._state.requests

    @property
    def faults(self) -> FaultConfig:
        """The live fault configuration (a private copy; ``fail_next`` shrinks as consumed)."""
        return self._state.faults.config

    @faults.setter
    def faults(self, value: FaultConfig | None) -> None:
        self._state.faults = FaultState(value)

    @property
    def async_backend(self) -> AsyncBackend | None:
        """The backend serving ``InvokeEndpointAsync`` (``None``: answered with a 400)."""
        return self._state.async_backend

    @async_backend.setter
    def async_backend(self, value: AsyncBackend | None) -> None:
        self._state.async_backend = value

    @property
    def in_flight(self) -> int:
        """Invocations being handled right now."""
        return self._state.in_flight

    @property
    def peak_in_flight(self) -> int:
        """Highest :attr:`in_flight` seen since the last :meth:`reset_stats`."""
        return self._state.peak_in_flight

    def reset_stats(self) -> None:
        """Reset :attr:`peak_in_flight`."""
        self._state.reset_stats()

    def reset(self) -> None:
        """Default faults, no recorded requests, fresh stats, components with
        ``no_capacity`` scaled back to zero."""
        self.faults = FaultConfig()
        self.requests.clear()
        self.reset_stats()
        self._state.capacity.reset()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no invocation is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._state.in_flight > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    config_path: str | None = None,
    upstream: str | None = None,
    allow_remote: bool = False,
    with_s3: bool = False,
    s3_port: int = 0,
    notifications: bool = False,
) -> None:
    """Run a local endpoint in the foreground until KeyboardInterrupt.

    ``with_s3`` also starts an S3 API (moto, loopback, ``s3_port`` or a free port) and
    serves ``InvokeEndpointAsync`` jobs through it; point clients at it with
    ``AWS_ENDPOINT_URL_S3``. Its bucket (``sm-llm-local``) is created at start and named
    in the output. ``notifications`` (with ``with_s3``) also creates SNS success/error
    topics and an SQS queue subscribed to both in the same moto server, publishes every
    job's outcome like SageMaker, and prints the queue URL. A port already in use is a
    :class:`ConfigurationError`.
    """
    if notifications and not with_s3:
        raise ConfigurationError("notifications need the local S3: pass --with-s3 --notifications")
    config = ServerConfig.from_yaml(config_path) if config_path else ServerConfig()
    endpoint = LocalEndpoint(config, host=host, port=port, upstream=upstream, allow_remote=allow_remote)
    with contextlib.ExitStack() as stack:
        s3_lines: list[str] = []
        if with_s3:
            from sm_llm.local._async import LocalS3, S3AsyncBackend

            s3 = stack.enter_context(LocalS3(port=s3_port))
            backend = S3AsyncBackend(s3.url, region=config.region, account_id=config.account_id)
            backend.ensure_buckets()
            endpoint.async_backend = backend
            if notifications:
                from sm_llm.local._notifications import LocalNotifications

                backend.notifications = LocalNotifications(s3.url, region=config.region)
            bucket = backend.output_path.removeprefix("s3://").split("/", 1)[0]
            s3_lines = [
                f"local S3 (moto) listening on {s3.url}: export AWS_ENDPOINT_URL_S3={s3.url}",
                f"bucket {bucket} created: job outputs go to {backend.output_path}, failures to "
                f"{backend.failure_path}; upload inputs there too (--input-s3-uri s3://{bucket}/async-input/)",
            ]
            if backend.notifications is not None:
                s3_lines.append(
                    f"notifications: SQS queue {backend.notifications.queue_url} (topics "
                    f"{backend.notifications.success_topic}, {backend.notifications.error_topic}): "
                    f"--notification-queue-url {backend.notifications.queue_url}"
                )
        try:
            stack.enter_context(endpoint)
        except OSError as exc:  # e.g. [Errno 98] Address already in use
            raise ConfigurationError(
                f"cannot listen on {endpoint.url}: {exc.strerror or exc}",
                field="port", advice="pass another port (port=0 takes any free one)",
            ) from exc
        line = f"sm-llm local endpoint listening on {endpoint.url} (endpoints: {', '.join(endpoint.endpoint_names)})"
        if endpoint.upstream is not None:
            line += f" -> upstream {endpoint.upstream.base_url}"
        names = endpoint.endpoint_names
        route = endpoint.openai_base_url(names[0] if len(names) == 1 else "<name>")
        route_line = (
            f"OpenAI route: {route} (bearer tokens for region {config.region}, "
            f"access keys: {', '.join(endpoint.config.credentials)})"
        )
        with contextlib.suppress(KeyboardInterrupt):
            print(line, flush=True)
            for s3_line in s3_lines:
                print(s3_line, flush=True)
            print(route_line, flush=True)
            threading.Event().wait()
