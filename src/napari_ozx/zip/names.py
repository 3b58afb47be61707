"""Entry names: which are Zarr metadata, which are unsafe, which a writer may use.

One rule each, for every part of the package that judges a name: the central-directory decoder
(:mod:`.central` applies the same rules to many names at once with numpy and is tested against
the scalar functions here), the writer (:mod:`.writer`), the validator
(:mod:`napari_ozx.tools.validate`) and the napari probe (:mod:`.probe`).

What the ZIP layer knows of Zarr is exactly this: the basenames of Zarr's metadata documents,
because RFC-9's ``jsonFirst`` puts them first in the central directory.  It reads none of them.
"""

from __future__ import annotations

from ..errors import UnsafeNameError

__all__ = [
    "METADATA_BASENAMES",
    "MAX_NAME_BYTES",
    "is_metadata_name",
    "is_unsafe_name",
    "UNSAFE_RULE",
    "is_directory_name",
    "check_writable_name",
]

#: File names that hold Zarr metadata (v3 and v2).  With ``jsonFirst`` these come first.
METADATA_BASENAMES = (b"zarr.json", b".zgroup", b".zarray", b".zattrs", b".zmetadata")

#: A ZIP name field holds at most this many bytes (a 16-bit length).
MAX_NAME_BYTES = 0xFFFF


def is_metadata_name(name: str) -> bool:
    """Is ``name`` (an entry name) a Zarr metadata document: basename in
    :data:`METADATA_BASENAMES`?"""
    base = name.rsplit("/", 1)[-1].encode()
    return base in METADATA_BASENAMES


#: :func:`is_unsafe_name` in words, for messages.
UNSAFE_RULE = "absolute, '..', backslash or NUL"


def is_unsafe_name(name: bytes) -> bool:
    """THE unsafe-name rule: a name (its bytes as stored) the reader hides because extracting
    it could escape the directory it is extracted into.

    Unsafe: empty, absolute (a leading ``/``, or a drive letter: second byte ``:``), holding a
    backslash or a NUL, or with a ``..`` segment.
    """
    return (
        not name
        or name[:1] == b"/"
        or b"\\" in name
        or b"\0" in name
        or name[1:2] == b":"
        or b".." in name.split(b"/")
    )


def is_directory_name(name: bytes) -> bool:
    """A directory entry (name ends in ``/``): the reader skips it, it holds no data."""
    return name.endswith(b"/")


def check_writable_name(name: str, archive: str | None) -> None:
    """Refuse (:class:`~napari_ozx.errors.UnsafeNameError`) a name the writer must not write.

    Everything the reader hides (:func:`is_unsafe_name`, directory entries) is refused, so an
    archive we write never holds an entry its reader does not list.  The writer is stricter
    still: it writes names in their one canonical spelling (no empty or ``.`` segment) and
    no longer than a ZIP name field holds.
    """
    key = name.encode("utf-8")
    bad = (
        is_unsafe_name(key)
        or is_directory_name(key)
        or any(part in (b"", b".") for part in key.split(b"/"))
        or len(key) > MAX_NAME_BYTES
    )
    if bad:
        raise UnsafeNameError("not a safe relative entry name", archive=archive, entry=name)
