"""Bearer tokens (sm_llm.auth): AWS's format, expiry rules, the cache, secrecy, ``sm-llm token``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.credentials import Credentials, RefreshableCredentials
from pydantic import SecretStr

from sm_llm.auth import TOKEN_PREFIX, TokenSource, credentials_for, generate_bearer_token
from sm_llm.cli import main
from sm_llm.errors import ConfigurationError
from sm_llm.transports import ClientSettings, bearer

KEY = "AKIDEXAMPLE0000000001"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+tok/en=="  # '/', '+', '='
NOW = datetime(2026, 5, 14, 9, 30, 15, tzinfo=UTC)


def decode(token: str) -> str:
    assert token.startswith(TOKEN_PREFIX)
    return base64.b64decode(token.removeprefix(TOKEN_PREFIX), validate=True).decode("utf-8")


def query(token: str) -> dict[str, str]:
    pairs = decode(token).split("?", 1)[1].split("&")
    return dict(pair.split("=", 1) for pair in pairs)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _enc(text: str) -> str:  # SigV4's URI encoding: RFC 3986 unreserved characters kept
    return quote(text, safe="-_.~")


def expected_url(key: str, secret: str, session: str | None, region: str, when: datetime, expires: int) -> str:
    """The presigned URL written out from the SigV4 specification, with hashlib and hmac only."""
    amz_date, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    scope = f"{day}/{region}/sagemaker/aws4_request"
    params = [  # in the order botocore writes them: the operation's, then the auth ones
        ("Action", "CallWithBearerToken"),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if session is not None:
        params.append(("X-Amz-Security-Token", session))
    canonical_query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params))
    canonical_request = "\n".join([
        "POST",
        "/",
        canonical_query,
        "host:sagemaker.amazonaws.com\n",  # canonical headers end with a newline
        "host",
        hashlib.sha256(b"").hexdigest(),
    ])
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()
    ])
    signing_key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region), "sagemaker"), "aws4_request")
    signature = hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    written = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params)
    return f"sagemaker.amazonaws.com/?{written}&X-Amz-Signature={signature}&Version=1"


# --- compatibility with AWS's format -------------------------------------------------------

@pytest.mark.parametrize(("session", "region", "expires"), [
    (SESSION, "us-west-2", 3600), (None, "eu-central-1", 43_200), (SESSION, "ap-southeast-2", 1),
])
def test_token_decodes_to_the_independently_computed_sigv4_presigned_url(
    session: str | None, region: str, expires: int
) -> None:
    token = generate_bearer_token(
        region, Credentials(KEY, SECRET, session), timedelta(seconds=expires), now=NOW
    )
    assert decode(token) == expected_url(KEY, SECRET, session, region, NOW, expires)
    # standard base64 with padding, as AWS's generator writes it
    assert token == TOKEN_PREFIX + base64.b64encode(decode(token).encode()).decode()


def test_token_is_byte_identical_to_aws_generators_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS's generator: AWSRequest + SigV4QueryAuth.add_auth (its own clock), scheme cut,
    ``&Version=1``, base64, prefix. Same credentials, time and expiry → the same bytes."""
    import botocore.auth
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: NOW.replace(tzinfo=None))
    request = AWSRequest(method="POST", url="https://sagemaker.amazonaws.com/",
                         headers={"host": "sagemaker.amazonaws.com"}, params={"Action": "CallWithBearerToken"})
    credentials = Credentials(KEY, SECRET, SESSION)
    SigV4QueryAuth(credentials.get_frozen_credentials(), "sagemaker", "us-east-1", expires=43_200).add_auth(request)
    reference = "sagemaker-api-key-" + base64.b64encode(
        (request.url.replace("https://", "") + "&Version=1").encode("utf-8")).decode("utf-8")

    assert generate_bearer_token("us-east-1", credentials, now=NOW) == reference


def test_default_expiry_is_twelve_hours_and_naive_now_is_utc() -> None:
    token = generate_bearer_token("us-east-1", Credentials(KEY, SECRET), now=NOW.replace(tzinfo=None))
    assert query(token)["X-Amz-Expires"] == "43200"
    assert query(token)["X-Amz-Date"] == "20260514T093015Z"


# --- expiry ----------------------------------------------------------------------------------

@pytest.mark.parametrize("expiry", [
    timedelta(0), timedelta(seconds=-5), timedelta(milliseconds=500), timedelta(hours=12, seconds=1), timedelta(days=2),
])
def test_expiry_out_of_bounds_is_a_configuration_error(expiry: timedelta) -> None:
    with pytest.raises(ConfigurationError, match="between 1 second and 12 hours") as caught:
        generate_bearer_token("us-east-1", Credentials(KEY, SECRET), expiry, now=NOW)
    assert caught.value.field == "expiry"


