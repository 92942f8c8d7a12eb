"""Coming from langchain-aws: keep your handler first, then drop it for a preset.

Before (langchain-aws)::

    from langchain_aws import SagemakerEndpoint

    llm = SagemakerEndpoint(
        endpoint_name="my-tgi", region_name="us-east-1",
        content_handler=ContentHandler(),            # the class below
        model_kwargs={"max_new_tokens": 32},
        endpoint_kwargs={"CustomAttributes": "accept_eula=true"},
    )

After: the README section "Coming from langchain-aws" shows the code between the
``# --- after`` markers, which this script runs (tests/integration/test_examples.py).
"""

from _endpoint import endpoint

try:  # your handler may keep its langchain-aws base class; sm_llm does not need it
    from langchain_aws.llms.sagemaker_endpoint import LLMContentHandler
except ImportError:
    LLMContentHandler = object

# --- after
import json

from sm_llm import SageMakerLLM


class ContentHandler(LLMContentHandler):  # unchanged from your langchain-aws code
    content_type = "application/json"
    accepts = "application/json"

    def transform_input(self, prompt, model_kwargs):
        return json.dumps({"inputs": prompt, "parameters": model_kwargs}).encode("utf-8")

    def transform_output(self, output):
        return json.loads(output.read().decode("utf-8"))[0]["generated_text"]


with endpoint("tgi") as where:  # {"endpoint_name": "my-tgi", "region_name": "us-east-1"} on AWS
    # 1. Same handler object, same arguments: SagemakerEndpoint → SageMakerLLM.
    llm = SageMakerLLM(
        **where,
        content_handler=ContentHandler(),
        model_kwargs={"max_new_tokens": 32},
        endpoint_kwargs={"CustomAttributes": "accept_eula=true"},  # → custom_attributes
    )
    print("handler object:", llm.invoke("Porting from langchain-aws keeps your handler"))

    # 2. Then replace the code with a preset: LangChain's standard parameters,
    #    streaming and routing fields come with it.
    llm = SageMakerLLM(
        **where,
        content_handler="tgi",
        max_tokens=32,                          # mapped to TGI's max_new_tokens
        custom_attributes="accept_eula=true",
    )
    print("preset:", llm.invoke("A preset replaces the handler class"))
    print("stream:", "|".join(llm.stream("Streaming needs no handler code")))
# --- after
