"""Any other fsspec URL (``gs://``, ``az://``, ``memory://``, ...): one ``info`` call for the
size and version, then ranged ``cat_file`` calls.  The checks on each reply are the shared ones
(length, offset, object identity); the protocol's own client does its range handling."""

from __future__ import annotations

import asyncio

from .base import RemoteSource, Reply, Transient
from .errors import RemoteAccessError, RemoteError, RemoteNotFoundError, TruncatedResponseError


class FsspecSource(RemoteSource):
    def __init__(self, url: str, *, fs_options: dict | None = None, **kwargs):
        self.fs_options = dict(fs_options or {})
        self._fs = None
        super().__init__(url, **kwargs)

    def _options(self) -> dict:
        return {"fs_options": self.fs_options}

    def _filesystem(self):
        if self._fs is None:
            import fsspec.core

            try:
                self._fs, self._path = fsspec.core.url_to_fs(self.url, **self.fs_options)
            except (ImportError, ValueError) as e:  # unknown protocol, its package missing
                raise RemoteError(f"cannot open this URL with fsspec: {e}") from e
        return self._fs, self._path

    async def _call(self, name: str, *args, **kwargs):
        fs, _ = self._filesystem()
        if getattr(fs, "async_impl", False):
            return await getattr(fs, "_" + name)(*args, **kwargs)
        return await asyncio.to_thread(getattr(fs, name), *args, **kwargs)

    async def _get(self, start: int, length: int, *, suffix: bool) -> Reply:
        _, path = self._filesystem()
        try:
            if self.size < 0:
                info = await self._call("info", path)
                size = int(info["size"])
                self._version = _version(info)
            else:
                size = self.size
            if suffix:
                start = max(0, size - length)
                length = size - start
            data = await self._call("cat_file", path, start=start, end=start + length)
        except FileNotFoundError as e:
            raise RemoteNotFoundError(f"not found ({e})") from None
        except PermissionError as e:
            raise RemoteAccessError(f"access denied ({e})") from None
        except (ConnectionError, TimeoutError) as e:
            raise Transient(f"{type(e).__name__}: {e}") from None
        except OSError as e:
            raise RemoteError(f"{type(e).__name__}: {e}") from None
        if len(data) > length:
            raise RemoteError(f"asked for {length} bytes, received {len(data)}")
        if len(data) < length:
            raise Transient(f"received {len(data)} of {length} bytes", TruncatedResponseError)
        return Reply(data, start, size, getattr(self, "_version", None), None)


def _version(info: dict) -> str | None:
    for key in ("ETag", "etag", "generation", "version_id", "mtime", "LastModified", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return None
