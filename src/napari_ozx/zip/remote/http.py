"""HTTP(S) objects, read with ranged GETs through aiohttp (what fsspec's HTTP filesystem uses).

Not through ``fsspec.implementations.http``: its ``cat_file`` reads the body before looking at
the status, so a server that ignores ``Range`` would make it download the whole archive.  Here
the status and ``Content-Range`` are checked first and such a response is dropped unread.
"""

from __future__ import annotations

import asyncio
import os
import re
import weakref

from .base import RemoteSource, Reply, Transient
from .errors import (
    ArchiveChangedError,
    RangeNotSupportedError,
    RemoteAccessError,
    RemoteError,
    RemoteNotFoundError,
    TruncatedResponseError,
)

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class HttpSource(RemoteSource):
    """An object at an ``http://`` or ``https://`` URL.

    ``headers``: extra request headers (e.g. ``Authorization``); ``client_kwargs``: keywords
    for :class:`aiohttp.ClientSession`.
    """

    def __init__(self, url: str, *, headers: dict | None = None,
                 client_kwargs: dict | None = None, **kwargs):
        try:
            import aiohttp  # noqa: F401
        except ImportError as e:  # pragma: no cover - the remote extra is missing
            raise RemoteError(
                "reading http(s):// archives needs aiohttp: pip install 'napari-ozx[remote]'",
                archive=url,
            ) from e
        self.headers = dict(headers or {})
        self.client_kwargs = dict(client_kwargs or {})
        self._sessions: dict = {}
        weakref.finalize(self, _close_sessions, self._sessions)
        super().__init__(url, **kwargs)

    def _options(self) -> dict:
        return {"headers": self.headers, "client_kwargs": self.client_kwargs}

    async def _session(self):
        import aiohttp

        key = (os.getpid(), id(asyncio.get_running_loop()))
        session = self._sessions.get(key)
        if session is None or session.closed:
            kwargs = dict(self.client_kwargs)
            kwargs.setdefault(
                "connector", aiohttp.TCPConnector(limit=self.max_concurrency, force_close=False)
            )
            kwargs.setdefault("auto_decompress", False)
            session = aiohttp.ClientSession(**kwargs)
            self._sessions.clear()
            self._sessions[key] = session
        return session

    async def _aclose(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await session.close()

    async def _get(self, start: int, length: int, *, suffix: bool) -> Reply:
        import aiohttp

        headers = dict(self.headers)
        headers["Range"] = f"bytes=-{length}" if suffix else f"bytes={start}-{start + length - 1}"
        headers["Accept-Encoding"] = "identity"
        if self.etag and not self.etag.startswith("W/"):
            headers["If-Match"] = self.etag
        session = await self._session()
        try:
            async with session.get(self.url, headers=headers) as r:
                status = r.status
                if status == 206:
                    m = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
                    if m is None or m.group(3) == "*":
                        raise RangeNotSupportedError(
                            "the server answered a ranged request with 206 but no usable "
                            f"Content-Range ({r.headers.get('Content-Range')!r})"
                        )
                    first, last, total = int(m.group(1)), int(m.group(2)), int(m.group(3))
                    expected = last - first + 1
                    data = await r.read()
                    if len(data) < expected:
                        raise Transient(
                            f"the response ended after {len(data)} of {expected} bytes",
                            TruncatedResponseError,
                        )
                    return Reply(data[:expected], first, total, *_identity(r.headers))
                if status == 200:
                    # The server ignored Range.  Accept only when the body is all we asked for
                    # anyway (an object smaller than the tail read); never download the rest.
                    clen = r.content_length
                    if suffix and clen is not None and clen <= length:
                        data = await r.read()
                        if len(data) != clen:
                            raise Transient(
                                f"the response ended after {len(data)} of {clen} bytes",
                                TruncatedResponseError,
                            )
                        return Reply(data, 0, clen, *_identity(r.headers))
                    if suffix and clen is not None:
                        # Perhaps only suffix ranges are unsupported: the size is known now, so
                        # ask for the same bytes by offset (this response is dropped unread).
                        r.close()
                        return await self._get(max(0, clen - length), min(length, clen),
                                               suffix=False)
                    size = f" of {clen:,} bytes" if clen is not None else ""
                    raise RangeNotSupportedError(
                        f"the server ignores HTTP Range requests (it answered 200 with the whole "
                        f"object{size}); refusing to download the whole archive"
                    )
                if status == 416 and self.size < 0:
                    raise RemoteError(
                        "the server refuses the tail range (HTTP 416): the object is empty"
                    )
                raise _status_error(status, r.reason)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                aiohttp.ServerTimeoutError, ConnectionResetError) as e:
            raise Transient(f"{type(e).__name__}: {e}", TruncatedResponseError
                            if isinstance(e, aiohttp.ClientPayloadError) else RemoteError) from e
        except aiohttp.ClientResponseError as e:  # pragma: no cover - raised by raise_for_status
            raise _status_error(e.status, e.message) from e


def _close_sessions(sessions: dict) -> None:
    """Close the sessions of a source that is gone (or at exit), on the loop they live on."""
    live = [s for (pid, _), s in sessions.items() if pid == os.getpid() and not s.closed]
    sessions.clear()
    if not live:
        return
    try:
        import fsspec.asyn

        loop = fsspec.asyn.get_loop()
        if loop.is_running() and not loop.is_closed():
            # Never wait: this may run on the loop's own thread (garbage collection there).
            for s in live:
                asyncio.run_coroutine_threadsafe(s.close(), loop)
    except Exception:
        pass


def _identity(headers) -> tuple[str | None, str | None]:
    return headers.get("ETag"), headers.get("Last-Modified")


def _status_error(status: int, reason: str | None) -> Exception:
    what = f"HTTP {status}" + (f" {reason}" if reason else "")
    if status in _TRANSIENT_STATUS:
        return Transient(what)
    if status in (404, 410):
        return RemoteNotFoundError(f"not found on the server ({what})")
    if status in (401, 403):
        return RemoteAccessError(
            f"access denied ({what}); pass credentials with storage_options={{'headers': ...}}"
        )
    if status == 412:
        return ArchiveChangedError(f"the object changed while it was open ({what}); reopen it")
    if status == 416:
        return ArchiveChangedError(
            f"the server refuses the byte range ({what}); has the object shrunk?"
        )
    return RemoteError(f"unexpected answer {what}")
