"""Client creation, written once for boto3 and aiobotocore, and the per-loop async clients.

Async clients: one per transport *per event loop* (aiohttp sessions belong to a loop),
created on first use without blocking the loop, and closed either by ``aclose()`` or, if
the user never calls it, when the loop shuts down: each client is parked in an async
generator whose ``finally`` closes it, and ``asyncio.run`` (like every
``asyncio.Runner``) finalises pending async generators before closing the loop — so no
"Unclosed client session" warnings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sm_llm import errors as e

__all__ = [
    "AsyncClients", "ClientSettings", "aio_available", "configured_endpoint_url", "create_async_client",
    "create_client", "creating",
    "is_loopback_url", "no_region_error", "resolve_settings",
]


def aio_available() -> bool:
    """Whether aiobotocore (the ``aio`` extra) is installed — without importing it
    (that costs ~150 ms at ``import sm_llm``)."""
    from importlib.util import find_spec

    try:
        return find_spec("aiobotocore") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class ClientSettings:
    """What a SageMaker Runtime client is made from (secrets as plain str, never logged)."""

    region_name: str | None = None
    profile_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    endpoint_url: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 70.0
    max_retries: int = 2
    max_connections: int = 100
    config: Any = None

    def __repr__(self) -> str:  # never show the keys
        return (
            f"ClientSettings(region_name={self.region_name!r}, endpoint_url={self.endpoint_url!r}, "
            f"profile_name={self.profile_name!r})"
        )

    def config_options(self) -> dict[str, Any]:
        """The botocore ``Config`` options: timeouts, one attempt (sm_llm retries itself),
        a pool sized for concurrency."""
        return {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retries": {"mode": "standard", "total_max_attempts": 1},
            "max_pool_connections": self.max_connections,
            "user_agent_extra": "sm-llm",
        }

    def client_kwargs(self) -> dict[str, Any]:
        """``create_client`` keyword arguments besides the service and its config."""
        return {
            "region_name": self.region_name,
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
            "aws_session_token": self.aws_session_token,
        }


def no_region_error() -> e.ConfigurationError:
    """The one message for a missing region (the CLI names ``--region`` instead)."""
    return e.ConfigurationError(
        "no AWS region is configured", field="region_name",
        advice="pass region_name='us-east-1' (or set AWS_REGION / AWS_DEFAULT_REGION, "
        "or a region in your AWS profile)",
    )


def no_credentials_error() -> e.ConfigurationError:
    """The one message for missing credentials when signing a SageMaker Runtime request
    (both transports; the CLI names ``--profile`` instead)."""
    return e.ConfigurationError(
        "no AWS credentials found", field="credentials_profile_name",
        advice="configure a profile (credentials_profile_name=...), "
        "environment variables, or pass aws_access_key_id/aws_secret_access_key",
    )


LOCAL_REGION = "us-east-1"
LOCAL_KEY = "local"  # the local endpoint accepts any credentials; botocore needs some to sign


def is_loopback_url(url: str | None) -> bool:
    """Whether ``url``'s host is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if not url:
        return False
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configured_endpoint_url(settings: ClientSettings, service: str = "sagemaker-runtime") -> str | None:
    """The URL the client will call: ``endpoint_url``, else ``AWS_ENDPOINT_URL_<SERVICE>``, else
    ``AWS_ENDPOINT_URL`` (botocore's own variables, unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``)."""
    if settings.endpoint_url:
        return settings.endpoint_url
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    variable = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL") or None


