"""Retrieval-augmented generation: SageMaker embeddings + a SageMaker chat model in one chain.

A tiny in-memory corpus is embedded with SageMakerEmbeddings (a TEI container),
the question retrieves the closest passage, and ChatSageMaker answers from it.
The retriever is ten lines of plain Python; any LangChain vector store takes the same
``embeddings`` object (``InMemoryVectorStore.from_documents(docs, embeddings)``, which
needs numpy).
"""

import math
import os

from _endpoint import endpoint
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from sm_llm import ChatSageMaker, SageMakerEmbeddings

CORPUS = [
    "Multi-model endpoints host many models behind one endpoint; TargetModel picks one per request.",
    "Asynchronous inference queues requests, reads inputs from S3 and writes outputs back to S3.",
    "Inference components let several models share the instances of one endpoint.",
    "Production variants split traffic between model versions; TargetVariant pins a request.",
]

prompt = ChatPromptTemplate.from_messages(
    [("system", "Answer from the context only."), ("human", "Context: {context}\nQuestion: {question}")]
)


def cosine(a: list[float], b: list[float]) -> float:
    norms = math.hypot(*a) * math.hypot(*b)
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


with endpoint("tei") as where:
    embeddings = SageMakerEmbeddings(**where, content_handler="tei", batch_size=2)
    vectors = embeddings.embed_documents(CORPUS)  # batched, batches in parallel

    def closest(question: str) -> str:
        query = embeddings.embed_query(question)
        return max(zip(CORPUS, vectors, strict=True), key=lambda pair: cosine(query, pair[1]))[0]

    retriever = RunnableLambda(closest)

    # On AWS: SM_LLM_ENDPOINT names the embeddings endpoint, SM_LLM_CHAT_ENDPOINT the chat one.
    chat_endpoint = os.environ.get("SM_LLM_CHAT_ENDPOINT", "openai")
    chat = ChatSageMaker(**{**where, "endpoint_name": chat_endpoint}, content_handler="openai", max_tokens=64)

    chain = (
        {"context": retriever, "question": RunnablePassthrough()}
        | prompt
        | chat
        | StrOutputParser()
    )
    question = CORPUS[1]  # the deterministic local embeddings match identical text exactly
    print("retrieved:", retriever.invoke(question))
    print("answer:", chain.invoke(question))