def test_expiry_must_be_a_timedelta() -> None:
    with pytest.raises(ConfigurationError, match="timedelta"):
        generate_bearer_token("us-east-1", Credentials(KEY, SECRET), 3600, now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(("expiry", "seconds"), [
    (timedelta(hours=12), "43200"), (timedelta(seconds=1), "1"), (timedelta(seconds=90.7), "90"),
])
def test_expiry_in_bounds_is_written_in_whole_seconds(expiry: timedelta, seconds: str) -> None:
    token = generate_bearer_token("us-east-1", Credentials(KEY, SECRET), expiry, now=NOW)
    assert query(token)["X-Amz-Expires"] == seconds


def refreshable(expires_at: datetime, keys: list[tuple[str, str, str]] | None = None) -> RefreshableCredentials:
    """Credentials expiring at ``expires_at``; each refresh hands out the next key set."""
    keys = keys or [(KEY, SECRET, SESSION)]
    state = {"n": 0}

    def refresh() -> dict[str, str]:
        state["n"] += 1
        key, secret, session = keys[min(state["n"], len(keys) - 1)]
        return {"access_key": key, "secret_key": secret, "token": session, "expiry_time": expires_at.isoformat()}

    key, secret, session = keys[0]
    return RefreshableCredentials(key, secret, session, expires_at, refresh, "test")


def test_token_never_outlives_its_credentials() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    credentials = refreshable(now + timedelta(minutes=40))  # beyond botocore's refresh windows
    token = generate_bearer_token("us-east-1", credentials, timedelta(hours=12), now=now)
    assert query(token)["X-Amz-Expires"] == str(40 * 60)
    assert decode(token) == expected_url(KEY, SECRET, SESSION, "us-east-1", now, 40 * 60)
    # a shorter expiry than the credentials' is kept as asked
    assert query(generate_bearer_token("us-east-1", credentials, timedelta(minutes=10), now=now))["X-Amz-Expires"] == "600"


def test_expired_credentials_are_a_configuration_error() -> None:
    now = datetime.now(UTC)
    credentials = refreshable(now + timedelta(minutes=40))
    with pytest.raises(ConfigurationError, match="credentials expired at"):
        generate_bearer_token("us-east-1", credentials, now=now + timedelta(hours=1))


def test_a_failed_credential_refresh_is_a_configuration_error_without_secrets() -> None:
    def fail() -> dict[str, str]:
        raise RuntimeError("the credential process failed")

    stale = RefreshableCredentials(KEY, SECRET, SESSION, datetime.now(UTC) - timedelta(minutes=1), fail, "test")
    with pytest.raises(ConfigurationError, match="cannot refresh the AWS credentials") as caught:
        generate_bearer_token("us-east-1", stale)
    assert SECRET not in str(caught.value) and SESSION not in str(caught.value)


def test_credentials_are_frozen_once_before_signing() -> None:
    """Refreshable credentials that would rotate between two reads still sign with one key set."""
    now = datetime.now(UTC)
    keys = [(f"AKIDVERSION{i:010d}", f"secret-{i}", f"session-{i}") for i in range(8)]
    rotating = refreshable(now + timedelta(minutes=12), keys)  # inside botocore's advisory window:
    # every property read would refresh, so an unfrozen signer mixes versions
    token = generate_bearer_token("us-east-1", rotating, timedelta(minutes=5), now=now)
    q = query(token)
    key = q["X-Amz-Credential"].split("%2F", 1)[0]
    index = int(key.removeprefix("AKIDVERSION"))
    assert q["X-Amz-Security-Token"] == f"session-{index}"
    assert decode(token) == expected_url(key, f"secret-{index}", f"session-{index}", "us-east-1", _utc_seconds(now), 300)


def _utc_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


# --- where credentials and region come from ---------------------------------------------------

@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No credentials anywhere botocore looks (files empty, metadata service disabled)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "empty").write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


@pytest.mark.usefixtures("no_aws")
def test_no_credentials_says_where_it_looked() -> None:
    with pytest.raises(ConfigurationError) as caught:
        generate_bearer_token("us-east-1")
    message = str(caught.value)
    for place in ("aws_access_key_id", "AWS_ACCESS_KEY_ID", "~/.aws/credentials", "SSO",
                  "credential_process", "role_arn", "AWS_WEB_IDENTITY_TOKEN_FILE", "container", "instance"):
        assert place in message
    assert caught.value.field == "credentials_profile_name"


