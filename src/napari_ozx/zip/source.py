"""Byte sources: where the bytes the parsers ask for come from.

A source answers ``read(offset, length)`` with exactly ``length`` bytes.  It holds no file
position and no lock, so any number of threads may read at once; it pickles as its address and
reopens itself in a new process (after ``fork`` too).
"""

from __future__ import annotations

import mmap
import os
import re
import threading
from concurrent.futures import Executor
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, TypeGuard

from ..errors import CorruptArchiveError, OzxError
from . import records
from ._io import FileEndedError, pread_exactly, preadv_exactly


class ByteSource(Protocol):
    """What the archive reader asks of a byte source.

    Required: ``name`` (for messages), ``size``, :meth:`read`.  Everything else is an optional
    hook with a default here that does nothing special; a source states what it can do better
    by overriding it.  Sources subclass this protocol explicitly (:class:`LocalFile`,
    :class:`~napari_ozx.zip.remote.RemoteSource`), so every hook is always there and callers
    call it plainly - no ``getattr`` probing, and mypy checks each override's signature.

    Hooks (and who calls them):

    * ``cheap_scan`` - reading the whole central directory is cheap (local disk), so scanning
      beats guessing: :meth:`find` works, data offsets are read from local headers rather than
      inferred, small reads are served on zarr's event loop.
    * :meth:`read_into` - fill a caller's buffer (the central-directory decoder reuses one).
    * :meth:`find` - search raw bytes (checks a ``jsonFirst`` claim; only where ``cheap_scan``).
    * ``trust_json_first`` - where scanning is not cheap, take an RFC-9 ``jsonFirst`` claim at
      its word (remote sources: checking costs the whole directory).
    * :meth:`will_read` - the caller is about to read this range front to back (a remote
      source fetches it in concurrent pieces).
    * :meth:`peek` - bytes already at hand, never a request (lets offsets be checked for free).
    * ``executor`` - the thread pool zarr's store should read this source in (None: asyncio's).
    * ``tail_size`` - how many bytes at the end of the file the first read should take.
    * :meth:`fileno` - a local descriptor, for in-kernel copies of stored entries (None: none).
    * :meth:`close`.
    """

    name: str
    size: int
    cheap_scan: bool = False
    trust_json_first: bool = False
    tail_size: int = records.MAX_TAIL

    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset`` (any number of threads at once)."""
        raise NotImplementedError

    def read_into(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` with the bytes at ``offset`` (lets a caller reuse one buffer)."""
        view[:] = self.read(offset, len(view))

    def find(self, pattern: bytes, start: int, end: int) -> int:
        """Offset of the first ``pattern`` in ``[start, end)``, or -1 (only where cheap_scan)."""
        raise TypeError(f"{type(self).__name__} does not search its bytes (cheap_scan is False)")

    def will_read(self, offset: int, length: int) -> AbstractContextManager[object]:
        """A context in which ``[offset, offset + length)`` will be read front to back."""
        return nullcontext()

    def peek(self, offset: int, length: int) -> bytes | None:
        """Bytes already at hand, or None: never a request."""
        return None

    @property
    def executor(self) -> Executor | None:
        return None

    def fileno(self) -> int | None:
        return None

    def close(self) -> None:
        return None


#: ``scheme://`` with a scheme of two letters or more (one letter is a Windows drive, ``C:/``)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+://")


def is_url(path: object) -> TypeGuard[str]:
    """Is ``path`` a URL (``scheme://...``) rather than a local path?  The one test for it:
    the napari getter claims what :func:`~napari_ozx.zip.remote.open_source` opens (HTTP(S),
    S3 natively, any other scheme through fsspec)."""
    return isinstance(path, str) and _URL.match(path) is not None


def check_range(offset: int, length: int, size: int, name: str, what: str) -> None:
    """Refuse a read of ``length`` bytes at ``offset`` that does not lie inside the ``size``
    bytes of the source ``name`` (a ``what``: file, object) - a record pointing outside it."""
    if offset < 0 or length < 0 or offset + length > size:
        raise CorruptArchiveError(
            f"read of {length} bytes at offset {offset} runs past the end of the "
            f"{size}-byte {what}",
            archive=name,
        )


class LocalFile(ByteSource):
    """A file on a local disk, read with ``os.pread``."""

    cheap_scan = True

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.name = self.path
        self._fd: int | None = None
        self._pid: int | None = None
        self._identity: tuple[int, int, int] | None = None  # (device, inode, size) first opened
        self._open_lock = threading.Lock()
        try:
            self.size = os.stat(self.path).st_size
        except OSError as e:
            raise OzxError(f"cannot open: {e.strerror}", archive=self.path) from e
        if os.path.isdir(self.path):
            raise OzxError("is a directory, not an archive", archive=self.path)

    def _descriptor(self) -> int:
        fd, pid = self._fd, self._pid
        if fd is not None and pid == os.getpid():
            return fd
        with self._open_lock:
            if self._fd is None or self._pid != os.getpid():
                try:
                    fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError as e:
                    raise OzxError(f"cannot open: {e.strerror}", archive=self.path) from e
                st = os.fstat(fd)
                if self._identity is None:
                    self._identity = (st.st_dev, st.st_ino, st.st_size)
                elif (st.st_dev, st.st_ino, st.st_size) != self._identity:
                    # A new process (fork, spawn, unpickling) reopens by path: if the archive
                    # was replaced meanwhile (saved over), its bytes are not the indexed ones.
                    os.close(fd)
                    raise OzxError("the archive was replaced since it was opened; open it "
                                   "again", archive=self.path)
                self._fd, self._pid = fd, os.getpid()
            return self._fd

    def fileno(self) -> int:
        """The open descriptor (of the file as it was opened: saving over the path later
        does not change what it reads)."""
        return self._descriptor()

    def read(self, offset: int, length: int) -> bytes:
        check_range(offset, length, self.size, self.path, "file")
        try:
            return pread_exactly(self._descriptor(), offset, length)
        except FileEndedError as e:
            raise self._ended(e.at, offset, length) from None

    def read_into(self, offset: int, view: memoryview) -> None:
        length = len(view)
        check_range(offset, length, self.size, self.path, "file")
        try:
            preadv_exactly(self._descriptor(), offset, view)
        except FileEndedError as e:
            raise self._ended(e.at, offset, length) from None

    def _ended(self, at: int, offset: int, length: int) -> CorruptArchiveError:
        return CorruptArchiveError(
            f"file ended at {at} while reading {length} bytes at {offset} "
            "(was it truncated while open?)",
            archive=self.path,
        )

    def find(self, pattern: bytes, start: int, end: int) -> int:
        # A read-only map searched in place: no copy of the (maybe 100 MB) range.
        with mmap.mmap(self._descriptor(), 0, access=mmap.ACCESS_READ) as mm:
            return mm.find(pattern, start, end)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and self._pid == os.getpid():
            os.close(fd)

    def __getstate__(self):
        if self._identity is None and self._fd is not None:
            self._descriptor()
        return {"path": self.path, "size": self.size, "identity": self._identity}

    def __setstate__(self, state):
        self.path = state["path"]
        self.name = self.path
        self.size = state["size"]
        self._fd = None
        self._pid = None
        self._identity = state.get("identity")
        self._open_lock = threading.Lock()

    def __eq__(self, other):
        return isinstance(other, LocalFile) and other.path == self.path

    def __hash__(self):
        return hash(("LocalFile", self.path))

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
