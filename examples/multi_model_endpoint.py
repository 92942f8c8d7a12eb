"""A multi-model endpoint: one endpoint, many models, picked per call with TargetModel.

The endpoint is the local `mme` endpoint unless SM_LLM_ENDPOINT names a real one
(set SM_LLM_MODELS to its model archives, comma-separated).
"""

import os

from _endpoint import endpoint

from sm_llm import SageMakerLLM

models = os.environ.get("SM_LLM_MODELS", "model-a.tar.gz,model-b.tar.gz").split(",")

with endpoint("mme") as where:
    llm = SageMakerLLM(**where, content_handler="tgi", max_tokens=16, target_model=models[0])

    print(models[0], "→", llm.invoke("hello from the default model"))
    # Per call: the kwarg wins over the field.
    print(models[1], "→", llm.invoke("hello from the other model", target_model=models[1]))
    # Bound once, reused in a chain.
    other = llm.bind(target_model=models[1])
    print("bound  →", other.invoke("bound to the other model"))
    # batch() runs concurrently; each prompt can go to a different model via per-call kwargs.
    print(llm.batch(["one", "two", "three"]))
