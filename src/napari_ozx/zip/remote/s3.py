"""S3 objects (``s3://bucket/key``), read with ranged GetObject calls through s3fs' client.

Credentials: whatever ``storage_options`` say (``anon``, ``key``/``secret``/``token``,
``profile``), else the standard AWS chain (environment, config files, instance roles); when the
chain finds none, the request is repeated anonymously (public buckets).  A custom endpoint
(MinIO, Ceph, a local test server) comes from ``endpoint_url`` (or ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import os
import re

from .base import RemoteSource, Reply, Transient
from .errors import (
    ArchiveChangedError,
    RemoteAccessError,
    RemoteError,
    RemoteNotFoundError,
    TruncatedResponseError,
)

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+)")
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "AllAccessDisabled", "ExpiredToken", "InvalidToken"}
_TRANSIENT = {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout",
              "RequestTimeoutException", "ThrottlingException", "500", "502", "503", "504"}


def split_s3_url(url: str) -> tuple[str, str]:
    rest = url.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise RemoteError("an S3 URL needs a bucket and a key: s3://bucket/path/data.ozx",
                          archive=url)
    return bucket, key


class S3Source(RemoteSource):
    """An object in S3 or an S3-compatible store.  ``s3_options`` go to
    :class:`s3fs.S3FileSystem` (``anon``, ``key``, ``secret``, ``endpoint_url``, ...)."""

    def __init__(self, url: str, *, s3_options: dict | None = None, **kwargs):
        self.bucket, self.key = split_s3_url(url)
        self.s3_options = dict(s3_options or {})
        self._fs = None
        self._fs_pid = None
        self._anon_fallback = False
        super().__init__(url, **kwargs)

    def _options(self) -> dict:
        return {"s3_options": self.s3_options}

    def _filesystem(self):
        if self._fs is None or self._fs_pid != os.getpid():
            try:
                import s3fs
            except ImportError as e:  # pragma: no cover
                raise RemoteError(
                    "reading s3:// archives needs s3fs: pip install 'napari-ozx[remote]'"
                ) from e
            opts = dict(self.s3_options)
            if self._anon_fallback:
                opts = {k: v for k, v in opts.items() if k not in ("key", "secret", "token")}
                opts["anon"] = True
            config = dict(opts.pop("config_kwargs", {}) or {})
            config.setdefault("max_pool_connections", self.max_concurrency)
            # We retry ourselves (with our own error reports); no second layer of retries.
            config.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
            self._fs = s3fs.S3FileSystem(
                skip_instance_cache=True, config_kwargs=config, **opts
            )
            self._fs_pid = os.getpid()
        return self._fs

    async def _aclose(self) -> None:
        fs, self._fs = self._fs, None
        if fs is not None and fs._s3 is not None and self._fs_pid == os.getpid():
            await fs._s3creator.__aexit__(None, None, None)

    async def _get(self, start: int, length: int, *, suffix: bool) -> Reply:
        import botocore.exceptions as bex

        client = await self._filesystem().set_session()
        kwargs = {
            "Bucket": self.bucket,
            "Key": self.key,
            "Range": f"bytes=-{length}" if suffix else f"bytes={start}-{start + length - 1}",
        }
        if self.etag:
            kwargs["IfMatch"] = self.etag
        try:
            resp = await client.get_object(**kwargs)
            body = resp["Body"]
            try:
                data = await body.read()
            finally:
                body.close()
        except bex.NoCredentialsError:
            if self._anon_fallback or self.s3_options.get("anon"):
                raise RemoteAccessError("no AWS credentials found") from None
            self._anon_fallback, self._fs = True, None  # the chain found none: try anonymously
            raise Transient("no AWS credentials found; retrying anonymously") from None
        except bex.ClientError as e:
            raise _client_error(e) from None
        except (bex.EndpointConnectionError, bex.ConnectionClosedError,
                bex.ReadTimeoutError, bex.ConnectTimeoutError, ConnectionError) as e:
            raise Transient(f"{type(e).__name__}: {e}") from None
        except Exception as e:
            # aiohttp payload errors and incomplete reads surface as assorted types
            if type(e).__name__ in ("ClientPayloadError", "IncompleteReadError",
                                    "ResponseStreamingError", "ServerDisconnectedError"):
                raise Transient(f"{type(e).__name__}: {e}", TruncatedResponseError) from None
            raise
        m = _CONTENT_RANGE.match(resp.get("ContentRange") or "")
        if m is None:
            size = int(resp.get("ContentLength", len(data)))
            first = 0
        else:
            first, size = int(m.group(1)), int(m.group(3))
            expected = int(m.group(2)) - first + 1
            if len(data) < expected:
                raise Transient(f"the response ended after {len(data)} of {expected} bytes",
                                TruncatedResponseError)
        modified = resp.get("LastModified")
        return Reply(data, first, size, resp.get("ETag"),
                     None if modified is None else str(modified))


def _client_error(e) -> Exception:
    err = e.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    what = f"S3 {code or status}" + (f": {err.get('Message')}" if err.get("Message") else "")
    if code in _NOT_FOUND or status == 404:
        return RemoteNotFoundError(f"no such object ({what})")
    if code in _DENIED or status in (401, 403):
        return RemoteAccessError(
            f"access denied ({what}); check the AWS credentials, or pass "
            "storage_options={'anon': True} for a public bucket"
        )
    if code == "PreconditionFailed" or status == 412:
        return ArchiveChangedError(f"the object changed while it was open ({what}); reopen it")
    if code in _TRANSIENT or (status is not None and status >= 500):
        return Transient(what)
    return RemoteError(f"unexpected answer ({what})")
