"""Bearer tokens of SageMaker's OpenAI-compatible route, verified as the service does.

A token is ``sagemaker-api-key-`` + base64 of a SigV4 *query*-presigned URL without its
scheme, with ``&Version=1`` appended after the signature::

    sagemaker.amazonaws.com/?Action=CallWithBearerToken&X-Amz-Algorithm=AWS4-HMAC-SHA256
        &X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fsagemaker%2Faws4_request
        &X-Amz-Date=20260101T000000Z&X-Amz-Expires=43200&X-Amz-SignedHeaders=host
        [&X-Amz-Security-Token=...]&X-Amz-Signature=<hex>&Version=1

The signature is over ``POST /`` with that query (minus ``X-Amz-Signature``), the one
signed header ``host:sagemaker.amazonaws.com`` and the hash of an empty body. It is
recomputed here with :mod:`hmac` against the secret configured for the access key; this
module shares no code with the library's token generator, which it is there to check.

Failures: 401 when the token is missing, not a SageMaker API key, malformed, expired or
not yet valid; 403 when it is well formed but not acceptable (unknown access key, another
region, a signature that does not match) and for a plain SigV4 ``Authorization`` header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

__all__ = ["MAX_EXPIRES", "TOKEN_PREFIX", "BearerRejected", "verify_authorization"]

TOKEN_PREFIX = "sagemaker-api-key-"
MAX_EXPIRES = 43_200
_HOST = "sagemaker.amazonaws.com"
_VERSION = "&Version=1"
_ALGORITHM = "AWS4-HMAC-SHA256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_CLOCK_SKEW = timedelta(minutes=5)
_MAX_TOKEN = 16 * 1024
_DATE = re.compile(r"\d{8}T\d{6}Z")


@dataclass
class BearerRejected(Exception):
    """Why a request's credentials were refused: HTTP ``status`` (401/403), ``code``, ``message``."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def _malformed(why: str) -> BearerRejected:
    return BearerRejected(401, "invalid_api_key", f"The bearer token is malformed: {why}.")


def _denied(code: str, message: str) -> BearerRejected:
    return BearerRejected(403, code, message)


def _encode(text: str) -> str:
    """SigV4's URI encoding: everything but unreserved characters."""
    return quote(text, safe="-_.~")


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _decode(token: str) -> str:
    """The presigned URL (without scheme) a token carries."""
    if not token.startswith(TOKEN_PREFIX):
        raise BearerRejected(
            401, "invalid_api_key",
            f"The bearer token is not a SageMaker API key: it must start with {TOKEN_PREFIX!r}.",
        )
    payload = token[len(TOKEN_PREFIX):]
    try:
        return base64.b64decode(payload, validate=True).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise _malformed("what follows the prefix is not base64 of a presigned URL") from exc


