"""sm_llm: Amazon SageMaker endpoints as LangChain models."""
