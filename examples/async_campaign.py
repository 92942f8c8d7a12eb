"""A campaign of async jobs that survives crashes: a job ledger, completion notifications.

    python examples/async_campaign.py     # local endpoint + local S3, SNS and SQS (moto)
    SM_LLM_ENDPOINT=my-async-ep SM_LLM_ASYNC_INPUT_S3_URI=s3://bucket/in/ \\
        SM_LLM_ASYNC_QUEUE_URL=https://sqs.us-east-1.amazonaws.com/123456789012/done \\
        python examples/async_campaign.py

Kill it at any moment and run it again: the ledger file remembers every job, nothing is
sent twice, no result is lost (the demo keeps the file in a temporary folder).
"""

import tempfile
from pathlib import Path

from _endpoint import async_endpoint

from sm_llm import AsyncInferenceConfig, SageMakerLLM
from sm_llm.async_inference import JobLedger, submit, wait_all

chapters = [f"chapter {n}" for n in range(1, 9)]

with async_endpoint("tgi", notifications=True) as (where, s3), tempfile.TemporaryDirectory() as tmp:
    # notification_queue_url: waiting reads SQS instead of polling S3 (1 s long polls for the demo)
    config = AsyncInferenceConfig(**s3, notification_wait_seconds=1, timeout=600)
    llm = SageMakerLLM(**where, content_handler="tgi", max_tokens=32, async_inference=config)
    ledger = JobLedger(Path(tmp) / "campaign.db")

    # Each job is recorded before InvokeEndpointAsync, under a key (here the chapter).
    for chapter in chapters:
        submit(llm, f"Summarise {chapter}", ledger=ledger, key=chapter)
    # The script run again after a crash: keys already recorded are not sent again.
    for chapter in chapters:
        submit(llm, f"Summarise {chapter}", ledger=ledger, key=chapter)
    print("jobs in the ledger:", len(ledger))

    # Wait for all of them: results in submission order, outcomes written to the ledger.
    for chapter, text in zip(chapters, wait_all(ledger, progress=True), strict=True):
        print(f"  {chapter}: {text}")

    # Another process needs only the file (the model configuration is in it).
    print("from the file alone:", wait_all(JobLedger(ledger.path))[0])
    llm.close()
