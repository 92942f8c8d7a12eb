"""Long jobs with SageMaker asynchronous inference: submit, resume, wait for many.

    python examples/async_job.py       # local endpoint + a local S3 (moto)
    SM_LLM_ENDPOINT=my-async-ep SM_LLM_ASYNC_INPUT_S3_URI=s3://bucket/in/ python examples/async_job.py
"""

import json

from _endpoint import async_endpoint

from sm_llm import AsyncInferenceConfig, SageMakerLLM
from sm_llm.async_inference import InferenceJob, wait_all

with async_endpoint("tgi") as (where, s3):
    config = AsyncInferenceConfig(**s3, poll_interval=0.2, max_poll_interval=2, timeout=600)
    llm = SageMakerLLM(**where, content_handler="tgi", max_tokens=32, async_inference=config)

    # One job: submit returns at once; the body went to S3 and InvokeEndpointAsync answered 202.
    job = llm.submit("Summarise the collected works of a very long-winded author")
    print("submitted", job.inference_id, "→", job.output_location)

    # Save the job and resume it elsewhere (another process, after a restart...).
    saved = json.dumps(job.to_dict())
    resumed = InferenceJob.from_dict(json.loads(saved), llm=llm)
    print("result:", resumed.result(timeout=60))

    # Many jobs on one polling schedule, with a progress bar on a terminal.
    jobs = [llm.submit(f"chapter {n}") for n in range(1, 6)]
    for text in wait_all(jobs, timeout=120, progress=True):
        print(" ", text)

    # With async_inference set, invoke itself submits and waits: chains need no change.
    print("invoke:", llm.invoke("a prompt that takes an hour on a real endpoint"))
