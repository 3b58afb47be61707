"""Exception and warning types of napari-ozx.

Every error says which archive it is about and, where it applies, which entry.  The ZIP core
raises them without an archive name (it sees only bytes); the layer that owns the byte source
fills the name in with :meth:`OzxError.with_archive` before the error reaches a user.
"""

from __future__ import annotations


class OzxError(Exception):
    """Base class of every error napari-ozx raises about an archive."""

    def __init__(self, message: str, *, archive: str | None = None, entry: str | None = None):
        super().__init__(message)
        self.message = message
        self.archive = archive
        self.entry = entry

    def with_archive(self, archive: str) -> OzxError:
        if self.archive is None:
            self.archive = archive
        return self

    def __str__(self) -> str:
        parts = []
        if self.archive is not None:
            parts.append(str(self.archive))
        if self.entry is not None:
            parts.append(f"entry {self.entry!r}")
        parts.append(self.message)
        return ": ".join(parts)

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.archive, self.entry))


def _rebuild(cls, message, archive, entry):
    return cls(message, archive=archive, entry=entry)


class NotAZipError(OzxError):
    """The file is not a ZIP archive (no end-of-central-directory record)."""


class CorruptArchiveError(OzxError):
    """The archive's records contradict each other or point outside the file."""


class UnsupportedFeatureError(OzxError):
    """A valid ZIP feature we do not read: encryption, multi-disk archives, other methods."""


class UnsafeNameError(OzxError):
    """An entry name that could escape a directory (absolute, '..', backslash)."""


class NotOmeZarrError(OzxError):
    """The archive holds no OME-Zarr hierarchy where one is required."""


class WriteError(OzxError, OSError):
    """A save could not write: full disk, read-only or missing directory, a directory in the
    way, permissions.  Names the destination and what was being written; also an OSError
    (``errno`` set), as the failure of the file system it is."""

    def __init__(self, message: str, *, archive: str | None = None, entry: str | None = None,
                 errno: int | None = None):
        super().__init__(message, archive=archive, entry=entry)
        self.errno = errno

    def __reduce__(self):
        return (_rebuild_write, (self.message, self.archive, self.entry, self.errno))


def _rebuild_write(message, archive, entry, errno):
    return WriteError(message, archive=archive, entry=entry, errno=errno)


class OzxWarning(UserWarning):
    """Something about an archive worth knowing that does not stop reading it."""


class OzxConformanceWarning(OzxWarning):
    """The archive departs from RFC-9 in a way that does not change what is read (no archive
    comment, zipped OME-Zarr 0.4).  ``napari-ozx validate`` reports these; the napari reader
    only logs them."""


class WriteCancelled(OzxError):
    """The write was cancelled; the destination was left as it was."""


class MultiPartArchiveError(UnsupportedFeatureError):
    """A multi-part (split or spanned) archive: records or data on other disks."""
