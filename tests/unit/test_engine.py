"""The engine over the in-memory FakeTransport: calls, retries and deadlines (sync and
async), streams through StreamPipeline, jobs and sessions — no sockets."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from sm_llm import ChatSageMaker, SageMakerLLM
from sm_llm import errors as e
from sm_llm._core.pipeline import StreamEnd, StreamPiece
from sm_llm._core.request import RequestSpec
from sm_llm._core.retry import RetryPolicy
from sm_llm.async_inference import AsyncInferenceConfig
from sm_llm.engine import Engine
from sm_llm.handlers import ContentHandler
from sm_llm.transports import FakeCall, FakeTransport, S3Object, StreamResult, Transport

TGI = ContentHandler.from_preset("tgi")


def _engine(fake: FakeTransport, **policy: Any) -> Engine:
    return Engine(fake, RequestSpec("ep", TGI), policy=RetryPolicy(base_delay=0.001, **policy))


def _tgi_stream(*tokens: str, finish: str = "eos_token") -> list[bytes]:
    parts = [f'data:{{"token":{{"text":{json.dumps(t)}}}}}\n\n'.encode() for t in tokens]
    parts.append(f'data:{{"token":{{"text":""}},"details":{{"finish_reason":"{finish}"}}}}\n\n'.encode())
    return parts


def test_fake_is_a_transport() -> None:
    assert isinstance(FakeTransport(), Transport)


def test_call_parses_and_reports_attempts_after_a_retry() -> None:
    fake = FakeTransport().fail(e.ThrottlingError("slow down")).reply([{"generated_text": "hi"}])
    engine = _engine(fake)
    reply = engine.call(engine.prepare(prompt="x"))
    assert reply.parsed.text == "hi"
    assert reply.metadata["attempts"] == 2 and reply.metadata["retry_reasons"] == ["ThrottlingError"]
    ids = {call.params["InferenceId"] for call in fake.calls}
    assert ids == {reply.metadata["inference_id"]}  # one logical request, one id


def test_model_error_is_not_retried() -> None:
    fake = FakeTransport().fail(e.ModelError("bad input")).reply([{"generated_text": "never"}])
    engine = _engine(fake)
    with pytest.raises(e.ModelError, match="bad input"):
        engine.call(engine.prepare(prompt="x"))
    assert len(fake.calls) == 1


def test_sync_attempts_are_given_the_time_left_and_stop_at_the_deadline() -> None:
    fake = FakeTransport(responder=lambda op, params: (_ for _ in ()).throw(e.ServiceUnavailableError("busy")))
    engine = _engine(fake, max_retries=1000, timeout=0.3, max_delay=0.05)
    started = time.monotonic()
    with pytest.raises(e.SageMakerError):
        engine.call(engine.prepare(prompt="x"))
    assert time.monotonic() - started < 0.6
    budgets = [call.timeout for call in fake.calls]
    assert len(budgets) > 2 and all(b is not None and 0 < b <= 0.3 for b in budgets)
    assert budgets == sorted(budgets, reverse=True)  # each attempt gets what is left


def test_no_deadline_means_no_attempt_bound() -> None:
    fake = FakeTransport().reply([{"generated_text": "hi"}])
    engine = _engine(fake)
    engine.call(engine.prepare(prompt="x"))
    assert fake.calls[0].timeout is None


class _Hanging(FakeTransport):
    """An async call that never answers."""

    async def ainvoke(self, params: dict[str, Any], *, timeout: float | None = None) -> Any:
        self.calls.append(FakeCall("InvokeEndpoint", params, timeout))
        await asyncio.sleep(30)


async def test_async_attempt_is_cancelled_at_the_deadline() -> None:
    engine = _engine(_Hanging(), timeout=0.2)
    started = time.monotonic()
    with pytest.raises(e.RequestTimeoutError, match=r"did not complete within timeout=0.2s \(1 attempts"):
        await engine.acall(engine.prepare(prompt="x"))
    assert time.monotonic() - started < 1.0
    assert engine.transport.calls[0].timeout == pytest.approx(0.2, abs=0.05)  # type: ignore[attr-defined]


async def test_acall_retries_like_call() -> None:
    fake = FakeTransport().fail(e.ModelNotReadyError("loading")).reply([{"generated_text": "ok"}])
    engine = _engine(fake)
    reply = await engine.acall(engine.prepare(prompt="x"))
    assert (reply.parsed.text, reply.metadata["attempts"]) == ("ok", 2)


def test_stream_steps_end_with_the_summary_and_close_the_stream() -> None:
    fake = FakeTransport().stream(*_tgi_stream("a", " b"), invoked_production_variant="v1")
    engine = _engine(fake)
    steps = list(engine.stream(engine.prepare(prompt="x", operation="InvokeEndpointWithResponseStream")))
    assert [s.text for s in steps if isinstance(s, StreamPiece)] == ["a", " b", ""]
    end = steps[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "stop" and not end.stopped
    assert end.metadata["invoked_production_variant"] == "v1" and "inference_id" in end.metadata
    assert fake.streams[0].closed


def test_stream_stops_reading_at_a_stop_sequence() -> None:
    fake = FakeTransport().stream(*_tgi_stream("one", " two", " STOP", " three"))
    engine = _engine(fake)
    request = engine.prepare(prompt="x", stop=["STOP"], operation="InvokeEndpointWithResponseStream")
    steps = list(engine.stream(request))
    assert "".join(s.text for s in steps) == "one two "
    assert isinstance(steps[-1], StreamEnd) and steps[-1].stopped and steps[-1].finish_reason == "stop"
    assert fake.streams[0].closed


def test_broken_stream_keeps_the_partial_text_and_closes() -> None:
    fake = FakeTransport().stream(*_tgi_stream("a", " b")[:2], error=e.StreamError("reset"))
    engine = _engine(fake)
    with pytest.raises(e.StreamError, match="reset") as info:
        list(engine.stream(engine.prepare(prompt="x", operation="InvokeEndpointWithResponseStream")))
    assert info.value.partial_text == "a b"
    assert fake.streams[0].closed


def test_abandoned_stream_is_closed() -> None:
    fake = FakeTransport().stream(*_tgi_stream("a", " b", " c"))
    engine = _engine(fake)
    steps = engine.stream(engine.prepare(prompt="x", operation="InvokeEndpointWithResponseStream"))
    assert next(steps).text == "a"
    steps.close()
    assert fake.streams[0].closed


async def test_astream_gives_the_same_steps() -> None:
    fake = FakeTransport().stream(*_tgi_stream("a", " b"))
    engine = _engine(fake)
    request = engine.prepare(prompt="x", operation="InvokeEndpointWithResponseStream")
    steps = [s async for s in engine.astream(request)]
    assert "".join(s.text for s in steps) == "a b" and isinstance(steps[-1], StreamEnd)
    assert fake.streams[0].closed


def test_stream_result_close_never_raises() -> None:
    def boom() -> None:
        raise OSError("already closed")

    StreamResult(iter(()), {}, boom).close()


# -- adapters over the fake ------------------------------------------------------------------


def test_llm_over_the_fake_transport() -> None:
    fake = FakeTransport().reply([{"generated_text": "hi"}]).stream(*_tgi_stream("x", "y"))
    llm = SageMakerLLM(endpoint_name="ep", transport=fake, max_tokens=5)
    assert llm.invoke("q") == "hi"
    assert json.loads(fake.calls[0].params["Body"])["parameters"]["max_new_tokens"] == 5
    assert list(llm.stream("q")) == ["x", "y"]  # the last chunk carries the finish reason
    llm.close()
    assert fake.closed == 1


def test_field_changes_reach_the_engine() -> None:
    fake = FakeTransport().reply([{"generated_text": "a"}]).reply([{"generated_text": "b"}])
    llm = SageMakerLLM(endpoint_name="ep", transport=fake, max_tokens=5)
    llm.invoke("q")
    llm.max_tokens = 7
    llm.invoke("q")
    sent = [json.loads(c.params["Body"])["parameters"]["max_new_tokens"] for c in fake.calls]
    assert sent == [5, 7]


def test_submit_uploads_then_resumes_through_the_fake() -> None:
    fake = FakeTransport()
    llm = SageMakerLLM(
        endpoint_name="ep", transport=fake,
        async_inference=AsyncInferenceConfig(input_s3_uri="s3://bucket/in/", poll_interval=0.001),
    )
    job = llm.submit("long prompt")
    upload, call = fake.calls
    assert upload.operation == "s3:upload" and call.params["InputLocation"] == upload.params["uri"]
    assert job.status() == "pending"
    fake.objects[job.output_location] = S3Object(b'[{"generated_text": "done"}]')
    assert job.result(timeout=1) == "done" and job.status() == "completed"


def test_session_opens_and_closes_through_the_fake() -> None:
    fake = FakeTransport().reply({}, new_session_id="s-1; Expires=2030-01-01T00:00:00Z").reply({}, closed_session_id="s-1")
    chat = ChatSageMaker(endpoint_name="ep", transport=fake)
    with chat.open_session() as session:
        assert session.session_id == "s-1" and session.expires_at is not None
    assert session.closed_session_id == "s-1"
    assert [c.params["SessionId"] for c in fake.calls] == ["NEW_SESSION", "s-1"]


def test_transport_and_client_are_checked() -> None:
    with pytest.raises(e.ConfigurationError, match="not both"):
        SageMakerLLM(endpoint_name="ep", transport=FakeTransport(), client=object())
    with pytest.raises(e.ConfigurationError, match="transport must be"):
        SageMakerLLM(endpoint_name="ep", transport=object())


def test_an_aiobotocore_client_says_it_serves_async_calls_only() -> None:
    class AioLike:
        async def invoke_endpoint(self, **_: Any) -> None:
            raise AssertionError("not called")

    llm = SageMakerLLM(endpoint_name="ep", client=AioLike())
    with pytest.raises(e.ConfigurationError, match="only serves async calls"):
        llm.invoke("x")


def test_transport_names_select_the_built_in_transports(tmp_path: Any) -> None:
    from sm_llm import load_config
    from sm_llm.transports import BotocoreTransport, SigV4HttpTransport

    default = SageMakerLLM(endpoint_name="ep", region_name="us-east-1")
    assert default.transport == "botocore" and isinstance(default.engine.transport, BotocoreTransport)
    assert "transport" not in default.to_config()
    httpx = SageMakerLLM(endpoint_name="ep", region_name="us-east-1", transport="httpx")
    assert isinstance(httpx.engine.transport, SigV4HttpTransport)
    assert httpx.to_config()["transport"] == "httpx"
    path = tmp_path / "llm.yaml"
    path.write_text(httpx.to_yaml())
    assert load_config(path).transport == "httpx"
    assert SageMakerLLM(endpoint_name="ep", transport=None).transport == "botocore"
    assert "transport" not in SageMakerLLM(endpoint_name="ep", transport=FakeTransport()).to_config()
    with pytest.raises(e.ConfigurationError, match="did you mean httpx"):
        SageMakerLLM(endpoint_name="ep", transport="htpx")
    with pytest.raises(e.ConfigurationError, match="transport='botocore' only"):
        SageMakerLLM(endpoint_name="ep", transport="httpx", client=object())
    assert ChatSageMaker(endpoint_name="ep", transport="httpx", region_name="us-east-1").engine.transport.__class__ is SigV4HttpTransport
