"""File-descriptor I/O the ZIP layer and the save path share: whole reads, whole writes, CRC-32.

``os.pread``/``os.pwrite`` may move fewer bytes than asked (signals, pipes, some network file
systems); every caller needs the same retry loop and the same words for a file-system error,
so they live here once.  CRC-32 is computed by ISA-L where it is installed (tens of GB/s,
against about 3.5 for zlib: 5% of a chunk read) and by zlib otherwise; both give the same value.

Nothing here knows ZIP records; it moves bytes and names what failed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from ..errors import WriteError

try:  # (see the module docstring for why ISA-L)
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover
    from zlib import crc32 as _crc32

__all__ = [
    "crc32",
    "FileEndedError",
    "streamed_crc32",
    "pread_exactly",
    "preadv_exactly",
    "pwrite_all",
    "write_all",
    "name_destination",
    "forget_destination",
    "os_reason",
    "os_error",
    "human_size",
]


def crc32(data, value: int = 0) -> int:
    """CRC-32 (ZIP's) of ``data`` (any buffer), continuing from ``value``."""
    return _crc32(data, value)


def streamed_crc32(read: Callable[[int, int], bytes], size: int, block: int,
                   each: Callable[[bytes], None] | None = None) -> int:
    """CRC-32 of ``size`` bytes fetched as ``read(start, stop)`` in blocks of ``block`` bytes
    (memory stays at one block whatever the size); ``each`` sees every block in order."""
    crc = 0
    for start in range(0, size, block):
        data = read(start, min(size, start + block))
        crc = _crc32(data, crc)
        if each is not None:
            each(data)
    return crc


class FileEndedError(EOFError):
    """The file ended at ``at`` before a whole read: the caller says what that means."""

    def __init__(self, at: int):
        super().__init__(at)
        self.at = at


def pread_exactly(fd: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset``; :class:`FileEndedError` if the file ends first."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise FileEndedError(offset + got)
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def preadv_exactly(fd: int, offset: int, view: memoryview) -> None:
    """Fill ``view`` with the bytes at ``offset`` (no copy); as :func:`pread_exactly`."""
    length = len(view)
    got = 0
    while got < length:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n <= 0:
            raise FileEndedError(offset + got)
        got += n


#: what each open file descriptor written by pwrite_all is (for the errors): archive path
_DESTINATIONS: dict[int, str] = {}


def name_destination(fd: int, path: str) -> None:
    """Errors writing ``fd`` name ``path`` (the archive being saved) from now on."""
    _DESTINATIONS[fd] = path


def forget_destination(fd: int) -> None:
    _DESTINATIONS.pop(fd, None)


def human_size(n: int) -> str:
    """``n`` bytes in words for messages (MiB from one MiB on)."""
    return f"{n / 2**20:.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


def os_reason(e: OSError) -> str:
    """What an OSError of the file system means, in words."""
    return {errno.ENOSPC: "no space left on the device",
            errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
            errno.ENOENT: "the directory does not exist",
            errno.ENOTDIR: "a part of the path is not a directory",
            errno.EISDIR: "a directory is in the way"}.get(e.errno or 0, e.strerror or str(e))


def os_error(e: OSError, archive: str | None, what: str) -> WriteError:
    """An OSError of the file system as our error, naming the archive and what failed."""
    return WriteError(f"{what}: {os_reason(e)}", archive=archive, errno=e.errno)


def pwrite_all(fd: int, data, pos: int) -> int:
    """Write all of ``data`` at ``pos`` of ``fd``; returns its length.  A failure is a
    :class:`~napari_ozx.errors.WriteError` naming the destination (see
    :func:`name_destination`), the size and the offset."""
    view = memoryview(data).cast("B")
    total = len(view)
    try:
        while view:
            n = os.pwrite(fd, view, pos)
            view = view[n:]
            pos += n
    except OSError as e:
        what = _DESTINATIONS.get(fd)
        where = "the archive being saved" if what else "a temporary file"
        raise os_error(e, what, f"writing {human_size(total)} at offset {human_size(pos)} of "
                       f"{where}") from e
    return total


def write_all(fd: int, data) -> None:
    """Write all of ``data`` at the file position of ``fd`` (advancing it).  An OSError is
    left as it is: the caller knows what the file is and names it."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]
