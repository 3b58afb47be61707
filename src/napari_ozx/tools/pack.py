"""Directory <-> archive: ``napari-ozx pack`` and ``napari-ozx unpack``.

:func:`pack` copies the files of an OME-Zarr 0.5 directory into a new ``.ozx`` without
re-encoding anything: metadata read into memory, every other file streamed through
:class:`~napari_ozx.zip.writer.OzxWriter` (RFC-9 order, ZIP64, aligned, atomic).

:func:`unpack` writes the entries of an archive under a directory and never outside it: an
archive with unsafe names (absolute, ``..``, backslashes) is refused before anything is
written, and no path is followed through a symbolic link.
"""

from __future__ import annotations

import errno
import json
import os
from typing import NamedTuple, Protocol

from ..errors import CorruptArchiveError, NotOmeZarrError, OzxError, UnsafeNameError, WriteError
from ..zip import ZipArchive, records
from ..zip._io import streamed_crc32, write_all
from ..zip.writer import OzxWriter, rfc9_sort_key

__all__ = ["Copied", "Progress", "pack", "unpack", "check_ome_zarr_dir"]

_BLOCK = 256 << 10  # cache-sized blocks: read, CRC, write while hot


class Progress(Protocol):
    """What :func:`pack` and :func:`unpack` report to (the command line's progress bar)."""

    def start(self, files: int, total: int) -> None:
        """Once the files are listed: how many, and how many bytes they hold."""

    def __call__(self, n: int) -> None:
        """``n`` more bytes were copied."""


class Copied(NamedTuple):
    """What a :func:`pack` or :func:`unpack` copied."""

    entries: int
    nbytes: int


def check_ome_zarr_dir(src: str) -> dict:
    """The root ``zarr.json`` of an OME-Zarr 0.5 (Zarr v3) directory; raise if it is not one."""
    if not os.path.isdir(src):
        raise NotOmeZarrError("not a directory", archive=src)
    root = os.path.join(src, "zarr.json")
    if not os.path.isfile(root):
        v2 = any(os.path.exists(os.path.join(src, n)) for n in (".zgroup", ".zattrs", ".zarray"))
        hint = (" (it is a Zarr v2 / OME-Zarr 0.4 directory; convert it to OME-Zarr 0.5 first)"
                if v2 else "")
        raise NotOmeZarrError(f"no zarr.json at the top: not a Zarr v3 OME-Zarr directory{hint}",
                              archive=src)
    try:
        with open(root, "rb") as f:
            doc = json.loads(f.read())
    except ValueError as e:
        raise NotOmeZarrError(f"zarr.json is not JSON ({e})", archive=src, entry="zarr.json") from e
    if not isinstance(doc, dict) or doc.get("zarr_format") != 3:
        raise NotOmeZarrError("zarr.json is not Zarr v3 metadata (zarr_format 3)", archive=src,
                              entry="zarr.json")
    ome = (doc.get("attributes") or {}).get("ome")
    if not isinstance(ome, dict) or not isinstance(ome.get("version"), str):
        raise NotOmeZarrError("zarr.json has no attributes.ome.version: a Zarr hierarchy, but "
                              "not OME-Zarr 0.5", archive=src, entry="zarr.json")
    return doc