def _query(url: str) -> list[tuple[str, str]]:
    """The signed query pairs (still URI-encoded) of a presigned URL."""
    if not url.endswith(_VERSION):
        raise _malformed("it does not end with '&Version=1'")
    url = url[: -len(_VERSION)]
    host, sep, rest = url.partition("/")
    if host != _HOST or not sep:
        raise _malformed(f"it is not presigned for {_HOST}")
    path, sep, query = rest.partition("?")
    if path or not sep or not query:
        raise _malformed("it is not a presigned 'POST /?Action=CallWithBearerToken' URL")
    pairs = []
    for item in query.split("&"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _malformed(f"query item {item[:40]!r} is not key=value")
        pairs.append((key, value))
    return pairs


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((_encode(unquote(k)), _encode(unquote(v))) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def verify_authorization(
    authorization: str | None,
    *,
    credentials: Mapping[str, str],
    region: str,
    now: datetime | None = None,
) -> str:
    """Check an ``Authorization`` header value; return the access key it was signed with.

    ``credentials`` maps access key ids to secret keys. Raises :class:`BearerRejected`.
    """
    if not authorization or not authorization.strip():
        raise BearerRejected(
            401, "missing_api_key",
            "Missing bearer token: send 'Authorization: Bearer sagemaker-api-key-...'.",
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme == _ALGORITHM:
        raise _denied(
            "access_denied",
            "SigV4-signed requests are not accepted on the OpenAI-compatible route: "
            "send 'Authorization: Bearer sagemaker-api-key-...'.",
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerRejected(
            401, "invalid_api_key",
            "The Authorization header is not 'Bearer <token>'.",
        )
    token = token.strip()
    if len(token) > _MAX_TOKEN:
        raise _malformed("it is too long")
    pairs = _query(_decode(token))
    params: dict[str, str] = {}
    for key, value in pairs:
        name = unquote(key)
        if name in params:
            raise _malformed(f"{name} appears twice")
        params[name] = unquote(value)
    signature = params.pop("X-Amz-Signature", None)
    if signature is None:
        raise _malformed("it has no X-Amz-Signature")
    signed = [(k, v) for k, v in pairs if unquote(k) != "X-Amz-Signature"]
    if params.get("Action") != "CallWithBearerToken":
        raise _malformed("its Action is not CallWithBearerToken")
    if params.get("X-Amz-Algorithm") != _ALGORITHM:
        raise _malformed(f"its X-Amz-Algorithm is not {_ALGORITHM}")
    if params.get("X-Amz-SignedHeaders") != "host":
        raise _malformed("its X-Amz-SignedHeaders is not 'host'")
    scope = params.get("X-Amz-Credential", "").split("/")
    if len(scope) != 5 or scope[3] != "sagemaker" or scope[4] != "aws4_request" or not scope[0]:
        raise _malformed(
            "its X-Amz-Credential is not <access key>/<date>/<region>/sagemaker/aws4_request"
        )
    access_key, date, token_region = scope[0], scope[1], scope[2]
    stamp = params.get("X-Amz-Date", "")
    if not _DATE.fullmatch(stamp) or stamp[:8] != date:
        raise _malformed("its X-Amz-Date is not the yyyymmddThhmmssZ time of its credential scope")
    expires_text = params.get("X-Amz-Expires", "")
    if not expires_text.isdigit() or not 0 < int(expires_text) <= MAX_EXPIRES:
        raise _malformed(f"its X-Amz-Expires must be a number of seconds in 1..{MAX_EXPIRES}")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise _malformed("its X-Amz-Date is not a valid time") from exc
    now = now or datetime.now(UTC)
    expires_at = signed_at + timedelta(seconds=int(expires_text))
    if now >= expires_at:
        raise BearerRejected(
            401, "expired_api_key",
            f"The bearer token expired at {expires_at:%Y-%m-%dT%H:%M:%SZ}: make a new one.",
        )
    if signed_at - now > _CLOCK_SKEW:
        raise BearerRejected(
            401, "invalid_api_key",
            f"The bearer token is signed at {signed_at:%Y-%m-%dT%H:%M:%SZ}, in the future: "
            "check the clock of the machine that made it.",
        )
    if token_region != region:
        raise _denied(
            "invalid_region",
            f"The bearer token is for region {token_region!r}, this endpoint is in {region!r}.",
        )
    secret = credentials.get(access_key)
    if secret is None:
        raise _denied(
            "unknown_access_key",
            f"The access key {access_key} in the bearer token is not one this endpoint knows.",
        )
    canonical = "\n".join(
        ["POST", "/", _canonical_query(signed), f"host:{_HOST}\n", "host", _EMPTY_SHA256]
    )
    string_to_sign = "\n".join(
        [
            _ALGORITHM,
            stamp,
            f"{date}/{token_region}/sagemaker/aws4_request",
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    signing_key = _signing_key(secret, date, token_region, "sagemaker")
    expected = hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise _denied(
            "signature_mismatch",
            "The bearer token's signature does not match: it was not signed with the "
            f"secret key this endpoint has for {access_key}.",
        )
    return access_key
