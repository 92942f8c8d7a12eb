"""The S3 operations of asynchronous inference jobs, on a boto3 S3 client: errors mapped
to :mod:`sm_llm.errors`, a missing object is ``None``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sm_llm._validation import parse_s3_uri
from sm_llm.errors import SageMakerError
from sm_llm.transports.base import S3Object
from sm_llm.transports.mapping import map_error

__all__ = ["s3_chunks", "s3_delete", "s3_exists", "s3_read", "s3_upload"]

_MULTIPART = 8 * 1024 * 1024
_CHUNK = 1024 * 1024


def _split(uri: str) -> tuple[str, str]:
    parsed = parse_s3_uri(uri)
    if parsed is None or not parsed[1]:
        raise SageMakerError(f"cannot read {uri!r}: expected an s3://bucket/key location")
    return parsed


def _s3_error(exc: BaseException, action: str, uri: str) -> SageMakerError:
    error = map_error(exc, f"S3 {action} {uri}", None)
    if error.status_code == 403:
        error.message += (
            " — grant s3:GetObject on the output and failure prefixes and s3:ListBucket on their "
            "buckets (without ListBucket S3 answers 403 instead of 404 for objects not written yet)"
        )
    return error


@contextmanager
def _mapped(action: str, uri: str) -> Iterator[None]:
    try:
        yield
    except SageMakerError:
        raise
    except Exception as exc:
        raise _s3_error(exc, action, uri) from exc


def _get(client: Any, op: str, uri: str, owner: str | None, **extra: Any) -> dict[str, Any] | None:
    """``HeadObject`` / ``GetObject`` on ``uri``; ``None`` when the object does not exist (yet)."""
    from botocore.exceptions import ClientError

    bucket, key = _split(uri)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, **extra}
    if owner:
        kwargs["ExpectedBucketOwner"] = owner
    try:
        return cast(dict[str, Any], getattr(client, op)(**kwargs))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 and code in ("404", "NoSuchKey", "NotFound"):
            return None
        if status == 416 and "Range" in extra:  # a ranged GET of an empty object
            return {"Body": io.BytesIO(b""), "ContentType": None}
        raise _s3_error(exc, op, uri) from exc
    except Exception as exc:
        raise _s3_error(exc, op, uri) from exc


def s3_read(client: Any, uri: str, owner: str | None, limit: int | None = None) -> S3Object | None:
    """The object (a ranged ``GET`` of its first ``limit`` bytes), or ``None``."""
    extra = {"Range": f"bytes=0-{limit - 1}"} if limit is not None else {}
    found = _get(client, "get_object", uri, owner, **extra)
    if found is None:
        return None
    with _mapped("get_object", uri):
        body = found["Body"].read(limit) if limit is not None else found["Body"].read()
    return S3Object(body=body, content_type=found.get("ContentType"))


def s3_exists(client: Any, uri: str, owner: str | None) -> bool:
    """``HeadObject``: whether the object exists."""
    return _get(client, "head_object", uri, owner) is not None


def s3_chunks(client: Any, uri: str, owner: str | None) -> Iterator[bytes] | None:
    """The object in 1 MiB chunks, or ``None`` when it does not exist."""
    found = _get(client, "get_object", uri, owner)
    if found is None:
        return None

    def chunks() -> Iterator[bytes]:
        with _mapped("get_object", uri):
            yield from found["Body"].iter_chunks(_CHUNK)

    return chunks()


def s3_delete(client: Any, uri: str, owner: str | None) -> None:
    """``DeleteObject``."""
    bucket, key = _split(uri)
    extra = {"ExpectedBucketOwner": owner} if owner else {}
    with _mapped("delete_object", uri):
        client.delete_object(Bucket=bucket, Key=key, **extra)


def s3_upload(client: Any, uri: str, body: bytes, content_type: str | None, owner: str | None) -> None:
    """Upload with the transfer manager: multipart (in parallel parts) above 8 MiB."""
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError

    bucket, key = _split(uri)
    extra: dict[str, Any] = {}
    if content_type:
        extra["ContentType"] = content_type
    if owner:
        extra["ExpectedBucketOwner"] = owner
    transfer = TransferConfig(
        multipart_threshold=_MULTIPART, multipart_chunksize=_MULTIPART, max_concurrency=8,
        use_threads=len(body) > _MULTIPART,
    )
    try:
        client.upload_fileobj(io.BytesIO(body), bucket, key, ExtraArgs=extra, Config=transfer)
    except Exception as exc:
        cause = exc.__cause__ or exc.__context__  # boto3 wraps it in S3UploadFailedError
        raise _s3_error(cause if isinstance(cause, ClientError) else exc, "upload", uri) from exc
