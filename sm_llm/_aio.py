"""Native asyncio transport on aiobotocore (the optional ``aio`` extra).

One client per adapter *per event loop* (aiohttp sessions belong to a loop),
created on first use without blocking the loop, and closed either by
``adapter.aclose()`` or, if the user never calls it, when the loop shuts down:
each client is parked in an async generator whose ``finally`` closes it, and
``asyncio.run`` (like every ``asyncio.Runner``) finalises pending async
generators before closing the loop — so no "Unclosed client session" warnings.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from sm_llm import errors as e
from sm_llm._transport import (
    ClientSettings,
    InvokeResult,
    StreamResult,
    http_status,
    map_error,
    no_region_error,
    resolve_settings,
    response_metadata,
)

__all__ = ["AsyncClients", "ainvoke", "ainvoke_stream", "aio_available"]


def aio_available() -> bool:
    """Whether aiobotocore (the ``aio`` extra) is installed — without importing it
    (that costs ~150 ms at ``import sm_llm``)."""
    from importlib.util import find_spec

    try:
        return find_spec("aiobotocore") is not None
    except (ImportError, ValueError):
        return False


async def _create(settings: ClientSettings) -> Any:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

    config = AioConfig(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"mode": "standard", "total_max_attempts": 1},  # sm_llm retries itself
        max_pool_connections=settings.max_connections,
        user_agent_extra="sm-llm",
    )
    if settings.config is not None:
        config = config.merge(settings.config)
    settings = await asyncio.to_thread(resolve_settings, settings)  # reads ~/.aws
    try:
        session = get_session()
        if settings.profile_name:
            session.set_config_variable("profile", settings.profile_name)
        context = session.create_client(
            "sagemaker-runtime",
            region_name=settings.region_name,
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
            config=config,
        )
        return await context.__aenter__()
    except NoRegionError as exc:
        raise no_region_error() from exc
    except ProfileNotFound as exc:
        raise e.ConfigurationError(f"AWS profile {settings.profile_name!r} was not found") from exc
    except (BotoCoreError, ValueError) as exc:
        raise e.ConfigurationError(f"cannot create the async SageMaker Runtime client: {exc}") from exc


async def _keeper(client: Any) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.close()


class AsyncClients:
    """The adapter's aiobotocore clients, one per running event loop."""

    def __init__(self) -> None:
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
                client = await _create(settings)
                keeper = _keeper(client)
                await keeper.asend(None)
                entry = (client, keeper)
                self._clients[loop] = entry
        return entry[0]

    async def aclose(self) -> None:
        """Close the running loop's client (others close when their loops shut down)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()


async def ainvoke(client: Any, params: dict[str, Any]) -> InvokeResult:
    """``InvokeEndpoint`` on aiobotocore; errors mapped."""
    try:
        response = await client.invoke_endpoint(**params)
        async with response["Body"] as body:
            data = await body.read()
    except Exception as exc:
        raise map_error(exc, "InvokeEndpoint", params.get("EndpointName")) from exc
    return InvokeResult(body=data, metadata=response_metadata(response), status=http_status(response))


async def ainvoke_stream(client: Any, params: dict[str, Any]) -> StreamResult:
    """``InvokeEndpointWithResponseStream`` on aiobotocore."""
    operation = "InvokeEndpointWithResponseStream"
    endpoint = params.get("EndpointName")
    try:
        response = await client.invoke_endpoint_with_response_stream(**params)
    except Exception as exc:
        raise map_error(exc, operation, endpoint) from exc
    stream = response["Body"]

    async def parts() -> AsyncIterator[bytes]:
        try:
            async for event in stream:
                part = event.get("PayloadPart")
                if part is not None:
                    yield part.get("Bytes", b"")
        except (GeneratorExit, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise map_error(exc, operation, endpoint, in_stream=True) from exc

    return StreamResult(
        parts=parts(), metadata=response_metadata(response), _stream=stream, status=http_status(response)
    )
