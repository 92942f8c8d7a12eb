"""A batch job over JSONL: prompts in, one answer line per record out, resumable.

The same as ``sm-llm batch prompts.jsonl --out answers.jsonl --endpoint tgi``; run it twice
and the second run skips every id already answered.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _endpoint import describe, endpoint

from sm_llm import SageMakerLLM
from sm_llm.batch import run_batch

with endpoint("tgi") as where, tempfile.TemporaryDirectory() as folder:
    llm = SageMakerLLM(**where, content_handler="tgi", max_tokens=16, region_name="us-east-1")
    print(describe({**where, "region_name": "us-east-1"}))
    prompts, answers = Path(folder) / "prompts.jsonl", Path(folder) / "answers.jsonl"
    with prompts.open("w", encoding="utf-8") as handle:
        for i in range(10):
            handle.write(json.dumps({"id": f"doc-{i}", "prompt": f"Summarise document {i}"}) + "\n")
        handle.write(json.dumps({"id": "short", "prompt": "one two three four", "max_tokens": 2}) + "\n")
        handle.write(json.dumps({"id": "chat", "messages": [{"role": "user", "content": "hi"}]}) + "\n")

    report = run_batch(llm, prompts, answers, concurrency=8, progress=False)
    print(f"first run: {report.summary()}")
    line = next(json.loads(text) for text in answers.read_text(encoding="utf-8").splitlines() if "short" in text)
    print(f"short: {line['output']} (finish reason {line['finish_reason']})")

    report = run_batch(llm, prompts, answers, concurrency=8, progress=False)  # nothing left to do
    print(f"resumed: {report.summary()}")
