"""Encoded shards set aside on disk until their turn to be written: :class:`Spill`.

A shard of a lower pyramid level collects its chunks over many shards of the level above, and
a level-0 shard completed before its turn waits for the one being streamed; their encoded
chunks wait in an unnamed temporary file beside the archive, so in the page cache rather than
in this process's memory.  A :class:`Spill` is a :class:`~.encoder.Hold` for
:class:`~.encoder.ShardBuilder`; the collector (:mod:`.collector`) makes one per held shard.
It knows nothing of shards or archives: bytes in, bytes back, file gone at :meth:`close`.
"""

from __future__ import annotations

import os

from ..errors import OzxError
from ..zip._io import FileEndedError, pread_exactly, pwrite_all

__all__ = ["Spill"]


class Spill:
    """Bytes set aside in an unnamed temporary file in ``directory`` until they are written:
    they wait in the page cache, not in this process's memory (a shard of a lower pyramid
    level collects its chunks over many shards of the level above).  The file is created at
    the first :meth:`append` and gone at :meth:`close`."""

    def __init__(self, directory: str):
        self.directory = directory
        self.fd = -1
        self.size = 0

    def _open(self) -> None:
        try:
            self.fd = os.open(self.directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except (AttributeError, OSError):  # no O_TMPFILE here, or not on this file system
            import tempfile

            with tempfile.TemporaryFile(dir=self.directory) as f:
                self.fd = os.dup(f.fileno())

    def append(self, data: bytes | memoryview) -> int:
        if self.fd < 0:
            self._open()
        at = self.size
        self.size += pwrite_all(self.fd, data, at)
        return at

    def read(self, offset: int, length: int) -> bytes:
        try:
            return pread_exactly(self.fd, offset, length)
        except FileEndedError as e:  # a short spill file is a bug here
            raise OzxError(f"spill file ended at {e.at} of {offset + length}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
