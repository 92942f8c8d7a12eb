"""Quickstart: a SageMaker-hosted LLM as a LangChain model.

    make demo                       # runs this against the local endpoint
    SM_LLM_ENDPOINT=my-tgi python examples/quickstart.py   # a real TGI endpoint
"""

from _endpoint import describe, endpoint

from sm_llm import SageMakerLLM

with endpoint("tgi") as where:
    print(describe(where))
    llm = SageMakerLLM(**where, content_handler="tgi", max_tokens=32, temperature=0.2)

    print("\ninvoke:")
    print("  ", llm.invoke("SageMaker endpoints are now LangChain models"))

    print("\nstream (a | after each token as it arrives):")
    print("  ", end=" ")
    for piece in llm.stream("Streaming works token by token, even split records"):
        if piece:  # the last record only carries the finish reason
            print(piece, end="|", flush=True)
    print()

    print('\ngenerate with stop=["."] (the text before the stop sequence is returned):')
    result = llm.generate(["What stops at the full stop. Not this"], stop=["."])
    generation = result.generations[0][0]
    info = generation.generation_info or {}
    usage = info.get("usage") or {}
    print("  ", generation.text)
    print(
        f"   finish reason: {info.get('finish_reason')}, "
        f"completion tokens: {usage.get('completion_tokens')}"
    )
