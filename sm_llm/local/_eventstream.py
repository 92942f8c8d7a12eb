"""AWS event-stream frame encoder (the framing of ``InvokeEndpointWithResponseStream``).

botocore only ships a decoder, so the local endpoint encodes frames itself. Layout
(big-endian): ``total_length u32 | headers_length u32 | prelude_crc u32 | headers |
payload | message_crc u32``; every header here is a string (type 7).
"""

from __future__ import annotations

import binascii
import json
import struct
from collections.abc import Mapping

__all__ = [
    "chunked",
    "encode_frame",
    "error_frame",
    "exception_frame",
    "payload_part",
]

_STRING_TYPE = b"\x07"


def _crc32(data: bytes, start: int = 0) -> int:
    return binascii.crc32(data, start) & 0xFFFFFFFF


def _string_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + _STRING_TYPE
        + struct.pack("!H", len(raw_value))
        + raw_value
    )


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """Encode one event-stream message with string-valued ``headers`` and ``payload``."""
    header_bytes = b"".join(_string_header(k, v) for k, v in headers.items())
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_bytes))
    prelude += struct.pack("!I", _crc32(prelude))
    message = prelude + header_bytes + payload
    return message + struct.pack("!I", _crc32(message))


def payload_part(data: bytes) -> bytes:
    """A ``PayloadPart`` event frame carrying ``data`` as its ``Bytes``."""
    return encode_frame(
        {
            ":event-type": "PayloadPart",
            ":content-type": "application/octet-stream",
            ":message-type": "event",
        },
        data,
    )


def exception_frame(exception_type: str, body: Mapping[str, object]) -> bytes:
    """A modeled exception frame (``ModelStreamError`` / ``InternalStreamFailure``)."""
    return encode_frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps(body).encode("utf-8"),
    )


def error_frame(code: str, message: str) -> bytes:
    """An unmodeled ``:message-type: error`` frame (botocore raises it as ``code``)."""
    return encode_frame(
        {":error-code": code, ":error-message": message, ":message-type": "error"}, b""
    )


def chunked(data: bytes) -> bytes:
    """Wrap ``data`` as one HTTP/1.1 chunk (``b""`` gives the terminating chunk)."""
    return b"%x\r\n%s\r\n" % (len(data), data)
