"""Retries owned by sm_llm (botocore's own retries are turned off underneath).

Sans-IO: :class:`RetryPolicy` only decides — whether an error is worth another
attempt and how long to wait (exponential backoff with full jitter) within an
overall deadline. The engine's sync and async loops do the sleeping.

Retried: ``ModelNotReadyError`` (serverless cold start, multi-model load),
throttling, 500 / 503, connection failures and timeouts — on every operation.
Never: ``ModelError`` (the container answered), validation errors, 530, and
nothing once a stream has produced its first byte.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from sm_llm.errors import SageMakerError, StreamError

__all__ = ["RetryPolicy", "RetryState"]

logger = logging.getLogger("sm_llm")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries, how long between them, and the overall deadline."""

    max_retries: int = 2
    base_delay: float = 0.25
    max_delay: float = 8.0
    timeout: float | None = None
    """Overall seconds for one logical request, all attempts and waits included."""

    def start(self) -> RetryState:
        """A fresh state for one logical request."""
        return RetryState(self)


@dataclass(slots=True)
class RetryState:
    """The attempts of one logical request."""

    policy: RetryPolicy
    started: float = field(default_factory=time.monotonic)
    attempt: int = 1
    reasons: list[str] = field(default_factory=list)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline)."""
        if self.policy.timeout is None:
            return None
        return self.policy.timeout - (time.monotonic() - self.started)

    def next_delay(self, error: BaseException) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up (and raise)."""
        if not isinstance(error, SageMakerError) or isinstance(error, StreamError):
            return None
        if not error.is_retryable or self.attempt > self.policy.max_retries:
            return None
        ceiling = min(self.policy.max_delay, self.policy.base_delay * (2 ** (self.attempt - 1)))
        delay = random.uniform(0, ceiling)
        remaining = self.remaining()
        if remaining is not None and delay >= remaining:
            return None
        reason = type(error).__name__
        self.reasons.append(reason)
        logger.debug(
            "retrying after %s (attempt %d of %d) in %.3fs: %s",
            reason, self.attempt + 1, self.policy.max_retries + 1, delay, error,
        )
        self.attempt += 1
        return delay