def resolve_settings(settings: ClientSettings, service: str = "sagemaker-runtime") -> ClientSettings:
    """``settings`` with the region chosen, for the boto3 and the aiobotocore client alike.

    Region, first found: ``region_name``; ``AWS_REGION`` (which botocore ignores, but the
    AWS CLI, the other AWS SDKs and Lambda set or read); ``AWS_DEFAULT_REGION``; the
    profile's ``region``; and, only for a loopback endpoint, ``us-east-1``. For a loopback
    endpoint with no credentials anywhere (instance metadata is not asked), dummy ones:
    the local endpoint accepts any. Blocking (reads ~/.aws); raises ConfigurationError.
    """
    import botocore.session
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    local = is_loopback_url(configured_endpoint_url(settings, service))
    region = settings.region_name or os.environ.get("AWS_REGION")
    # botocore's env provider is first in its chain, and skipped when a profile is named
    env_keys = not settings.profile_name and bool(
        os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")
    )
    check_credentials = local and not settings.aws_access_key_id and not env_keys
    if region and not check_credentials:  # nothing to look up: no session (~20 ms) needed
        return dataclasses.replace(settings, region_name=region)
    try:
        session = botocore.session.Session(profile=settings.profile_name)
        region = region or session.get_config_variable("region") or (LOCAL_REGION if local else None)
        changes: dict[str, Any] = {"region_name": region}
        if check_credentials:
            session.get_component("credential_provider").remove("iam-role")
            if session.get_credentials() is None:
                changes.update(aws_access_key_id=LOCAL_KEY, aws_secret_access_key=LOCAL_KEY,
                               aws_session_token=None)
    except ProfileNotFound as exc:
        raise e.ConfigurationError(
            f"AWS profile {settings.profile_name!r} was not found in your AWS config"
        ) from exc
    except (BotoCoreError, ValueError) as exc:
        raise e.ConfigurationError(f"cannot read the AWS configuration: {exc}") from exc
    return dataclasses.replace(settings, **changes)


@contextmanager
def creating(settings: ClientSettings, service: str) -> Iterator[None]:
    """A missing region or profile, or any creation failure, as one clear error."""
    from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

    try:
        yield
    except NoRegionError as exc:
        raise no_region_error() from exc
    except ProfileNotFound as exc:
        raise e.ConfigurationError(
            f"AWS profile {settings.profile_name!r} was not found in your AWS config"
        ) from exc
    except (BotoCoreError, ValueError) as exc:
        name = {"sagemaker-runtime": "SageMaker Runtime", "s3": "S3"}.get(service, service)
        raise e.ConfigurationError(f"cannot create the {name} client: {exc}") from exc


def create_client(
    settings: ClientSettings, service: str = "sagemaker-runtime", *, session: Any = None, **overrides: Any
) -> Any:
    """A boto3 client for ``service``; ``overrides`` replace ``Config`` options (timeouts).
    ``session``: a boto3 session to reuse (client creation is then ~2 ms)."""
    import boto3
    from botocore.config import Config

    settings = resolve_settings(settings, service)
    with creating(settings, service):
        config = Config(**{**settings.config_options(), **overrides})
        if settings.config is not None:
            config = config.merge(settings.config)
        session = session or boto3.Session(profile_name=settings.profile_name)
        return session.client(service, config=config, **settings.client_kwargs())


async def create_async_client(settings: ClientSettings, service: str = "sagemaker-runtime") -> Any:
    """An entered aiobotocore client for ``service`` (close it with ``await client.close()``)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    settings = await asyncio.to_thread(resolve_settings, settings, service)  # reads ~/.aws
    with creating(settings, service):
        config = AioConfig(**settings.config_options())
        if settings.config is not None:
            config = config.merge(settings.config)
        session = get_session()
        if settings.profile_name:
            session.set_config_variable("profile", settings.profile_name)
        context = session.create_client(service, config=config, **settings.client_kwargs())
        return await context.__aenter__()


async def _keeper(client: Any, close: str) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await getattr(client, close)()


class AsyncClients:
    """Async clients, one per running event loop: aiobotocore ones by default, or what
    ``create(settings)`` makes (closed by awaiting their ``close`` method, by name)."""

    def __init__(
        self, create: Callable[[ClientSettings], Awaitable[Any]] | None = None, *, close: str = "close"
    ) -> None:
        self._create = create or create_async_client
        self._close = close
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def get(self, settings: ClientSettings) -> Any:
        """The client for the running loop, created on first use."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is not None:
            return entry[0]
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            entry = self._clients.get(loop)
            if entry is None:
                client = await self._create(settings)
                keeper = _keeper(client, self._close)
                await keeper.asend(None)
                entry = (client, keeper)
                self._clients[loop] = entry
        return entry[0]

    async def aclose(self) -> None:
        """Close the running loop's client (others close when their loops shut down)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()
