"""Errors about remote archives: each names the URL and says what the server did."""

from __future__ import annotations

from ...errors import OzxError

__all__ = [
    "ArchiveChangedError",
    "RangeNotSupportedError",
    "RemoteAccessError",
    "RemoteError",
    "RemoteNotFoundError",
    "TruncatedResponseError",
]


class RemoteError(OzxError):
    """A remote archive could not be read (network, server, or protocol trouble)."""


class RemoteNotFoundError(RemoteError):
    """The server says there is no such object (HTTP 404/410, S3 NoSuchKey/NoSuchBucket)."""


class RemoteAccessError(RemoteError):
    """The server refuses access (HTTP 401/403, S3 AccessDenied)."""


class RangeNotSupportedError(RemoteError):
    """The server answered a ranged request with the whole object; we refuse to download it."""


class TruncatedResponseError(RemoteError):
    """The server sent fewer bytes than asked for (and kept doing so after retries)."""


class ArchiveChangedError(RemoteError):
    """The object changed while it was open (ETag, Last-Modified or size differ)."""
