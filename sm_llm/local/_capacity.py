"""Inference components scaled to zero: refused with "has no capacity" until they scale up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sm_llm.local._config import NoCapacity

__all__ = ["NO_CAPACITY_MESSAGE", "CapacityState"]

NO_CAPACITY_MESSAGE = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling may "
    "be in-progress (if configured) or try to increase the capacity by invoking "
    "UpdateInferenceComponentRuntimeConfig API."
)


@dataclass
class _Component:
    first_request: float
    refused: int = 0
    scaled_up: bool = False


class CapacityState:
    """Per (endpoint, component): when its first request came and how many were refused."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._components: dict[tuple[str, str], _Component] = {}

    def admit(self, endpoint: str, component: str, spec: NoCapacity) -> bool:
        """Whether a request to ``component`` is served now (False: answer "no capacity")."""
        now = self._clock()
        with self._lock:
            state = self._components.setdefault((endpoint, component), _Component(now))
            if not state.scaled_up:
                by_count = spec.requests is not None and state.refused >= spec.requests
                by_time = spec.seconds is not None and now - state.first_request >= spec.seconds
                state.scaled_up = by_count or by_time
            if state.scaled_up:
                return True
            state.refused += 1
            return False

    def reset(self) -> None:
        """Scale every component back to zero."""
        with self._lock:
            self._components.clear()
