"""Where an archive is written until it is complete, and how it replaces the destination.

The writer (:mod:`.writer`) decides what bytes go where; this module decides how a file
appears on disk, so a save that fails, is cancelled or is killed leaves the destination as it
was and nothing beside it:

* the bytes go into an unnamed file (``O_TMPFILE``) in the destination's directory: a killed
  process leaves nothing at all.  Where the file system lacks ``O_TMPFILE`` (or there is no
  ``/proc`` to name it by later) a named temporary ``.<name>.<pid>.<id>.tmp`` is used, and the
  next save to the same path removes those of processes that are gone;
* :meth:`Destination.commit` fsyncs the file, names it beside the destination (``linkat``),
  renames it over the destination and fsyncs the directory;
* :meth:`Destination.discard` closes and removes it.

OS errors become :class:`~napari_ozx.errors.WriteError` naming the destination and the step.
"""

from __future__ import annotations

import errno
import os
import re

from ..errors import WriteError
from ._io import forget_destination, human_size, name_destination, os_error

__all__ = ["Destination", "remove_stale_temporaries"]

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class Destination:
    """The file being written for ``path``: :attr:`fd` to write at, then commit or discard."""

    def __init__(self, path: str, tag: str):
        """``tag`` makes the temporary's name unique among this process's saves."""
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        self._directory = directory
        self._tmp_name = os.path.join(directory,
                                      f".{os.path.basename(path)}.{os.getpid()}.{tag}.tmp")
        if os.path.isdir(path):
            raise WriteError("a directory is in the way (the archive would replace it)",
                             archive=path, errno=errno.EISDIR)
        remove_stale_temporaries(path)
        self.fd = _open_unnamed(directory)
        self._tmp: str | None = None if self.fd >= 0 else self._tmp_name  # None: unnamed
        if self._tmp is not None:
            try:
                self.fd = os.open(self._tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC,
                                  0o644)
            except OSError as e:
                raise os_error(e, path, "cannot create the archive's temporary file "
                               "beside it") from e
        name_destination(self.fd, path)

    @property
    def temporary_path(self) -> str:
        """A path this host's processes can open the file being written by."""
        if self._tmp is None:
            return f"/proc/{os.getpid()}/fd/{self.fd}"
        return self._tmp

    def commit(self, size: int) -> None:
        """Cut the file at ``size`` bytes, make it durable and move it over the destination."""
        step = f"finishing the archive ({human_size(size)})"
        try:
            os.ftruncate(self.fd, size)
            os.fsync(self.fd)
            if self._tmp is None:  # unnamed until now: a name beside the destination
                step = "naming the finished archive beside the destination"
                _link_unnamed(self.fd, self._tmp_name)
                self._tmp = self._tmp_name
            forget_destination(self.fd)
            os.close(self.fd)
            self.fd = -1
            step = "moving the finished archive over the destination"
            os.replace(self._tmp, self.path)
        except OSError as e:
            raise os_error(e, self.path, step) from e
        _fsync_dir(self._directory)

    def discard(self) -> None:
        """Close and remove the file; the destination is untouched.  Safe to call twice."""
        if self.fd >= 0:
            forget_destination(self.fd)
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None


def _open_unnamed(directory: str) -> int:
    """An unnamed file in ``directory`` (O_TMPFILE), or -1 where that is not available (other
    systems, file systems without it, no /proc to give it a name at commit)."""
    if not _O_TMPFILE or not os.path.isdir("/proc/self/fd"):
        return -1
    try:
        return os.open(directory, _O_TMPFILE | os.O_RDWR | _O_CLOEXEC, 0o644)
    except (OSError, ValueError):  # EOPNOTSUPP, EISDIR (old kernels), ENOENT...: fall back
        return -1


def _link_unnamed(fd: int, name: str) -> None:
    """Give the unnamed file ``fd`` the name ``name``: linkat(2) with AT_SYMLINK_FOLLOW on
    /proc/self/fd/N (Python's os.link uses link(2), which would link the /proc symlink, when
    no directory descriptor is given)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Remove the temporary files of saves to ``path`` whose process is gone (killed before
    its rename); returns their paths.  A temporary of a live process is left alone."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(f".{os.path.basename(path)}.") + r"(\d+)\.[0-9a-f]+\.tmp")
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed.append(os.path.join(directory, name))
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
