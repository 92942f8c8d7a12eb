"""Retries owned by sm_llm (botocore's own retries are turned off underneath).

Sans-IO: :class:`RetryPolicy` only decides — whether an error is worth another
attempt and how long to wait (exponential backoff with full jitter) within an
overall deadline. The engine's sync and async loops do the sleeping.

Retried: ``ModelNotReadyError`` (serverless cold start, multi-model load),
throttling, 500 / 503, connection failures and timeouts — on every operation.
Never: ``ModelError`` (the container answered), validation errors, 530, and
nothing once a stream has produced its first byte.

Cold starts: with ``cold_start_timeout`` set, ``NoCapacityError`` (an inference
component scaled to zero) and ``ModelNotReadyError`` are waited through — with
backoff, for up to that many seconds from the first such answer, whatever
``max_retries`` says, and without that wait counting against ``timeout``. Unset,
``NoCapacityError`` raises at once (scaling from zero takes minutes, a sub-second
retry cannot help) and ``ModelNotReadyError`` keeps its ``max_retries`` retries.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sm_llm.errors import ModelNotReadyError, NoCapacityError, SageMakerError, StreamError

__all__ = ["COLD_START_ERRORS", "RetryPolicy", "RetryState"]

logger = logging.getLogger("sm_llm")

COLD_START_ERRORS: tuple[type[SageMakerError], ...] = (NoCapacityError, ModelNotReadyError)
"""The answers ``cold_start_timeout`` waits through."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries, how long between them, and the overall deadline."""

    max_retries: int = 2
    base_delay: float = 0.25
    max_delay: float = 8.0
    timeout: float | None = None
    """Overall seconds for one logical request, all attempts and waits included
    (a cold-start wait excepted)."""
    cold_start_timeout: float | None = None
    """Seconds to wait through no-capacity and not-ready answers (``None``: do not wait)."""
    cold_start_max_delay: float = 10.0
    """Longest wait between two attempts during a cold start."""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    """Monotonic seconds (tests pass a fake clock)."""

    def start(self, target: str = "") -> RetryState:
        """A fresh state for one logical request (``target`` names it in the log)."""
        return RetryState(self, target=target)


@dataclass(slots=True)
class RetryState:
    """The attempts of one logical request."""

    policy: RetryPolicy
    target: str = ""
    """What is called (endpoint, component), for the cold-start log line."""
    started: float = field(init=False)
    attempt: int = 1
    reasons: list[str] = field(default_factory=list)
    retries: int = 0
    """Ordinary retries so far (bounded by ``max_retries``; cold-start waits are not)."""
    cold_attempts: int = 0
    """Cold-start answers (no capacity, not ready) waited through so far."""
    cold_since: float | None = None
    """When the first cold-start answer came (``None``: none yet)."""
    cold_waited: float = 0.0
    """Seconds spent on failed cold-start attempts and the waits after them."""
    _attempt_started: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.started = self._attempt_started = self.policy.clock()

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline). Time spent waiting
        through a cold start does not count."""
        if self.policy.timeout is None:
            return None
        return self.policy.timeout - (self.policy.clock() - self.started - self.cold_waited)

    def cold_start_seconds(self) -> float:
        """Seconds since the first cold-start answer (0 if none came)."""
        return 0.0 if self.cold_since is None else self.policy.clock() - self.cold_since

    def next_delay(self, error: BaseException) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up (and raise)."""
        if not isinstance(error, SageMakerError) or isinstance(error, StreamError):
            return None
        if isinstance(error, COLD_START_ERRORS) and self.policy.cold_start_timeout is not None:
            return self._cold_start_delay(error, self.policy.cold_start_timeout)
        if isinstance(error, NoCapacityError) or not error.is_retryable:
            return None
        if self.retries >= self.policy.max_retries:
            return None
        ceiling = min(self.policy.max_delay, self.policy.base_delay * (2**self.retries))
        delay = random.uniform(0, ceiling)
        remaining = self.remaining()
        if remaining is not None and delay >= remaining:
            return None
        self.retries += 1
        logger.debug(
            "retrying after %s (attempt %d of %d) in %.3fs: %s",
            type(error).__name__, self.attempt + 1, self.policy.max_retries + 1, delay, error,
        )
        return self._next(error, delay)

    def _cold_start_delay(self, error: SageMakerError, budget: float) -> float | None:
        """Backoff (half fixed, half jitter) within what is left of ``budget``."""
        now = self.policy.clock()
        if self.cold_since is None:
            self.cold_since = now
            logger.info(
                "%s: waiting up to %gs (cold_start_timeout) for capacity: %s",
                self.target or "endpoint", budget, error,
            )
        left = budget - (now - self.cold_since)
        if left <= 0:
            error.add_note(
                f"waited {now - self.cold_since:.1f}s through {self.cold_attempts + 1} cold-start "
                f"answers (cold_start_timeout={budget:g})"
            )
            return None
        ceiling = min(self.policy.cold_start_max_delay, self.policy.base_delay * (2**self.cold_attempts))
        delay = min(left, random.uniform(ceiling / 2, ceiling))
        self.cold_attempts += 1
        self.cold_waited += (now - self._attempt_started) + delay
        logger.debug(
            "cold start: %s, attempt %d in %.3fs (%.1fs of %.0fs waited)",
            type(error).__name__, self.attempt + 1, delay, now - self.cold_since, budget,
        )
        return self._next(error, delay)

    def _next(self, error: SageMakerError, delay: float) -> float:
        self.reasons.append(type(error).__name__)
        self.attempt += 1
        self._attempt_started = self.policy.clock() + delay
        return delay
