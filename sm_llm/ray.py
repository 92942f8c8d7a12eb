"""Ray Data: the model over a :class:`ray.data.Dataset`, on one machine or a cluster.

>>> ds = ray.data.read_json("prompts.jsonl")                          # doctest: +SKIP
>>> out = ds.map_batches(SageMakerMapper, fn_constructor_args=(llm,), concurrency=2)
>>> out.write_json("s3://bucket/answers/")                             # doctest: +SKIP

Each actor receives the model pickled (clients, pools and locks are recreated in the
actor) and keeps ``concurrency`` calls in flight over each batch on its own event loop.
Rows are the records of :mod:`sm_llm.batch` (``id``, ``prompt`` or ``messages``, per-call
arguments); the output rows carry the columns of its output lines: ``id``, ``output``,
``usage``, ``finish_reason``, ``metadata`` and ``error`` (``None`` on success), in the
input order of the batch. Install with ``pip install 'sm-llm[ray]'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sm_llm.batch import arun_record

__all__ = ["COLUMNS", "SageMakerMapper"]

COLUMNS = ("id", "output", "usage", "finish_reason", "metadata", "error")
"""The output columns: the fields of an ``sm-llm batch`` output line."""


def _rows(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A batch (dict of numpy arrays or lists) as records; ``None`` values are left out
    (a column present for some rows only)."""
    columns = {name: (values.tolist() if hasattr(values, "tolist") else list(values)) for name, values in batch.items()}
    count = len(next(iter(columns.values()), []))
    return [
        {name: values[i] for name, values in columns.items() if values[i] is not None} for i in range(count)
    ]


class SageMakerMapper:
    """A callable class for ``Dataset.map_batches`` (``batch_format="default"``: a dict of
    arrays, no pandas needed): ``ds.map_batches(SageMakerMapper,
    fn_constructor_args=(model,), concurrency=2)``.

    ``model``: an sm_llm adapter (or a bound one); ``concurrency``: calls in flight per
    actor. Failed records become rows with ``error`` set, as in ``sm-llm batch``.
    """

    def __init__(self, model: Any, *, concurrency: int = 16) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.model = model
        self.concurrency = concurrency
        self._loop = asyncio.new_event_loop()  # one per actor: its clients live across batches

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        """The output columns for one batch of records (rows in input order)."""
        rows = _rows(batch)
        lines: list[dict[str, Any]] = [{}] * len(rows)
        slots = asyncio.Semaphore(self.concurrency)

        async def one(index: int) -> None:
            async with slots:
                lines[index] = await arun_record(self.model, rows[index])

        async def run() -> None:
            await asyncio.gather(*(one(index) for index in range(len(rows))))

        self._loop.run_until_complete(run())
        return {name: [line.get(name) for line in lines] for name in COLUMNS}

    def close(self) -> None:
        """Close the actor's async clients and its event loop (also done when collected)."""
        loop = getattr(self, "_loop", None)
        if loop is None or loop.is_closed() or loop.is_running():
            return
        aclose = getattr(self.model, "aclose", None)  # a binding forwards to its model
        try:
            if aclose is not None:
                loop.run_until_complete(aclose())
        finally:
            loop.close()

    def __del__(self) -> None:
        self.close()
