"""The local endpoint's bearer-token verifier against tokens botocore's SigV4 query signer makes."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable

import pytest

from sm_llm.local._bearer import BearerRejected, verify_authorization

KEYS = {"local": "local", "AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
NOW = dt.datetime(2026, 6, 1, 12, 0, 0)


def _verify(header: str | None, *, now: dt.datetime = NOW, region: str = "us-east-1") -> str:
    return verify_authorization(header, credentials=KEYS, region=region, now=now.replace(tzinfo=dt.UTC))


def _rejected(header: str | None, **kwargs: object) -> BearerRejected:
    with pytest.raises(BearerRejected) as info:
        _verify(header, **kwargs)  # type: ignore[arg-type]
    return info.value


def _reencode(token: str, edit: Callable[[str], str]) -> str:
    url = base64.b64decode(token.removeprefix("sagemaker-api-key-")).decode()
    return "sagemaker-api-key-" + base64.b64encode(edit(url).encode()).decode()


def test_accepts_botocore_tokens_with_and_without_session_token(make_bearer_token: Callable[..., str]) -> None:
    plain = make_bearer_token(signed_at=NOW)
    assert _verify(f"Bearer {plain}") == "local"
    secret = KEYS["AKIDEXAMPLE"]
    temporary = make_bearer_token("AKIDEXAMPLE", secret, session_token="FQo/+=token", signed_at=NOW)
    assert "X-Amz-Security-Token" in base64.b64decode(temporary[18:]).decode()
    assert _verify(f"Bearer {temporary}") == "AKIDEXAMPLE"


@pytest.mark.parametrize(
    ("header", "status", "code"),
    [
        (None, 401, "missing_api_key"),
        ("", 401, "missing_api_key"),
        ("Basic abc", 401, "invalid_api_key"),
        ("Bearer ", 401, "invalid_api_key"),
        ("Bearer bedrock-api-key-abc", 401, "invalid_api_key"),
        ("Bearer sagemaker-api-key-%%%notbase64", 401, "invalid_api_key"),
        ("Bearer sagemaker-api-key-" + base64.b64encode(b"example.com/?a=b").decode(), 401, "invalid_api_key"),
        (
            "AWS4-HMAC-SHA256 Credential=local/20260601/us-east-1/sagemaker/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=abc",
            403,
            "access_denied",
        ),
    ],
)
def test_refuses_missing_malformed_and_sigv4(header: str | None, status: int, code: str) -> None:
    error = _rejected(header)
    assert (error.status, error.code) == (status, code)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda u: u.removesuffix("&Version=1"), "Version=1"),
        (lambda u: u.replace("Action=CallWithBearerToken", "Action=InvokeEndpoint"), "Action"),
        (lambda u: u.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "X-Amz-Algorithm"),
        (lambda u: u.replace("sagemaker.amazonaws.com/", "bedrock.amazonaws.com/", 1), "presigned for"),
        (lambda u: u.replace("X-Amz-Expires=300", "X-Amz-Expires=43201"), "X-Amz-Expires"),
        (lambda u: u.replace("%2Fsagemaker%2F", "%2Fbedrock%2F"), "X-Amz-Credential"),
        (lambda u: u.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Bx-amz-date"), "SignedHeaders"),
    ],
)
def test_refuses_tokens_that_are_not_a_callwithbearertoken_presign(
    make_bearer_token: Callable[..., str], edit: Callable[[str], str], needle: str
) -> None:
    token = _reencode(make_bearer_token(signed_at=NOW), edit)
    error = _rejected(f"Bearer {token}")
    assert error.status == 401
    assert needle in error.message


def test_expiry_is_signing_time_plus_expires(make_bearer_token: Callable[..., str]) -> None:
    token = make_bearer_token(signed_at=NOW, expires=60)
    assert _verify(f"Bearer {token}", now=NOW + dt.timedelta(seconds=59)) == "local"
    error = _rejected(f"Bearer {token}", now=NOW + dt.timedelta(seconds=60))
    assert (error.status, error.code) == (401, "expired_api_key")
    assert "2026-06-01T12:01:00Z" in error.message


def test_twelve_hours_is_the_longest_life(make_bearer_token: Callable[..., str]) -> None:
    token = make_bearer_token(signed_at=NOW, expires=43_200)
    assert _verify(f"Bearer {token}", now=NOW + dt.timedelta(hours=11, minutes=59)) == "local"


def test_token_signed_in_the_future_is_refused(make_bearer_token: Callable[..., str]) -> None:
    token = make_bearer_token(signed_at=NOW + dt.timedelta(minutes=10))
    assert _rejected(f"Bearer {token}").status == 401


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret_key": "wrong"}, "signature_mismatch"),
        ({"access_key": "AKIDUNKNOWN"}, "unknown_access_key"),
        ({"region": "eu-west-1"}, "invalid_region"),
    ],
)
def test_well_formed_but_unacceptable_tokens_are_forbidden(
    make_bearer_token: Callable[..., str], kwargs: dict[str, str], code: str
) -> None:
    error = _rejected(f"Bearer {make_bearer_token(signed_at=NOW, **kwargs)}")
    assert (error.status, error.code) == (403, code)


def test_tampered_session_token_breaks_the_signature(make_bearer_token: Callable[..., str]) -> None:
    token = make_bearer_token(session_token="abc", signed_at=NOW)
    tampered = _reencode(token, lambda u: u.replace("X-Amz-Security-Token=abc", "X-Amz-Security-Token=abd"))
    assert _rejected(f"Bearer {tampered}").code == "signature_mismatch"