@pytest.mark.usefixtures("no_aws")
def test_no_region_is_the_projects_region_error() -> None:
    with pytest.raises(ConfigurationError, match="no AWS region is configured") as caught:
        generate_bearer_token(credentials=Credentials(KEY, SECRET))
    assert caught.value.field == "region_name"


@pytest.mark.usefixtures("no_aws")
def test_region_and_credentials_come_from_the_environment_and_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    q = query(generate_bearer_token(now=NOW))
    assert q["X-Amz-Credential"] == f"{KEY}%2F20260514%2Feu-west-3%2Fsagemaker%2Faws4_request"

    monkeypatch.delenv("AWS_REGION")
    (tmp_path / "config").write_text(
        "[profile dev]\nregion = ap-south-1\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    q = query(generate_bearer_token(profile_name="dev", now=NOW))
    assert q["X-Amz-Credential"] == "AKIDPROFILE%2F20260514%2Fap-south-1%2Fsagemaker%2Faws4_request"
    with pytest.raises(ConfigurationError, match="profile 'nope' was not found"):
        generate_bearer_token("us-east-1", profile_name="nope")


@pytest.mark.usefixtures("no_aws")
def test_on_a_loopback_endpoint_the_token_uses_the_local_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same dummy credentials and region the clients use against the local endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:8080")
    q = query(generate_bearer_token(now=NOW))
    assert q["X-Amz-Credential"] == "local%2F20260514%2Fus-east-1%2Fsagemaker%2Faws4_request"


def test_credentials_for_uses_the_key_fields() -> None:
    found = credentials_for(ClientSettings(aws_access_key_id=KEY, aws_secret_access_key=SECRET, aws_session_token=SESSION))
    assert (found.access_key, found.secret_key, found.token) == (KEY, SECRET, SESSION)
    with pytest.raises(ConfigurationError, match="go together") as caught:
        credentials_for(ClientSettings(aws_access_key_id=KEY))
    assert KEY not in str(caught.value)


def test_something_not_credentials_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="botocore credentials"):
        generate_bearer_token("us-east-1", object())


# --- TokenSource --------------------------------------------------------------------------------

class Clock:
    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def test_token_source_caches_and_renews_five_minutes_before_expiry() -> None:
    clock = Clock()
    source = TokenSource(region="us-east-1", credentials=lambda: Credentials(KEY, SECRET), expiry=timedelta(hours=1), clock=clock)
    first = source.token()
    assert source.expires_at == NOW + timedelta(hours=1)
    clock.advance(minutes=54, seconds=59)
    assert source.token() is first
    clock.advance(seconds=1)  # 5 minutes left: renew
    second = source.token()
    assert second.get_secret_value() != first.get_secret_value()
    assert query(second.get_secret_value())["X-Amz-Date"] == "20260514T102515Z"
    assert source.expires_at == clock.now + timedelta(hours=1)


def test_a_short_token_is_renewed_at_ninety_percent_of_its_life() -> None:
    clock = Clock()
    source = TokenSource(region="us-east-1", credentials=lambda: Credentials(KEY, SECRET), expiry=timedelta(seconds=60), clock=clock)
    first = source.token()
    clock.advance(seconds=53)
    assert source.token() is first
    clock.advance(seconds=1)
    assert source.token() is not first


def test_token_source_makes_a_new_token_when_credentials_rotate() -> None:
    clock = Clock()
    current = {"credentials": Credentials(KEY, SECRET, "session-1")}
    source = TokenSource(region="us-east-1", credentials=lambda: current["credentials"], clock=clock)
    first = source.token()
    assert source.token() is first
    current["credentials"] = Credentials(KEY, SECRET, "session-2")  # same key id, new session
    second = source.token()
    assert query(second.get_secret_value())["X-Amz-Security-Token"] == "session-2"
    current["credentials"] = Credentials("AKIDROTATED", "other", "session-2")
    assert query(source.token().get_secret_value())["X-Amz-Credential"].startswith("AKIDROTATED%2F")


def test_token_source_follows_refreshable_credentials() -> None:
    """botocore refreshes credentials inside the advisory window; the token follows at once."""
    now = datetime.now(UTC)
    keys = [(KEY, SECRET, "session-1"), ("AKIDNEXT", "next-secret", "session-2")]
    credentials = refreshable(now + timedelta(hours=2), keys)
    clock = Clock(now)
    source = TokenSource(region="us-east-1", credentials=lambda: credentials, clock=clock)
    first = source.token()
    assert query(first.get_secret_value())["X-Amz-Credential"].startswith(f"{KEY}%2F")
    assert source.expires_at is not None and source.expires_at <= now + timedelta(hours=2)
    credentials._expiry_time = now + timedelta(minutes=1)  # as if time passed: botocore now refreshes
    second = source.token()
    assert query(second.get_secret_value())["X-Amz-Credential"].startswith("AKIDNEXT%2F")


