"""Ray Data over a SageMaker endpoint: the same records and output lines as ``sm-llm batch``.

Runs on a local Ray instance (``ray.init(num_cpus=2)``); on a cluster, ``ray.init()``
(or ``RAY_ADDRESS``) connects to it instead and the same ``map_batches`` call spreads the
actors over its nodes. Needs ``pip install 'sm-llm[ray]'``.
"""

from __future__ import annotations

import ray
from _endpoint import describe, endpoint

from sm_llm import SageMakerLLM
from sm_llm.ray import SageMakerMapper

with endpoint("tgi") as where:
    llm = SageMakerLLM(**where, content_handler="tgi", max_tokens=16, region_name="us-east-1")
    print(describe({**where, "region_name": "us-east-1"}))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        records = [{"id": i, "prompt": f"Summarise document number {i}"} for i in range(20)]
        answers = ray.data.from_items(records).map_batches(
            SageMakerMapper,
            fn_constructor_args=(llm,),  # the model is pickled to each actor
            fn_constructor_kwargs={"concurrency": 8},  # calls in flight per actor
            compute=ray.data.ActorPoolStrategy(size=2),  # actors (Ray < 2.51: concurrency=2)
            batch_size=5,
        )
        rows = sorted(answers.take_all(), key=lambda row: row["id"])
    finally:
        ray.shutdown()
    failed = [row for row in rows if row["error"] is not None]
    print(f"{len(rows)} answers, {len(failed)} failed")
    print(f"first: {rows[0]['output']}")
