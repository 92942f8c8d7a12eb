"""Quickstart: a SageMaker-hosted LLM as a LangChain model.

    make demo                       # runs this against the local endpoint
    SM_LLM_ENDPOINT=my-tgi python examples/quickstart.py   # a real TGI endpoint
"""

from _endpoint import endpoint

from sm_llm import SageMakerLLM

with endpoint("tgi") as where:
    llm = SageMakerLLM(**where, content_handler="tgi", max_tokens=32, temperature=0.2)

    print(llm.invoke("SageMaker endpoints are now LangChain models"))

    for piece in llm.stream("Streaming works token by token, even split records"):
        print(piece, end="|", flush=True)
    print()

    result = llm.generate(["What stops at the full stop. Not this"], stop=["."])
    generation = result.generations[0][0]
    print(repr(generation.text), generation.generation_info)
