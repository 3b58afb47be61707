"""What every remote byte source shares: one event loop, a bound on requests in flight,
retries with backoff, pinned blocks (the tail, the metadata), coalescing of neighbouring ranges,
and a check that the object does not change while it is open.

A subclass only implements :meth:`RemoteSource._get`: one ranged request, answered as a
:class:`Reply` or a raised :class:`Transient` (worth retrying) / :class:`RemoteError` (not).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import random
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ...errors import OzxError
from .. import records
from ..source import ByteSource, check_range
from .errors import ArchiveChangedError, RemoteError, TruncatedResponseError

#: bytes fetched by the first request, from the end of the object: end records, comment and as
#: much of the central directory as fits (about 5,000 entries of an RFC-9 archive).
DEFAULT_TAIL = 512 * 1024
MIN_TAIL = records.MAX_TAIL + 1024
#: ranges closer than this are fetched as one request
DEFAULT_COALESCE_GAP = 256 * 1024
DEFAULT_MAX_CONCURRENCY = 16
#: small data reads are served from aligned blocks of this size, kept in an LRU cache: zarr reads
#: the inner chunks of a partially needed shard one after the other, and neighbouring chunks
#: then share a request
DEFAULT_BLOCK_SIZE = 256 * 1024
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
#: piece size of a long read announced with ``will_read`` (fetched concurrently)
READ_AHEAD_BLOCK = 4 * 1024 * 1024
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 0.1  # seconds, doubled on every retry, with jitter


@dataclass
class Reply:
    """One answered ranged request."""

    data: bytes
    start: int  #: offset of ``data[0]`` in the object
    size: int  #: size of the whole object
    etag: str | None = None
    last_modified: str | None = None


class Transient(Exception):
    """A failure worth retrying (5xx, reset, timeout, cut-off body)."""

    def __init__(self, message: str, kind: type[RemoteError] = RemoteError):
        super().__init__(message)
        self.kind = kind


def _loop():
    try:
        import fsspec.asyn
    except ImportError as e:  # pragma: no cover - the remote extra is missing
        raise RemoteError(
            "reading remote archives needs the 'remote' extra: pip install 'napari-ozx[remote]'"
        ) from e
    return fsspec.asyn.get_loop()


class RemoteSource(ByteSource):
    """A :class:`ByteSource` over an object behind a network protocol.

    ``read`` blocks the calling thread while the request runs on a shared I/O event loop
    (fsspec's), so any number of threads may read at once; at most ``max_concurrency`` requests
    are in flight per source.
    """

    cheap_scan = False
    #: an RFC-9 ``jsonFirst`` claim is trusted (the RFC allows it): checking it would mean
    #: downloading the whole central directory
    trust_json_first = True

    def __init__(
        self,
        url: str,
        *,
        tail_size: int = DEFAULT_TAIL,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        coalesce_gap: int = DEFAULT_COALESCE_GAP,
        timeout: float | None = 60.0,
        block_size: int = DEFAULT_BLOCK_SIZE,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        _identity: tuple | None = None,
    ):
        self.url = url
        self.name = url
        # At least the window in which the end records must lie (and the ZIP64 ones before it).
        self.tail_size = max(int(tail_size), MIN_TAIL)
        self.max_concurrency = max(1, int(max_concurrency))
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.coalesce_gap = int(coalesce_gap)
        self.timeout = timeout
        self.block_size = max(4096, int(block_size))
        self.cache_bytes = max(0, int(cache_bytes))
        #: reads that end at or below this offset may go through the block cache (set to the
        #: start of the central directory once the archive is open; 0: no block reads)
        self.data_end = 0
        self._setup_process_state()
        #: counts of what this source asked the network for
        self.requests = 0
        self.bytes_fetched = 0
        self.retried = 0
        if _identity is not None:
            # Reopened after pickling: the object must still be the one first opened.
            self.size, self.etag, self.last_modified = _identity
        else:
            self.size, self.etag, self.last_modified = -1, None, None
            reply = self._run(self._fetch(-self.tail_size, self.tail_size))
            self._pin(reply.start, reply.data)

    def _setup_process_state(self) -> None:
        self._pid = os.getpid()
        self._pins: list[tuple[int, bytes]] = []  # (offset, data), sorted by offset
        self._pin_lock = threading.Lock()
        self._semaphore: asyncio.Semaphore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._blocks_bytes = 0

    # ------------------------------------------------------------------ to implement

    async def _get(self, start: int, length: int, *, suffix: bool) -> Reply:
        """One request: ``length`` bytes at ``start``, or the last ``length`` bytes if
        ``suffix``.  Raise :class:`Transient` for what is worth retrying."""
        raise NotImplementedError

    async def _aclose(self) -> None:
        pass

    def _options(self) -> dict:
        """Constructor keywords that recreate this source in another process."""
        return {}

    # ------------------------------------------------------------------ machinery

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked: locks, semaphore and pool belong to the parent
            pins = self._pins
            self._setup_process_state()
            self._pins = pins

    def _run(self, coro):
        import fsspec.asyn

        self._check_process()
        try:
            return fsspec.asyn.sync(_loop(), lambda: coro, timeout=None)
        except OzxError as e:
            raise e.with_archive(self.url) from None
        except (OSError, ValueError) as e:  # e.g. a bad URL, TLS trouble, DNS failure
            raise RemoteError(f"{type(e).__name__}: {e}", archive=self.url) from e

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Worker threads for callers on an event loop (the zarr store): one per request that
        may be in flight."""
        self._check_process()
        if self._executor is None:
            with self._pin_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self.max_concurrency, thread_name_prefix="ozx-remote"
                    )
        return self._executor

    async def _fetch(self, start: int, length: int) -> Reply:
        """A request with the bound on concurrency, retries, and all the checks."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        suffix = start < 0
        last: Transient | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())
                await asyncio.sleep(delay)
            try:
                async with self._semaphore:
                    self.requests += 1
                    if self.timeout:
                        reply = await asyncio.wait_for(
                            self._get(start, length, suffix=suffix), self.timeout
                        )
                    else:
                        reply = await self._get(start, length, suffix=suffix)
                    self.bytes_fetched += len(reply.data)
            except Transient as e:
                last = e
                continue
            except TimeoutError:
                last = Transient(f"no answer within {self.timeout} s")
                continue
            self._check_identity(reply)
            want_start = max(0, reply.size - length) if suffix else start
            want_len = min(length, reply.size - want_start)
            if reply.start != want_start or len(reply.data) != want_len:
                last = Transient(
                    f"asked for {want_len} bytes at offset {want_start}, the server sent "
                    f"{len(reply.data)} bytes at offset {reply.start}",
                    TruncatedResponseError,
                )
                continue
            return reply
        assert last is not None
        tries = self.retries + 1
        raise last.kind(f"{last} (gave up after {tries} attempt{'s' * (tries > 1)})")

    def _check_identity(self, reply: Reply) -> None:
        if self.size < 0:
            self.size = reply.size
            self.etag = reply.etag
            self.last_modified = reply.last_modified
            return
        changes = []
        if reply.size != self.size:
            changes.append(f"size {self.size} -> {reply.size}")
        if self.etag and reply.etag and reply.etag != self.etag:
            changes.append(f"ETag {self.etag} -> {reply.etag}")
        if self.last_modified and reply.last_modified and reply.last_modified != self.last_modified:
            changes.append(f"Last-Modified {self.last_modified} -> {reply.last_modified}")
        if changes:
            raise ArchiveChangedError(
                "the object changed while it was open (" + ", ".join(changes) + "); reopen it"
            )

    # ------------------------------------------------------------------ pinned blocks

    def _pin(self, offset: int, data: bytes) -> None:
        with self._pin_lock:
            end = offset + len(data)
            # drop blocks the new one covers
            pins = [p for p in self._pins if not (offset <= p[0] and p[0] + len(p[1]) <= end)]
            bisect.insort(pins, (offset, data), key=lambda p: p[0])
            self._pins = pins

    def _pinned(self, offset: int, length: int) -> bytes | None:
        pins = self._pins
        i = bisect.bisect_right(pins, offset, key=lambda p: p[0]) - 1
        if i >= 0:
            start, data = pins[i]
            if offset + length <= start + len(data):
                return data[offset - start : offset - start + length]
        return None

    def peek(self, offset: int, length: int) -> bytes | None:
        """Bytes already at hand (pinned), or None: never a request."""
        return self._pinned(offset, length)

    @property
    def pinned_bytes(self) -> int:
        return sum(len(d) for _, d in self._pins)

    # ------------------------------------------------------------------ ByteSource

    def read(self, offset: int, length: int) -> bytes:
        check_range(offset, length, self.size, self.url, "object")
        if length == 0:
            return b""
        hit = self._pinned(offset, length)
        if hit is not None:
            return hit
        if self.cache_bytes and length < self.block_size and offset + length <= self.data_end:
            return self._read_blocks(offset, length)
        return self._run(self._fetch(offset, length)).data

    def _read_blocks(self, offset: int, length: int) -> bytes:
        size = self.block_size
        first, last = offset // size, (offset + length - 1) // size
        with self._pin_lock:
            have = {b: self._blocks.get(b) for b in range(first, last + 1)}
            for b, data in have.items():
                if data is not None:
                    self._blocks.move_to_end(b)
        missing = [b for b, data in have.items() if data is None]
        if missing:
            lo = missing[0] * size
            hi = min((missing[-1] + 1) * size, self.data_end)
            data = self._run(self._fetch(lo, hi - lo)).data
            with self._pin_lock:
                for b in range(missing[0], missing[-1] + 1):
                    block = data[(b - missing[0]) * size : (b - missing[0] + 1) * size]
                    have[b] = block
                    if b not in self._blocks:
                        self._blocks[b] = block
                        self._blocks_bytes += len(block)
                while self._blocks_bytes > self.cache_bytes and self._blocks:
                    _, old = self._blocks.popitem(last=False)
                    self._blocks_bytes -= len(old)
        joined = b"".join(_present(have[b]) for b in range(first, last + 1))
        start = offset - first * size
        return joined[start : start + length]

    def read_many(self, ranges: list[tuple[int, int]], *, coalesce_gap: int | None = None
                  ) -> list[bytes]:
        """Several ranges at once: neighbours (gap <= ``coalesce_gap``, default the source's)
        in one request, the requests concurrently."""
        gap = self.coalesce_gap if coalesce_gap is None else coalesce_gap
        return self._run(self._read_many(ranges, gap))

    async def _read_many(self, ranges: list[tuple[int, int]], gap: int) -> list[bytes]:
        groups = coalesce(ranges, gap)
        replies = await asyncio.gather(
            *(self._fetch(start, stop - start) for start, stop, _ in groups)
        )
        out: list[bytes] = [b""] * len(ranges)
        for (start, _stop, members), reply in zip(groups, replies, strict=True):
            for i in members:
                off, length = ranges[i]
                out[i] = reply.data[off - start : off - start + length]
        return out

    def pin_ranges(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch ranges (coalesced) and keep them: later reads inside them cost no request."""
        ranges = [(o, min(n, self.size - o)) for o, n in ranges if 0 <= o < self.size and n > 0]
        ranges = [r for r in ranges if self._pinned(*r) is None]
        if not ranges:
            return
        groups = coalesce(ranges, self.coalesce_gap)
        blocks = self.read_many([(a, b - a) for a, b, _ in groups])
        for (a, _b, _m), data in zip(groups, blocks, strict=True):
            self._pin(a, data)

    @contextlib.contextmanager
    def will_read(self, offset: int, length: int):
        """The caller is about to read ``[offset, offset + length)`` front to back (the central
        directory): fetch it in ``READ_AHEAD_BLOCK`` pieces concurrently, keep it for the
        duration of the ``with`` block, then let it go."""
        offset, length = max(0, offset), min(length, self.size - max(0, offset))
        if length < 2 * READ_AHEAD_BLOCK or self._pinned(offset, length) is not None:
            yield
            return
        pieces = [(o, min(READ_AHEAD_BLOCK, offset + length - o))
                  for o in range(offset, offset + length, READ_AHEAD_BLOCK)]
        block = b"".join(self.read_many(pieces, coalesce_gap=-1))
        self._pin(offset, block)
        try:
            yield
        finally:
            with self._pin_lock:
                self._pins = [p for p in self._pins if p[1] is not block]

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "bytes": self.bytes_fetched,
            "retries": self.retried,
            "pinned_bytes": self.pinned_bytes,
            "cached_bytes": self._blocks_bytes,
        }

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=False)
        if self._pid == os.getpid():
            try:
                self._run(self._aclose())
            except Exception:
                pass

    def __getstate__(self):
        return {
            "cls": type(self),
            "url": self.url,
            "options": dict(
                tail_size=self.tail_size,
                max_concurrency=self.max_concurrency,
                retries=self.retries,
                backoff=self.backoff,
                coalesce_gap=self.coalesce_gap,
                timeout=self.timeout,
                block_size=self.block_size,
                cache_bytes=self.cache_bytes,
                **self._options(),
            ),
            "identity": (self.size, self.etag, self.last_modified),
            "data_end": self.data_end,
        }

    def __setstate__(self, state):
        self.__init__(state["url"], _identity=state["identity"], **state["options"])
        self.data_end = state.get("data_end", 0)

    def __eq__(self, other):
        return type(other) is type(self) and other.url == self.url

    def __hash__(self):
        return hash((type(self).__name__, self.url))

    def __repr__(self):
        return f"{type(self).__name__}({self.url!r})"


def coalesce(ranges: list[tuple[int, int]], gap: int) -> list[tuple[int, int, list[int]]]:
    """Group ``(offset, length)`` ranges whose gaps are at most ``gap`` bytes:
    ``[(start, stop, [indices of the ranges inside]), ...]``."""
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    groups: list[tuple[int, int, list[int]]] = []
    for i in order:
        off, length = ranges[i]
        if groups and off <= groups[-1][1] + gap:
            start, stop, members = groups[-1]
            groups[-1] = (start, max(stop, off + length), members + [i])
        else:
            groups.append((off, off + length, [i]))
    return groups


def _present(block: bytes | None) -> bytes:
    """A block the cache lookup filled (every missing one was fetched just before)."""
    assert block is not None
    return block
