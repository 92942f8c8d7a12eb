"""Bearer tokens for SageMaker's OpenAI-compatible route (``/openai/v1``).

A token is ``sagemaker-api-key-`` followed by the standard base64 (with padding) of a
SigV4 *query*-presigned URL — ``POST https://sagemaker.amazonaws.com/?Action=CallWithBearerToken``
signed for the ``sagemaker`` service in the caller's region, ``X-Amz-Expires`` at most
43,200 — with the scheme removed and ``&Version=1`` appended: the format of the SageMaker
SDK's ``generate_token``. Making one calls nothing on AWS. Send it as
``Authorization: Bearer <token>``; the caller needs ``sagemaker:InvokeEndpoint`` and
``sagemaker:CallWithBearerToken``.

>>> from sm_llm.auth import generate_bearer_token
>>> token = generate_bearer_token("us-east-1")  # doctest: +SKIP

:class:`TokenSource` is the cache an adapter holds: one token, renewed before it expires
or as soon as refreshable credentials rotate. The signing lives with the other botocore
code, in :mod:`sm_llm.transports.bearer`.
"""

from sm_llm.transports.bearer import (
    MAX_EXPIRY,
    TOKEN_PREFIX,
    TokenSource,
    credentials_for,
    generate_bearer_token,
)

__all__ = ["MAX_EXPIRY", "TOKEN_PREFIX", "TokenSource", "credentials_for", "generate_bearer_token"]
