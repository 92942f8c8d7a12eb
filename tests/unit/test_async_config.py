"""AsyncInferenceConfig validation, the polling schedule and job persistence (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sm_llm.async_inference import AsyncInferenceConfig, InferenceJob, submit, wait_all
from sm_llm.errors import ConfigurationError
from sm_llm.llms import SageMakerLLM
from sm_llm.transports import FakeTransport

S3 = "s3://my-bucket/inputs/"


def _llm(**fields: Any) -> SageMakerLLM:
    return SageMakerLLM(endpoint_name="my-ep", region_name="us-east-1", **fields)


def test_defaults() -> None:
    config = AsyncInferenceConfig(input_s3_uri=S3)
    assert (config.poll_interval, config.poll_backoff, config.max_poll_interval) == (1.0, 2.0, 15.0)
    assert config.timeout == 900
    assert config.inline_body is False
    assert config.request_ttl_seconds is None and config.invocation_timeout_seconds is None


def test_prefix_gets_a_trailing_slash() -> None:
    assert AsyncInferenceConfig(input_s3_uri="s3://my-bucket/in").input_s3_uri == "s3://my-bucket/in/"
    assert AsyncInferenceConfig(input_s3_uri="s3://my-bucket").input_s3_uri == "s3://my-bucket/"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"request_ttl_seconds": 59}, "request_ttl_seconds=59 is not allowed: between 60 and 21600"),
        ({"request_ttl_seconds": 21601}, "request_ttl_seconds=21601"),
        ({"invocation_timeout_seconds": 0}, "invocation_timeout_seconds=0 is not allowed: between 1 and 3600"),
        ({"invocation_timeout_seconds": 3601}, "invocation_timeout_seconds=3601"),
        ({"poll_interval": 0}, "poll_interval=0.0 is not allowed: a positive number of seconds"),
        ({"poll_interval": -1}, "poll_interval=-1"),
        ({"poll_backoff": 0.5}, "poll_backoff=0.5 is not allowed: a growth factor"),
        ({"timeout": -5}, "timeout=-5"),
        ({"poll_interval": 20}, "max_poll_interval (15.0) must not be below poll_interval (20.0)"),
        ({"filename": "a.b.c"}, "filename='a.b.c' is not allowed"),
        ({"filename": "x" * 33}, "filename="),
        ({"filename": "-lead"}, "filename='-lead'"),
        ({"s3_output_path_extension": "s3://x"}, "s3_output_path_extension='s3://x' is not allowed"),
        ({"s3_output_path_extension": "a b"}, "s3_output_path_extension='a b'"),
        ({"expected_bucket_owner": "12345"}, "expected_bucket_owner='12345' is not allowed: a 12-digit"),
        # full-string, ASCII-only matching: "$" accepts a final "\n", "\d" accepts any digit
        ({"filename": "out.json\n"}, "filename='out.json\\n' is not allowed"),
        ({"s3_output_path_extension": "x/y\n"}, "s3_output_path_extension='x/y\\n' is not allowed"),
        ({"expected_bucket_owner": "123456789012\n"}, "expected_bucket_owner='123456789012\\n'"),
        ({"expected_bucket_owner": "\u0661" * 12}, "expected_bucket_owner='\u0661"),
        ({"expected_bucket_owner": "\uff11" * 12}, "expected_bucket_owner='\uff11"),
        ({"timeout": float("inf")}, "timeout=inf is not allowed"),
        ({"poll_interval": float("nan")}, "poll_interval=nan is not allowed"),
        ({"s3_endpoint_url": "ftp://127.0.0.1:9000"}, "s3_endpoint_url='ftp://127.0.0.1:9000' is not allowed"),
        ({"s3_endpoint_url": "127.0.0.1:9000"}, "s3_endpoint_url='127.0.0.1:9000' is not allowed"),
        ({"unknown": 1}, "unknown: Extra inputs are not permitted"),
        ({"request_ttl_seconds": "soon"}, "request_ttl_seconds: Input should be a valid integer"),
    ],
)
def test_bad_fields_are_configuration_errors(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncInferenceConfig(input_s3_uri=S3, **fields)
    assert str(info.value).startswith("invalid AsyncInferenceConfig: ")
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "uri",
    [
        "my-bucket/in/", "https://my-bucket/in/", "s3://", "s3://B/x", "s3://a/x",
        "s3://my-bucket/in/\n", "s3://my-bucket/in\r\nX: 1/", "s3://my-bucket\n", "s3://my-bucket/\u00e9/",
    ],
)
def test_input_uri_must_be_an_s3_prefix(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="is not an S3 prefix: write it as s3://bucket/prefix/"):
        AsyncInferenceConfig(input_s3_uri=uri)


def test_somewhere_to_put_the_input_is_required() -> None:
    with pytest.raises(ConfigurationError, match=r"set input_s3_uri=.*or inline_body=True"):
        AsyncInferenceConfig()
    assert AsyncInferenceConfig(inline_body=True).input_s3_uri is None


def test_service_ranges_are_accepted() -> None:
    config = AsyncInferenceConfig(
        input_s3_uri=S3, request_ttl_seconds=60, invocation_timeout_seconds=3600,
        filename="out.json", s3_output_path_extension="team/a_b", expected_bucket_owner="123456789012",
    )
    assert config.request_ttl_seconds == 60
    assert AsyncInferenceConfig(input_s3_uri=S3, request_ttl_seconds=21600, invocation_timeout_seconds=1)


def test_config_is_frozen_and_coerced() -> None:
    config = AsyncInferenceConfig.coerce({"input_s3_uri": S3, "timeout": 5})
    assert isinstance(config, AsyncInferenceConfig) and config.timeout == 5
    assert AsyncInferenceConfig.coerce(config) is config
    assert AsyncInferenceConfig.coerce(None) is None
    with pytest.raises(ConfigurationError, match="must be an AsyncInferenceConfig or a mapping"):
        AsyncInferenceConfig.coerce("s3://x")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="frozen"):
        config.timeout = 1  # type: ignore[misc]


def test_submit_without_config_says_how_to_configure() -> None:
    with pytest.raises(ConfigurationError, match=r"async_inference=AsyncInferenceConfig\(input_s3_uri="):
        submit(_llm(), "hi")


def test_oversize_inline_body_without_s3_is_refused_before_any_client() -> None:
    fake = FakeTransport()
    llm = _llm(transport=fake)
    config = AsyncInferenceConfig(inline_body=True)
    with pytest.raises(ConfigurationError, match=r"limited to 128,000 bytes.*input_s3_uri"):
        submit(llm, "x " * 70_000, config=config)
    assert fake.calls == []  # nothing was sent, nothing uploaded


@pytest.mark.parametrize(
    "update", [{"filename": "out.json\n"}, {"s3_output_path_extension": "x\n"}, {"expected_bucket_owner": "1" * 11}]
)
def test_a_per_call_model_copy_is_validated_at_submit(update: dict[str, str]) -> None:
    fake = FakeTransport()
    llm = _llm(transport=fake)
    config = AsyncInferenceConfig(inline_body=True).model_copy(update=update)  # pydantic skips validation
    with pytest.raises(ConfigurationError, match=next(iter(update))):
        submit(llm, "hi", config=config)
    assert fake.calls == []


def test_async_routing_rules_apply() -> None:
    with pytest.raises(ConfigurationError, match="multi-model endpoints do not take asynchronous"):
        submit(_llm(), "hi", config=AsyncInferenceConfig(inline_body=True), target_model="m.tar.gz")


# -- the schedule --------------------------------------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pauses(config: AsyncInferenceConfig, timeout: float, elapsed: float, poll_cost: float = 0.0) -> list[float]:
    from sm_llm.engine.polling import poll_waits

    clock = _Clock()
    out = []
    for pause in poll_waits(config, timeout, elapsed, clock):
        out.append(round(pause, 6))
        clock.now += pause + poll_cost
        assert len(out) < 1000, "the schedule must end"
    return out


def test_schedule_backs_off_to_the_cap_and_ends_at_the_deadline() -> None:
    config = AsyncInferenceConfig(inline_body=True)
    pauses = _pauses(config, timeout=60, elapsed=0)
    assert pauses[:6] == [1, 2, 4, 8, 15, 15]
    assert sum(pauses) == pytest.approx(60)  # the last poll is at the deadline, not after it
    assert pauses[-1] == 15


def test_schedule_counts_time_since_submission() -> None:
    config = AsyncInferenceConfig(inline_body=True, poll_interval=2, poll_backoff=3, max_poll_interval=10)
    assert _pauses(config, timeout=30, elapsed=0.5)[:4] == [1.5, 6, 10, 10]
    assert _pauses(config, timeout=30, elapsed=3600)[0] == 0  # a resumed job: look at once


def test_schedule_with_zero_timeout_polls_once() -> None:
    config = AsyncInferenceConfig(inline_body=True)
    assert _pauses(config, timeout=0, elapsed=0) == [0]


def test_schedule_always_terminates_when_polls_are_slow() -> None:
    config = AsyncInferenceConfig(inline_body=True, poll_interval=0.001, max_poll_interval=0.001)
    pauses = _pauses(config, timeout=5, elapsed=0, poll_cost=2.0)
    assert len(pauses) <= 4


# -- persistence ---------------------------------------------------------------------------

def _saved() -> dict[str, Any]:
    return {
        "inference_id": "abc-1",
        "endpoint_name": "my-ep",
        "input_location": "s3://my-bucket/inputs/x.json",
        "output_location": "s3://out-bucket/output/1.out",
        "failure_location": "s3://out-bucket/failures/1-error.out",
        "submitted_at": "2026-01-02T03:04:05+00:00",
        "stop": ["END"],
        "content_handler": "tgi",
    }


def test_from_dict_to_dict_round_trip_is_json() -> None:
    llm = _llm(content_handler="lmi")
    job = InferenceJob.from_dict(_saved(), llm=llm, config={"inline_body": True, "timeout": 3})
    assert job.inference_id == "abc-1" and job.endpoint_name == "my-ep"
    assert job.submitted_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert job.request_like.stop == ["END"]
    assert job.request_like.handler is llm.handler
    assert job.request_like.operation == "InvokeEndpointAsync"
    assert job.config.timeout == 3
    again = json.loads(json.dumps(job.to_dict()))
    assert again == {**_saved(), "content_handler": "lmi"}
    assert "abc-1" in repr(job)


def test_from_dict_naive_timestamp_is_utc_and_config_optional() -> None:
    data = {**_saved(), "submitted_at": "2026-01-02T03:04:05"}
    job = InferenceJob.from_dict(data, llm=_llm())
    assert job.submitted_at.tzinfo is UTC
    assert job.config.timeout == 900  # defaults when the adapter has no async_inference


def test_from_dict_rejects_what_is_not_a_job() -> None:
    with pytest.raises(ConfigurationError, match="not a saved InferenceJob"):
        InferenceJob.from_dict({"inference_id": "x"}, llm=_llm())
    with pytest.raises(ConfigurationError, match="not a saved InferenceJob"):
        InferenceJob.from_dict({**_saved(), "submitted_at": "yesterday"}, llm=_llm())


def test_wait_all_of_nothing() -> None:
    assert wait_all([]) == []


@pytest.mark.parametrize(
    "field", ["output_location", "failure_location", "input_location"]
)
@pytest.mark.parametrize(
    "location",
    [
        "https://169.254.169.254/latest/meta-data/",
        "http://out-bucket.s3.amazonaws.com/key",
        "file:///etc/passwd",
        "s3://out-bucket/",
        "s3://out-bucket/key\n",
        "/tmp/out",
        42,
    ],
)
def test_from_dict_refuses_anything_but_s3_locations(field: str, location: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        InferenceJob.from_dict({**_saved(), field: location}, llm=_llm())


def test_from_dict_checks_the_endpoint_name() -> None:
    with pytest.raises(ConfigurationError, match="endpoint_name"):
        InferenceJob.from_dict({**_saved(), "endpoint_name": "my-ep\n"}, llm=_llm())


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ["END"]), (["END", "###"], ["END", "###"]), (None, None), ([], None)],
)
def test_from_dict_stop_string_is_one_sequence(stop: object, expected: list[str] | None) -> None:
    job = InferenceJob.from_dict({**_saved(), "stop": stop}, llm=_llm())
    assert job.request_like.stop == expected


@pytest.mark.parametrize("stop", [{"a": 1}, [1, 2], 7])
def test_from_dict_refuses_stop_that_is_not_strings(stop: object) -> None:
    with pytest.raises(ConfigurationError, match="stop"):
        InferenceJob.from_dict({**_saved(), "stop": stop}, llm=_llm())
