"""A LangChain chain: prompt | llm | parser, invoked, streamed and batched.

    python examples/chain.py                          # local endpoint
    SM_LLM_ENDPOINT=my-tgi python examples/chain.py   # a real TGI endpoint
"""

from _endpoint import endpoint
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate

from sm_llm import SageMakerLLM

prompt = PromptTemplate.from_template("Summarise in one line: {text}")

with endpoint("tgi") as where:
    llm = SageMakerLLM(**where, content_handler="tgi", max_tokens=48, stop=["\n\n"])
    chain = prompt | llm | StrOutputParser()

    print("invoke:", chain.invoke({"text": "SageMaker hosts models behind HTTPS endpoints."}))

    print("stream:", end=" ")
    for piece in chain.stream({"text": "Tokens arrive one by one."}):
        print(piece, end="", flush=True)
    print()

    texts = [{"text": f"document number {i}"} for i in range(4)]
    for line in chain.batch(texts, config={"max_concurrency": 4}):
        print("batch:", line)
