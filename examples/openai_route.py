"""SageMaker's OpenAI-compatible route: ChatSageMaker(api="openai"), and a bearer token for
any other OpenAI client.

    python examples/openai_route.py                               # local endpoint
    SM_LLM_ENDPOINT=my-vllm python examples/openai_route.py       # a real endpoint (vLLM, SGLang...)

ChatSageMaker makes the bearer tokens itself, from the same AWS credentials boto3 would use,
and renews them before they expire; locally those are the dummy ``local`` keys.
"""

import os

import httpx
from _endpoint import endpoint
from botocore.credentials import Credentials
from langchain_core.tools import tool

from sm_llm import ChatSageMaker
from sm_llm.auth import generate_bearer_token


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return f"sunny in {city}"


with endpoint("openai") as where:
    chat = ChatSageMaker(**where, api="openai", max_tokens=64)
    print("route:", chat.invoke("SageMaker speaks OpenAI").content)

    print("stream:", end=" ")
    for chunk in chat.stream("Tokens arrive as server-sent events"):
        print(chunk.content, end="|", flush=True)
    print()

    call = chat.bind_tools([get_weather], tool_choice="get_weather").invoke("Lisbon")
    print("tool call:", call.tool_calls[0]["name"], call.tool_calls[0]["args"])

    local_url = where.get("endpoint_url")
    if local_url:  # an inference component is named in the path: the local "components" endpoint has one
        component = ChatSageMaker(
            endpoint_name="components", inference_component_name="ic-openai", api="openai", endpoint_url=local_url
        )
        print("component:", component.invoke("hello from a component").content)

    # A token for other OpenAI clients (ChatOpenAI, the openai SDK, curl): send it as
    # "Authorization: Bearer <token>". It lives 12 hours at most; anyone holding it can call.
    if local_url:
        token = generate_bearer_token("us-east-1", Credentials("local", "local"))
        base_url = f"{local_url}/endpoints/openai/openai/v1"
    else:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        token = generate_bearer_token(region)
        base_url = f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{where['endpoint_name']}/openai/v1"
    print("token:", token[:18] + "…", f"({len(token)} characters)")
    reply = httpx.post(
        f"{base_url}/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "", "messages": [{"role": "user", "content": "plain HTTP works too"}]},
        timeout=30,
    )
    print("other client:", reply.json()["choices"][0]["message"]["content"])
