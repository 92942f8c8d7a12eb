"""transport="httpx": the async connection pool split over several httpx pools
(httpcore's pool bookkeeping grows with the square of its size; see ``POOL_SHARD``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sm_llm.local import LocalEndpoint
from sm_llm.transports import ClientSettings, SigV4HttpTransport
from sm_llm.transports.http import POOL_SHARD, _shard_sizes


def test_shard_sizes_add_up_to_max_connections_in_pools_of_at_most_pool_shard() -> None:
    for size in range(1, 1201):
        sizes = _shard_sizes(size)
        assert sum(sizes) == size
        assert max(sizes) <= POOL_SHARD
        assert max(sizes) - min(sizes) <= 1


def test_streams_fill_every_pool_and_give_their_connections_back(
    local_endpoint: LocalEndpoint, fault: Callable[..., Any]
) -> None:
    size = 2 * POOL_SHARD + 3  # three pools
    local_endpoint.faults = fault(token_delay_ms=20)
    transport = SigV4HttpTransport(ClientSettings(
        region_name="us-east-1", endpoint_url=local_endpoint.url, max_connections=size,
        aws_access_key_id="testing", aws_secret_access_key="testing", max_retries=0,
    ))
    # ~100 tokens at 20 ms: every stream is still open when the last one starts
    body = json.dumps({"inputs": " ".join(["w"] * 99), "stream": True,
                       "parameters": {"max_new_tokens": 100}}).encode()
    params = {"EndpointName": "tgi", "Body": body, "ContentType": "application/json"}

    async def run() -> tuple[list[int], list[int], list[int], int]:
        shards = None
        try:
            streams = await asyncio.gather(*(transport.ainvoke_stream(params) for _ in range(size)))
            firsts = [await anext(aiter(s.parts)) for s in streams]
            assert all(firsts)
            shards = await transport._aclients.get(transport.settings)
            held = list(shards._free)  # every connection of every pool in use
            in_flight = local_endpoint.peak_in_flight
            for s in streams:
                await s.parts.aclose()
                await s.aclose()
            after_streams = list(shards._free)
            await transport.ainvoke({**params, "Body": b'{"inputs": "x"}'})
            return held, after_streams, list(shards._free), in_flight
        finally:
            await transport.aclose()

    held, after_streams, after_invoke, in_flight = asyncio.run(run())
    assert in_flight == size
    assert held == [0, 0, 0]
    assert after_streams == after_invoke == _shard_sizes(size)
