"""Ray Data: ``SageMakerMapper`` in ``map_batches`` on a local Ray instance, against the
local endpoint — the model pickled to the actors, output rows shaped as ``sm-llm batch``
lines. One test: starting Ray takes seconds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sm_llm import SageMakerLLM
from sm_llm.local import LocalEndpoint
from sm_llm.ray import COLUMNS, SageMakerMapper


# Once, on botocore: starting Ray takes seconds; the mapper itself runs on each transport below.
def test_map_batches_through_actors(local_endpoint: LocalEndpoint) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'sm-llm[ray]'; no wheel for every Python)")
    llm = SageMakerLLM(endpoint_name="tgi", endpoint_url=local_endpoint.url, region_name="us-east-1", max_retries=0)
    llm.invoke("used before shipping")  # a used model pickles too
    records: list[dict[str, Any]] = [{"id": i, "prompt": f"doc {i}", "target_model": None} for i in range(12)]
    records[3]["target_model"] = "nope.tar.gz"  # a per-record error, not a failed batch
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = ray.data.from_items(records).map_batches(
            SageMakerMapper, fn_constructor_args=(llm,), fn_constructor_kwargs={"concurrency": 4},
            compute=ray.data.ActorPoolStrategy(size=2), batch_size=4,
        ).take_all()
    finally:
        ray.shutdown()
    by_id = {row["id"]: row for row in rows}
    assert sorted(by_id) == list(range(12)) and set(rows[0]) == set(COLUMNS)
    assert by_id[0]["output"] == "Echo: doc 0" and by_id[0]["error"] is None
    assert by_id[0]["finish_reason"] == "stop" and by_id[0]["usage"]["output_tokens"] == 3
    assert by_id[3]["output"] is None and by_id[3]["error"]["type"] == "RequestValidationError"
    assert len(local_endpoint.requests) == 1 + 12
    assert sorted(json.loads(r.body)["inputs"] for r in local_endpoint.requests[1:]) == sorted(f"doc {i}" for i in range(12))


def test_mapper_without_ray_keeps_row_order_and_drops_missing_values(make_llm: Any) -> None:
    """The mapper is a plain callable: a batch (dict of columns) in, the output columns out."""
    llm = make_llm("mme")
    mapper = SageMakerMapper(llm, concurrency=2)
    out = mapper({"id": [1, 2, 3], "prompt": ["a", "b", "c"], "target_model": ["model-b.tar.gz", None, "model-b.tar.gz"]})
    assert out["id"] == [1, 2, 3] and out["output"] == ["B: a", None, "B: c"]
    assert out["error"][1]["type"] == "RequestValidationError"  # no target model on a multi-model endpoint
    mapper.close()
    assert mapper._loop.is_closed()
