"""Every claim of SECURITY.md that needs no server (the rest: test_security_integration.py)."""

from __future__ import annotations

import json

import pytest
from langchain_core.load import dumpd

from sm_llm import (
    ChatSageMaker,
    ConfigurationError,
    ContentHandler,
    ResponseParseError,
    SageMakerLLM,
)
from sm_llm.chat_templates import ChatTemplate

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ prompt.__class__.__base__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ range.__self__ }}",
    "{{ '{0.__class__.__mro__}'.format(prompt) }}",
    "{{ '{0.__class__}'.format_map([prompt]) }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os }}",
    "{% extends '/etc/hostname' %}",
    "{{ parameters.update({'x': 1}) }}",
    "{{ parameters.setdefault('x', 1) }}",
    "{{ [].append(1) }}",
    "{{ ''.join.__self__.__class__ }}",
]


LEAKS = ("<class", "<module", "<function", "<built-in", "<bound", "root:", "uid=", "__")


@pytest.mark.parametrize("template", ESCAPES)
def test_template_escapes_are_refused(template: str) -> None:
    # Request templates are strict: an unsafe access is an error.
    handler = ContentHandler(request_template=template, response={"text": "x"}, content_type="text/plain")
    with pytest.raises(ConfigurationError):
        handler.render_request("hi", parameters={"a": 1})
    # Chat templates follow transformers (lenient undefined): an unsafe access either fails
    # or renders as nothing — it never yields the object.
    try:
        out = ChatTemplate.resolve(template).render([{"role": "user", "content": "hi"}])
    except ConfigurationError:
        return
    assert not any(leak in out for leak in LEAKS), out


@pytest.mark.parametrize(
    "template",
    ["{{ 'a' * 1000000000 }}", "{{ [0] * 1000000000 }}", "{{ range(1000000000) | list }}", "{{ 2 ** 100000000 }}", "{% set n = 99999999 %}{{ 7 ** n }}"],
)
def test_template_resource_limits(template: str) -> None:
    handler = ContentHandler(request_template=template, response={"text": "x"}, content_type="text/plain")
    with pytest.raises(ConfigurationError):
        handler.render_request("hi")
    with pytest.raises(ConfigurationError):
        ChatTemplate.resolve(template).render([{"role": "user", "content": "hi"}])


CANARY = "canary-9d1e-secret"


@pytest.mark.parametrize("cls", [SageMakerLLM, ChatSageMaker])
def test_secrets_never_leak(cls: type) -> None:
    adapter = cls(
        endpoint_name="ep",
        region_name="us-east-1",
        aws_access_key_id=f"AKIA{CANARY}",
        aws_secret_access_key=CANARY,
        aws_session_token=f"token-{CANARY}",
    )
    texts = [
        repr(adapter),
        str(adapter),
        repr(adapter._settings()),
        str(adapter.model_dump()),
        json.dumps(adapter.to_config()),
        adapter.to_yaml(),
        json.dumps(dumpd(adapter)),
        str(adapter._get_ls_params()),
        str(adapter._identifying_params) if hasattr(adapter, "_identifying_params") else "",
    ]
    for text in texts:
        assert CANARY not in text
    assert adapter.aws_secret_access_key.get_secret_value() == CANARY  # still usable


def test_error_snippets_are_bounded() -> None:
    with pytest.raises(ResponseParseError) as info:
        ContentHandler.from_preset("tgi").parse_response(b"<html>" + b"x" * 100_000)
    assert len(info.value.body_snippet) <= 201
    assert len(str(info.value)) < 500


def test_local_endpoint_refuses_remote_bind() -> None:
    from sm_llm.local import LocalEndpoint

    for host in ("0.0.0.0", "192.168.1.10", "::"):
        with pytest.raises(ConfigurationError, match="allow_remote"):
            LocalEndpoint(host=host)


BAD_URLS = [
    "ftp://127.0.0.1:9000",
    "gopher://127.0.0.1:70/_x",
    "file:///etc/passwd",
    "127.0.0.1:8080",
    "http://",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:8080\n",
    "http://127.0.0.1\t:8080",
]


@pytest.mark.parametrize("url", BAD_URLS, ids=repr)
@pytest.mark.parametrize("cls", [SageMakerLLM, ChatSageMaker])
def test_endpoint_url_must_be_http_with_a_host(cls: type, url: str) -> None:
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        cls(endpoint_name="ep", region_name="us-east-1", endpoint_url=url)


@pytest.mark.parametrize("url", BAD_URLS, ids=repr)
def test_local_upstream_must_be_http_with_a_host(url: str) -> None:
    from sm_llm.local import LocalEndpoint

    with pytest.raises(ConfigurationError, match="upstream"):
        LocalEndpoint(upstream=url)


@pytest.mark.parametrize("field", ["timeout", "connect_timeout", "read_timeout"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), float("-inf")])
def test_non_finite_timeouts_refused_at_construction(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=field):
        SageMakerLLM(endpoint_name="ep", region_name="us-east-1", **{field: value})
