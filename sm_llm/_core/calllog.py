"""One DEBUG line per call on the ``sm_llm`` logger.

``InvokeEndpoint endpoint=my-tgi TargetModel=a.tar.gz status=200 outcome=ok attempts=1 ms=42
inference_id=…`` — the operation, endpoint, routing, HTTP status, outcome (``ok`` or the
error's class), attempts and milliseconds. Never a body, custom attributes or a credential.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sm_llm._core.retry import RetryState

__all__ = ["StreamOutcome", "describe", "log_call"]

logger = logging.getLogger("sm_llm")

_ROUTING = ("TargetModel", "TargetVariant", "TargetContainerHostname", "InferenceComponentName")


def describe(params: dict[str, Any]) -> str:
    """``endpoint=NAME`` and the routing fields of a call, for log lines."""
    routing = "".join(f" {key}={params[key]}" for key in _ROUTING if params.get(key))
    return f"endpoint={params.get('EndpointName')}{routing}"


def log_call(
    operation: str,
    params: dict[str, Any],
    state: RetryState,
    *,
    status: int | None = None,
    error: BaseException | None = None,
) -> None:
    """Log one finished call (``error`` when it failed)."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    if error is not None and status is None:
        status = getattr(error, "status_code", None)
    logger.debug(
        "%s %s status=%s outcome=%s attempts=%d ms=%.0f inference_id=%s",
        operation,
        describe(params),
        status if status is not None else "-",
        "ok" if error is None else type(error).__name__,
        state.attempt,
        (time.monotonic() - state.started) * 1000,
        params.get("InferenceId"),
    )


class StreamOutcome:
    """How one streamed call ended, logged once (:func:`log_call`) when it is over."""

    _OPERATION = "InvokeEndpointWithResponseStream"

    def __init__(self, params: dict[str, Any], state: RetryState) -> None:
        self.params, self.state = params, state
        self.status: int | None = None
        self.error: BaseException | None = None

    def failed(self, error: BaseException) -> None:
        """Record ``error``; log it now if the stream never opened."""
        self.error = error
        if self.status is None:
            self.log()

    def log(self) -> None:
        """Log the call: ``ok`` (also when the reader stopped early) or the error."""
        log_call(self._OPERATION, self.params, self.state, status=self.status, error=self.error)