def _files(src: str, skip: set[str]) -> list[tuple[str, str, int]]:
    """(entry name, path, size) of every file under ``src``, in RFC-9 order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for fn in filenames:
            path = os.path.join(dirpath, fn)
            if os.path.realpath(path) in skip or not os.path.isfile(path):
                continue
            rel = os.path.relpath(path, src).replace(os.sep, "/")
            out.append((rel, path, os.path.getsize(path)))
    out.sort(key=lambda t: rfc9_sort_key(t[0]))
    return out


def pack(src: str | os.PathLike, dest: str | os.PathLike, *, overwrite: bool = False,
         progress: Progress | None = None, align: int = 4096) -> Copied:
    """Pack the OME-Zarr 0.5 directory ``src`` into the archive ``dest`` (replacing it only
    with ``overwrite``)."""
    src, dest = os.fspath(src), os.fspath(dest)
    doc = check_ome_zarr_dir(src)
    if os.path.exists(dest) and not overwrite:
        raise OzxError("exists already (use --force to replace it)", archive=dest)
    files = _files(src, {os.path.realpath(dest)})
    total = sum(size for _, _, size in files)
    if progress is not None:
        progress.start(len(files), total)
    version = doc["attributes"]["ome"]["version"]
    with OzxWriter(dest, align=align, ome_version=version) as writer:
        for name, path, _ in files:
            writer.write_file(name, path, progress=progress)
    return Copied(len(files), total)


def _safe_target(root_real: str, name: str) -> str:
    parts = name.split("/")
    target = os.path.join(root_real, *parts)
    parent = os.path.realpath(os.path.dirname(target))
    if parent != root_real and not parent.startswith(root_real + os.sep):
        raise UnsafeNameError("would be written outside the destination (through a symbolic "
                              "link)", entry=name)
    return target


def unpack(archive_path: str | os.PathLike, dest: str | os.PathLike, *, force: bool = False,
           progress: Progress | None = None) -> Copied:
    """Write every entry of ``archive_path`` under the directory ``dest``.

    Refuses a non-empty ``dest`` unless ``force``; refuses archives with unsafe names, symbolic
    link entries, or entries that would land outside ``dest``.  CRC-32 is checked as data
    streams.

    Nothing partial is left: into a new (or empty) ``dest`` the entries go to a temporary
    directory beside it, renamed to ``dest`` once complete; with ``force`` into a non-empty
    ``dest``, a failure removes the files and directories this call created (files it
    overwrote keep their new, possibly partial, content).
    """
    archive_path, dest = os.fspath(archive_path), os.fspath(dest)
    with ZipArchive(archive_path, warn=False) as archive:
        index = archive.full_index()
        if archive.n_unsafe:
            shown = ", ".join(repr(n) for n in archive.unsafe_names[:5])
            raise UnsafeNameError(
                f"{archive.n_unsafe} entries with unsafe names ({shown}); nothing was unpacked",
                archive=archive_path,
            )
        rows = [int(r) for r in index.rows()]
        links = [index.name(r) for r in rows if index.is_symlink[r]]
        if links:
            raise UnsafeNameError(f"symbolic link entries are refused: {links[:5]}; nothing "
                                  "was unpacked", archive=archive_path, entry=links[0])
        if os.path.exists(dest):
            if not os.path.isdir(dest):
                raise OzxError("destination exists and is not a directory", archive=dest)
            if os.listdir(dest) and not force:
                raise OzxError("destination directory is not empty (use --force to unpack into "
                               "it anyway)", archive=dest)
        total = sum(int(index.uncompressed_size[r]) for r in rows)
        merge = os.path.isdir(dest) and bool(os.listdir(dest))
        parent = os.path.dirname(os.path.abspath(dest))
        if merge:
            work = dest
        else:
            work = os.path.join(parent, f".{os.path.basename(os.path.abspath(dest))}."
                                        f"{os.getpid()}.unpack.tmp")
        created: list[tuple[str, bool]] = []  # (path, is directory), in creation order
        try:
            try:
                if not merge:
                    os.mkdir(work)
                    created.append((work, True))
            except OSError as e:
                raise WriteError(f"cannot create the directory: {_reason(e)}", archive=dest,
                                 errno=e.errno) from e
            root_real = os.path.realpath(work)
            if progress is not None:
                progress.start(len(rows), total)
            done = 0
            for r in rows:
                name = index.name(r)
                try:
                    _extract(archive, index, r, name, _safe_target(root_real, name), progress,
                             created)
                except OzxError as e:
                    if e.entry is None:
                        e.entry = name
                    raise e.with_archive(archive_path) from None
                except OSError as e:
                    raise WriteError(
                        f"writing {name} ({int(index.uncompressed_size[r])} bytes; "
                        f"{done} of {total} bytes unpacked): {_reason(e)}; nothing was left "
                        "behind", archive=dest, entry=name, errno=e.errno) from e
                done += int(index.uncompressed_size[r])
            if not merge:
                try:
                    if os.path.isdir(dest):
                        os.rmdir(dest)  # empty: the complete tree takes its place
                    os.rename(work, dest)
                except OSError as e:
                    raise WriteError(f"moving the unpacked tree into place: {_reason(e)}",
                                     archive=dest, errno=e.errno) from e
        except BaseException:
            _remove_created(created)
            raise
    return Copied(len(rows), total)


def _reason(e: OSError) -> str:
    from ..zip.writer import os_reason

    return os_reason(e)


def _remove_created(created: list[tuple[str, bool]]) -> None:
    """Remove what an unpack created (files, then directories, newest first)."""
    for path, is_dir in reversed(created):
        try:
            if is_dir:
                import shutil

                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass


def _makedirs(path: str, created: list) -> None:
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for d in reversed(missing):
        os.mkdir(d)
        created.append((d, True))


def _extract(archive: ZipArchive, index, row: int, name: str, target: str, progress,
             created: list) -> None:
    _makedirs(os.path.dirname(target), created)
    existed = os.path.lexists(target)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                     | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeNameError(f"cannot create {target}: {e.strerror}", entry=name) from e
        raise
    if not existed:
        created.append((target, False))
    try:
        size = int(index.uncompressed_size[row])
        if int(index.method[row]) == records.METHOD_STORED:
            def each(block: bytes) -> None:
                write_all(fd, block)
                if progress is not None:
                    progress(len(block))

            crc = streamed_crc32(lambda a, b: _read(archive, name, a, b), size, _BLOCK, each)
            want = int(index.crc32[row])
            if crc != want:
                raise CorruptArchiveError(f"CRC-32 mismatch (data {crc:08x}, directory "
                                          f"{want:08x})", entry=name)
        else:
            data = _read(archive, name)  # checks its CRC-32
            write_all(fd, data)
            if progress is not None:
                progress(len(data))
    finally:
        os.close(fd)


def _read(archive: ZipArchive, name: str, start: int = 0, stop: int | None = None) -> bytes:
    data = archive.read(name, start, stop)
    if data is None:  # the name comes from the archive's own index: it cannot be absent
        raise CorruptArchiveError("listed in the central directory but not found", entry=name)
    return data
