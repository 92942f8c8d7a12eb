"""Bearer tokens for SageMaker's OpenAI-compatible route (``/openai/v1``).

A token is ``sagemaker-api-key-`` followed by the standard base64 (with padding) of a
SigV4 *query*-presigned URL — ``POST https://sagemaker.amazonaws.com/?Action=CallWithBearerToken``
signed for the ``sagemaker`` service in the caller's region, ``X-Amz-Expires`` at most
43,200 — with the scheme removed and ``&Version=1`` appended. That is the format of the
SageMaker SDK's ``generate_token`` (``sagemaker-core``'s ``token_generator``), made here
with botocore's own signer, so profiles, SSO, assumed roles and instance roles behave as
for boto3. Making one calls nothing on AWS. Send it as ``Authorization: Bearer <token>``;
the caller needs ``sagemaker:InvokeEndpoint`` and ``sagemaker:CallWithBearerToken``.

>>> from sm_llm.auth import generate_bearer_token
>>> token = generate_bearer_token("us-east-1")  # doctest: +SKIP

:class:`TokenSource` is the cache an adapter holds: one token, renewed before it expires
or as soon as refreshable credentials rotate.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from sm_llm import errors as e
from sm_llm.transports.clients import ClientSettings, no_region_error, resolve_settings

__all__ = [
    "MAX_EXPIRY",
    "TOKEN_PREFIX",
    "TokenSource",
    "credentials_for",
    "generate_bearer_token",
]

TOKEN_PREFIX = "sagemaker-api-key-"
"""What every token starts with."""
TOKEN_HOST = "sagemaker.amazonaws.com"
"""The host the presigned URL names (the same in every region: the region is in the scope)."""
TOKEN_SERVICE = "sagemaker"
"""The SigV4 signing name."""
TOKEN_ACTION = "CallWithBearerToken"
"""The ``Action`` the URL presigns (and the IAM action the caller needs)."""
TOKEN_VERSION = "&Version=1"
"""Appended to the presigned URL, after the signature."""
MAX_EXPIRY = timedelta(hours=12)
"""The longest a token may live (and the default)."""
RENEW_MARGIN = timedelta(minutes=5)
"""A cached token is renewed this long before it expires (or at 90 % of its life if shorter)."""

_SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # one header value: printable ASCII, no space or CR/LF


def generate_bearer_token(
    region: str | None = None,
    credentials: Any = None,
    expiry: timedelta = MAX_EXPIRY,
    *,
    profile_name: str | None = None,
    now: datetime | None = None,
) -> str:
    """A bearer token for SageMaker's OpenAI-compatible route, byte for byte what the
    SageMaker SDK's ``generate_token`` makes from the same credentials, time and expiry.

    ``region``: as for the clients — ``region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
    profile's ``region`` (``us-east-1`` on a loopback ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``).
    ``credentials``: botocore credentials (``boto3.Session().get_credentials()``); by default
    those boto3 would use (``profile_name``, the environment, ``~/.aws``, SSO, roles). They are
    frozen once before signing, so credentials refreshing meanwhile cannot mix two key sets.
    ``expiry``: more than 0 and at most 12 hours (whole seconds count), else
    :class:`~sm_llm.errors.ConfigurationError`. A token never outlives its credentials: when
    refreshable credentials (assumed role, SSO, instance or container role) expire sooner,
    the token's ``X-Amz-Expires`` is cut to the seconds they have left.
    ``now``: the signing time (default: the current time; a naive datetime is taken as UTC).

    The token is a secret: anyone holding it calls with your identity until it expires.
    """
    seconds = _expiry_seconds(expiry)
    if credentials is None or not region:
        settings = _settings(region, profile_name)
        if not (region := settings.region_name):
            raise no_region_error()
        if credentials is None:
            credentials = credentials_for(settings)
    frozen, credential_expiry = _freeze(credentials)
    token, _ = _signed(frozen, credential_expiry, region, seconds, _utc(now))
    return token


def _settings(region: str | None, profile_name: str | None) -> ClientSettings:
    """Region (and loopback defaults) chosen exactly as for the SageMaker Runtime clients."""
    return resolve_settings(ClientSettings(region_name=region, profile_name=profile_name))


def credentials_for(
    settings: ClientSettings, *, missing: Callable[[], e.ConfigurationError] | None = None
) -> Any:
    """The botocore credentials a client made from ``settings`` signs with: the key fields
    when set, else botocore's chain for the profile (environment, ``~/.aws`` files, SSO,
    ``credential_process``, web identity, container and instance roles). Refreshable
    credentials come back as they are: they renew themselves. Blocking (reads files, may
    call STS); :class:`~sm_llm.errors.ConfigurationError` when there are none: ``missing()``
    if given, else one for bearer tokens naming where it looked."""
    import botocore.session
    from botocore.credentials import Credentials
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    key, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    if key or secret:
        if not (key and secret):
            raise e.ConfigurationError(
                "aws_access_key_id and aws_secret_access_key go together: one of them is missing"
            )
        return Credentials(key, secret, settings.aws_session_token)
    try:
        found = botocore.session.Session(profile=settings.profile_name).get_credentials()
    except ProfileNotFound as exc:
        raise e.ConfigurationError(
            f"AWS profile {settings.profile_name!r} was not found in your AWS config"
        ) from exc
    except (BotoCoreError, ValueError) as exc:  # an expired SSO session, a failing process...
        raise e.ConfigurationError(f"cannot load AWS credentials: {exc}") from exc
    if found is None:
        raise missing() if missing is not None else _no_credentials(settings.profile_name)
    return found


def _no_credentials(profile_name: str | None) -> e.ConfigurationError:
    profile = f"profile {profile_name!r}" if profile_name else "the profile (AWS_PROFILE or default)"
    return e.ConfigurationError(
        "no AWS credentials found to sign a bearer token; looked at the aws_access_key_id / "
        "aws_secret_access_key fields, the environment (AWS_ACCESS_KEY_ID and "
        f"AWS_SECRET_ACCESS_KEY), {profile} in ~/.aws/credentials and ~/.aws/config (keys, SSO, "
        "credential_process, role_arn), web identity (AWS_WEB_IDENTITY_TOKEN_FILE), and the "
        "container and EC2 instance roles",
        field="credentials_profile_name",
        advice="configure one of them as for boto3, or pass credentials=",
    )


def _expiry_seconds(expiry: timedelta) -> int:
    """``expiry`` as the whole seconds of ``X-Amz-Expires``, checked."""
    if not isinstance(expiry, timedelta):
        raise e.ConfigurationError(
            f"expiry must be a datetime.timedelta, got {type(expiry).__name__}", field="expiry"
        )
    seconds = int(expiry.total_seconds())
    if seconds < 1 or expiry > MAX_EXPIRY:
        raise e.ConfigurationError(
            "a bearer token's expiry must be between 1 second and 12 hours (43,200 seconds), "
            f"got {expiry.total_seconds():g} seconds",
            field="expiry",
        )
    return seconds


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _freeze(credentials: Any) -> tuple[Any, datetime | None]:
    """One consistent (access key, secret key, session token) snapshot, and when it expires.

    botocore's signer reads the three as separate properties; refreshable credentials that
    renew between two reads would sign with a mix of two key sets (AWS's generator freezes
    for the same reason). botocore keeps the expiry of refreshable credentials only in
    ``_expiry_time``: it is read on both sides of the freeze until the two agree, so that
    it belongs to the snapshot and a concurrent refresh can never lengthen a token.
    """
    freeze = getattr(credentials, "get_frozen_credentials", None)
    before = after = None
    frozen = credentials
    for _ in range(3):
        before = _expiry_of(credentials)
        try:
            frozen = freeze() if callable(freeze) else credentials
        except Exception as exc:  # botocore: a failed refresh, or "refreshed but still expired"
            raise e.ConfigurationError(
                f"cannot refresh the AWS credentials: {type(exc).__name__}: {e.snippet(str(exc))}",
                field="credentials_profile_name",
            ) from exc
        after = _expiry_of(credentials)
        if before == after:
            break
    if not (getattr(frozen, "access_key", None) and getattr(frozen, "secret_key", None)):
        raise e.ConfigurationError(
            "credentials must be botocore credentials with an access key and a secret key "
            "(e.g. boto3.Session().get_credentials())"
        )
    if before is not None and after is not None:
        return frozen, min(before, after)
    return frozen, after


def _expiry_of(credentials: Any) -> datetime | None:
    moment = getattr(credentials, "_expiry_time", None)
    return _utc(moment) if isinstance(moment, datetime) else None


def _signed(
    frozen: Any, credential_expiry: datetime | None, region: str, seconds: int, signed_at: datetime
) -> tuple[str, datetime]:
    """The token for frozen credentials, and when it expires (capped to the credentials')."""
    if credential_expiry is not None:
        left = int((credential_expiry - signed_at).total_seconds())
        if left < 1:
            raise e.ConfigurationError(
                f"the AWS credentials expired at {credential_expiry:%Y-%m-%d %H:%M:%S} UTC: "
                "refresh them (e.g. 'aws sso login') before making a bearer token",
                field="credentials_profile_name",
            )
        seconds = min(seconds, left)
    return _presigned_token(frozen, region, seconds, signed_at), signed_at + timedelta(seconds=seconds)


def _presigned_token(frozen: Any, region: str, seconds: int, signed_at: datetime) -> str:
    """botocore's ``SigV4QueryAuth.add_auth`` on the ``CallWithBearerToken`` request, with
    the signing time given instead of read from the clock and without its DEBUG lines,
    which print the canonical request and the signature: the token itself."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(
        method="POST",
        url=f"https://{TOKEN_HOST}/",
        headers={"host": TOKEN_HOST},
        params={"Action": TOKEN_ACTION},
    )
    signer = SigV4QueryAuth(frozen, TOKEN_SERVICE, region, expires=seconds)
    request.context["timestamp"] = signed_at.strftime(_SIGV4_TIMESTAMP)
    signer._modify_request_before_signing(request)  # the query: Action, then the X-Amz-* params
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)  # appends &X-Amz-Signature=...
    url = str(request.url).removeprefix("https://") + TOKEN_VERSION
    return TOKEN_PREFIX + base64.b64encode(url.encode("utf-8")).decode("ascii")


def _checked(value: Any) -> SecretStr:
    """A token given by the user, as one safe header value (never quoted in the error)."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(text, str) or not _TOKEN_CHARS.fullmatch(text):
        raise e.ConfigurationError(
            "bearer_token must be a non-empty str or SecretStr of printable ASCII without "
            "spaces or line breaks (the token alone, without 'Bearer ')",
            field="bearer_token",
        )
    return value if isinstance(value, SecretStr) else SecretStr(text)


def _fingerprint(frozen: Any) -> str:
    """Which key set signed a token, without keeping the keys."""
    material = "\0".join(str(getattr(frozen, name, None)) for name in ("access_key", "secret_key", "token"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class TokenSource:
    """The bearer token an adapter sends on the OpenAI route; thread-safe.

    Give one of:

    - ``credentials``: a callable returning botocore credentials (the adapter passes its
      client's chain, see :func:`credentials_for`), with ``region`` and ``expiry``. One token
      is cached; a new one is made :data:`RENEW_MARGIN` before it expires (at 90 % of its
      life when that is shorter), and at once when the credentials' keys change (refreshable
      credentials rotated). The callable is asked before every request: keep it cheap.
    - ``bearer_token``: a ``SecretStr`` (or str), sent as it is; or a callable returning
      one, asked before every request (it does its own caching).

    :meth:`invalidate` drops the cached token: the rule "once after a token expired, make a
    fresh one and retry". ``clock`` (returning an aware UTC datetime) is for tests.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        credentials: Callable[[], Any] | None = None,
        bearer_token: SecretStr | str | Callable[[], SecretStr | str] | None = None,
        expiry: timedelta = MAX_EXPIRY,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if (credentials is None) == (bearer_token is None):
            raise e.ConfigurationError("give either credentials or bearer_token to a TokenSource")
        self._seconds = _expiry_seconds(expiry)
        self._region = region
        self._credentials = credentials
        self._static = None if bearer_token is None or callable(bearer_token) else _checked(bearer_token)
        self._provider = bearer_token if callable(bearer_token) else None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._token: SecretStr | None = None
        self._fingerprint = ""
        self._renew_at = self._expires_at = datetime.min.replace(tzinfo=UTC)

    def __repr__(self) -> str:  # never the token
        source = "credentials" if self._credentials is not None else "bearer_token"
        return f"TokenSource(source={source!r}, region={self._region!r}, expiry={self._seconds}s)"

    @property
    def expires_at(self) -> datetime | None:
        """When the cached token made from credentials expires (``None``: none cached, or a
        token given by the user, whose expiry is unknown)."""
        with self._lock:
            return self._expires_at if self._token is not None else None

    def token(self) -> SecretStr:
        """The token to send now. Blocking when credentials must be loaded or refreshed;
        :class:`~sm_llm.errors.ConfigurationError` when none can be made."""
        if self._static is not None:
            return self._static
        if self._provider is not None:
            return _checked(self._provider())
        assert self._credentials is not None
        with self._lock:
            now = _utc(self._clock())
            frozen, credential_expiry = _freeze(self._credentials())
            fingerprint = _fingerprint(frozen)
            if self._token is not None and fingerprint == self._fingerprint and now < self._renew_at:
                return self._token
            if not self._region:
                self._region = _settings(None, None).region_name
                if not self._region:
                    raise no_region_error()
            token, expires_at = _signed(frozen, credential_expiry, self._region, self._seconds, now)
            self._token, self._fingerprint, self._expires_at = SecretStr(token), fingerprint, expires_at
            self._renew_at = expires_at - min(RENEW_MARGIN, (expires_at - now) / 10)
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token: the next :meth:`token` makes a fresh one. A token given
        as a ``SecretStr`` cannot be renewed (it is sent again); a callable is asked anyway."""
        with self._lock:
            self._token = None
