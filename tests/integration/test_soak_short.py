"""A short fault soak in every test run (the long one: tests/soak/)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "soak"))

from soak import SoakEndpoint, run_soak


async def test_short_soak(sm_transport: str) -> None:
    with SoakEndpoint(7) as url:
        tally = await run_soak(url, 240, seed=7, transport=sm_transport)
    print(f"\nshort soak: {tally}")
    assert tally.bad() == 0, "\n".join(tally.problems[:20])
    assert sum(tally.outcomes.values()) == 240
    assert tally.outcomes["typed_error"] > 0  # the faults really happened
    assert "SageMakerError" not in tally.errors  # every failure has its specific class
