"""RetryState, sans-IO: what is retried, how long cold starts are waited through, and
what the deadline counts — on a fake clock, so no test sleeps."""

from __future__ import annotations

import logging

import pytest

from sm_llm import errors as e
from sm_llm._core.retry import RetryPolicy, RetryState

NO_CAPACITY = "Inference Component has no capacity to process this request."


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _state(clock: Clock, **policy: object) -> RetryState:
    return RetryPolicy(clock=clock, **policy).start("endpoint=ep InferenceComponentName=ic")  # type: ignore[arg-type]


def _run(state: RetryState, clock: Clock, error: e.SageMakerError, *, attempt_seconds: float = 0.5) -> list[float]:
    """Fail every attempt with ``error`` (each taking ``attempt_seconds``) until the state
    gives up; the delays it asked for."""
    delays: list[float] = []
    for _ in range(10_000):
        clock.now += attempt_seconds
        delay = state.next_delay(error)
        if delay is None:
            return delays
        delays.append(delay)
        clock.now += delay
    raise AssertionError("the state never gave up")


def test_unset_no_capacity_raises_at_once_even_with_retries_left() -> None:
    clock = Clock()
    state = _state(clock, max_retries=5)
    assert state.next_delay(e.NoCapacityError(NO_CAPACITY)) is None
    assert (state.attempt, state.reasons, state.cold_attempts) == (1, [], 0)


def test_unset_model_not_ready_keeps_its_max_retries() -> None:
    clock = Clock()
    delays = _run(_state(clock, max_retries=2), clock, e.ModelNotReadyError("loading"))
    assert len(delays) == 2


def test_cold_start_waits_past_max_retries_up_to_the_timeout_then_raises() -> None:
    clock = Clock()
    state = _state(clock, max_retries=0, cold_start_timeout=60.0)
    error = e.NoCapacityError(NO_CAPACITY)
    delays = _run(state, clock, error)
    assert len(delays) > 5  # max_retries=0 does not bound a cold-start wait
    assert state.cold_start_seconds() == pytest.approx(60.0, abs=0.5 + 1e-6)  # up to the budget, not past it
    assert max(delays) <= 10.0  # cold_start_max_delay
    assert state.reasons == ["NoCapacityError"] * len(delays)
    assert state.attempt == len(delays) + 1
    assert any("cold_start_timeout=60" in note for note in error.__notes__)


def test_cold_start_backoff_grows_and_the_last_wait_is_clipped_to_the_budget() -> None:
    clock = Clock()
    state = _state(clock, cold_start_timeout=5.0, base_delay=1.0)
    delays = _run(state, clock, e.ModelNotReadyError("loading"), attempt_seconds=0.0)
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0  # half fixed, half jitter
    assert sum(delays) == pytest.approx(5.0)  # the last wait ends exactly at the budget


def test_ordinary_retries_after_a_cold_start_still_obey_max_retries() -> None:
    clock = Clock()
    state = _state(clock, max_retries=1, cold_start_timeout=30.0)
    assert state.next_delay(e.NoCapacityError(NO_CAPACITY)) is not None
    assert state.next_delay(e.NoCapacityError(NO_CAPACITY)) is not None
    assert state.next_delay(e.ThrottlingError("slow")) is not None
    assert state.next_delay(e.ThrottlingError("slow")) is None  # its one retry is spent
    assert state.cold_attempts == 2 and state.retries == 1


def test_errors_that_are_never_retried_stay_so_with_a_cold_start_timeout() -> None:
    clock = Clock()
    state = _state(clock, cold_start_timeout=30.0)
    for error in (e.ModelError("bad"), e.StreamError("cut"), e.AuthenticationError("no"), ValueError("x")):
        assert state.next_delay(error) is None


def test_cold_start_wait_does_not_count_against_the_overall_timeout() -> None:
    clock = Clock()
    state = _state(clock, timeout=10.0, cold_start_timeout=120.0)
    waited = 0.0
    while waited < 60:  # cold-start answers, each after a 2 s attempt, far past timeout=10
        clock.now += 2.0
        delay = state.next_delay(e.NoCapacityError(NO_CAPACITY))
        assert delay is not None
        clock.now += delay
        waited += 2.0 + delay
    assert state.remaining() == pytest.approx(10.0)  # the answered attempts and waits excluded
    clock.now += 3.0  # the attempt that gets capacity counts
    assert state.remaining() == pytest.approx(7.0)


def test_info_logged_once_per_call_naming_the_target(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    state = _state(clock, cold_start_timeout=20.0)
    with caplog.at_level(logging.INFO, logger="sm_llm"):
        _run(state, clock, e.NoCapacityError(NO_CAPACITY))
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert "endpoint=ep InferenceComponentName=ic" in infos[0].getMessage()
    assert "cold_start_timeout" in infos[0].getMessage()
