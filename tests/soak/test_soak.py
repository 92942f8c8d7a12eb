"""The full fault soak: 1,000 mixed requests (``SM_LLM_SOAK_REQUESTS`` to change)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from soak import SoakEndpoint, run_soak


async def test_soak() -> None:
    requests = int(os.environ.get("SM_LLM_SOAK_REQUESTS", "1000"))
    seed = int(os.environ.get("SM_LLM_SOAK_SEED", "2026"))
    with SoakEndpoint(seed) as url:
        tally = await run_soak(url, requests, seed)
    print(f"\nsoak (seed {seed}): {tally}")
    assert tally.bad() == 0, "\n".join(tally.problems[:20])
    assert sum(tally.outcomes.values()) == requests
    assert tally.outcomes["ok"] > requests // 2
    assert "SageMakerError" not in tally.errors
