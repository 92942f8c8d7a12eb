"""A tool-calling agent whose model comes entirely from agent.yaml.

The loop is what LangGraph's prebuilt agents do: call the model with tools,
run the tools it asks for, feed the results back, stop when it answers.
"""

import os
from pathlib import Path

from _endpoint import endpoint
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.tools import tool

from sm_llm import load_config


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"It is 21 °C and sunny in {city}."


@tool
def convert_temperature(celsius: int) -> str:
    """Convert a temperature from Celsius to Fahrenheit."""
    return f"{celsius} °C is {celsius * 9 / 5 + 32:.0f} °F."


TOOLS = {t.name: t for t in (get_weather, convert_temperature)}


def run(question: str, config: Path, max_steps: int = 5) -> str:
    model = load_config(config, name="assistant").bind_tools(list(TOOLS.values()))
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(max_steps):  # bounded: an agent must always terminate
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return str(reply.content)
        for call in reply.tool_calls:
            print(f"  tool call: {call['name']}({call['args']})")
            messages.append(TOOLS[call["name"]].invoke(call))
    return "(no answer within the step limit)"


with endpoint("openai") as where:
    if "endpoint_url" in where:  # the local endpoint: tell boto3 where it is
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = where["endpoint_url"]
    config = Path(__file__).with_name("agent.yaml")
    print("answer:", run("What is the weather like? city: Lisbon", config))