def test_invalidate_forces_a_fresh_token() -> None:
    clock = Clock()
    source = TokenSource(region="us-east-1", credentials=lambda: Credentials(KEY, SECRET), clock=clock)
    first = source.token()
    clock.advance(seconds=1)
    assert source.token() is first
    source.invalidate()
    assert source.expires_at is None
    assert source.token().get_secret_value() != first.get_secret_value()


def test_token_source_signs_once_for_concurrent_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    signed: list[int] = []
    real = bearer._presigned_token

    def counting(*args: Any) -> str:
        signed.append(1)
        return real(*args)

    monkeypatch.setattr(bearer, "_presigned_token", counting)
    source = TokenSource(region="us-east-1", credentials=lambda: Credentials(KEY, SECRET))
    tokens: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait(timeout=10)
        tokens.append(source.token().get_secret_value())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(tokens) == 8 and len(set(tokens)) == 1 and len(signed) == 1


def test_a_given_bearer_token_is_sent_as_is_and_a_callable_is_asked_each_time() -> None:
    static = TokenSource(bearer_token=SecretStr("sagemaker-api-key-abc"))
    assert static.token().get_secret_value() == "sagemaker-api-key-abc"
    static.invalidate()
    assert static.token().get_secret_value() == "sagemaker-api-key-abc" and static.expires_at is None
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return f"token-{len(calls)}"

    dynamic = TokenSource(bearer_token=provider)
    assert [dynamic.token().get_secret_value() for _ in range(2)] == ["token-1", "token-2"]


@pytest.mark.parametrize("bad", ["", "Bearer abc", "abc\r\nX-Injected: 1", "tök", SecretStr("a b")])
def test_a_bad_bearer_token_is_refused_without_quoting_it(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="bearer_token must be") as caught:
        TokenSource(bearer_token=bad)
    text = bad.get_secret_value() if isinstance(bad, SecretStr) else bad
    assert not text or text not in str(caught.value)
    with pytest.raises(ConfigurationError, match="bearer_token must be"):
        TokenSource(bearer_token=lambda: bad).token()


def test_token_source_needs_exactly_one_source() -> None:
    with pytest.raises(ConfigurationError, match="either credentials or bearer_token"):
        TokenSource()
    with pytest.raises(ConfigurationError, match="either credentials or bearer_token"):
        TokenSource(credentials=lambda: None, bearer_token="x")
    with pytest.raises(ConfigurationError, match="between 1 second and 12 hours"):
        TokenSource(credentials=lambda: None, expiry=timedelta(hours=13))


# --- secrecy ---------------------------------------------------------------------------------------

def test_tokens_and_keys_never_in_repr_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # botocore's signer logs the canonical request and signature
    source = TokenSource(region="us-east-1", credentials=lambda: Credentials(KEY, SECRET, SESSION))
    token = source.token().get_secret_value()
    signature = query(token)["X-Amz-Signature"]
    given = TokenSource(bearer_token=SecretStr("canary-9d1e-token"))
    shown = " ".join([repr(source), str(source), repr(given), repr(given.token()), str(given.token()),
                      repr(source.token()), caplog.text])
    for secret in (token, token.removeprefix(TOKEN_PREFIX), signature, SECRET, SESSION, "canary-9d1e-token"):
        assert secret not in shown


# --- sm-llm token ----------------------------------------------------------------------------------

def test_cli_prints_only_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--region", "us-west-2", "--expiry-seconds", "600"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.endswith("\n") and out.count("\n") == 1
    q = query(out.strip())
    assert q["X-Amz-Expires"] == "600" and "%2Fus-west-2%2Fsagemaker%2F" in q["X-Amz-Credential"]
    assert main(["token", "--region", "us-west-2"]) == 0
    assert query(capsys.readouterr().out.strip())["X-Amz-Expires"] == "43200"


@pytest.mark.parametrize("seconds", ["0", "43201", "-1", "99999999999999999999"])
def test_cli_bad_expiry_is_one_line_and_exit_2(seconds: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--region", "us-east-1", f"--expiry-seconds={seconds}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--expiry-seconds must be between 1 and 43200" in err


@pytest.mark.usefixtures("no_aws")
def test_cli_without_credentials_or_region_names_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--region", "us-east-1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "no AWS credentials found" in err and "pass --profile NAME" in err and "credentials=" not in err
    assert main(["token", "--profile", "nope"]) == 2
    assert "profile 'nope' was not found" in capsys.readouterr().err
    assert main(["token"]) == 2
    assert "pass --region" in capsys.readouterr().err
