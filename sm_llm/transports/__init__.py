"""Transports: the only place that talks to botocore, boto3, aiobotocore and httpx.

:class:`Transport` is what the engine needs (SageMaker Runtime calls, sync and async,
and the S3 operations of asynchronous jobs); :class:`BotocoreTransport` is the real one,
:class:`SigV4HttpTransport` the same operations on httpx (``transport="httpx"``),
:class:`OpenAIRouteTransport` SageMaker's OpenAI-compatible route (bearer tokens, on the
httpx base :class:`HttpTransport`), :class:`FakeTransport` an in-memory one for unit
tests. Every failure leaves a transport as an :mod:`sm_llm.errors` exception.
"""

from sm_llm.transports.aws import BotocoreTransport
from sm_llm.transports.base import InvokeResult, QueueMessage, S3Object, StreamResult, Transport
from sm_llm.transports.clients import ClientSettings
from sm_llm.transports.fake import FakeCall, FakeStream, FakeTransport
from sm_llm.transports.http import HttpTransport
from sm_llm.transports.openai_route import OpenAIRouteTransport
from sm_llm.transports.sigv4_http import SigV4HttpTransport

__all__ = [
    "BotocoreTransport",
    "ClientSettings",
    "FakeCall",
    "FakeStream",
    "FakeTransport",
    "HttpTransport",
    "InvokeResult",
    "OpenAIRouteTransport",
    "QueueMessage",
    "S3Object",
    "SigV4HttpTransport",
    "StreamResult",
    "Transport",
]
