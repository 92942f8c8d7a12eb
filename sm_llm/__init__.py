"""sm_llm: Amazon SageMaker endpoints as first-class LangChain models.

>>> from sm_llm import SageMakerLLM
>>> llm = SageMakerLLM(endpoint_name="my-tgi", content_handler="tgi", region_name="us-east-1")
>>> from sm_llm import ChatSageMaker
>>> chat = ChatSageMaker(endpoint_name="my-vllm", content_handler="openai", region_name="us-east-1")
"""

from sm_llm._async_config import AsyncInferenceConfig
from sm_llm.chat_models import ChatSageMaker
from sm_llm.chat_templates import ChatTemplate
from sm_llm.config import load_config
from sm_llm.embeddings import SageMakerEmbeddings
from sm_llm.errors import (
    AsyncInferenceError,
    AuthenticationError,
    ConfigurationError,
    EndpointNotFoundError,
    JobTimeoutError,
    ModelError,
    ModelNotReadyError,
    NoCapacityError,
    RequestValidationError,
    ResponseParseError,
    SageMakerError,
    StreamError,
)
from sm_llm.handlers import ContentHandler, ParsedOutput
from sm_llm.llms import SageMakerLLM

__version__ = "0.1.0"

__all__ = [
    "AsyncInferenceConfig",
    "AsyncInferenceError",
    "AuthenticationError",
    "ChatSageMaker",
    "ChatTemplate",
    "ConfigurationError",
    "ContentHandler",
    "EndpointNotFoundError",
    "JobTimeoutError",
    "ModelError",
    "ModelNotReadyError",
    "NoCapacityError",
    "ParsedOutput",
    "RequestValidationError",
    "ResponseParseError",
    "SageMakerEmbeddings",
    "SageMakerError",
    "SageMakerLLM",
    "StreamError",
    "__version__",
    "load_config",
]
