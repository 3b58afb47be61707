"""The ZIP container: records, sans-IO parsers, a compact index, byte sources, an archive
reader and writer.

Reads no Zarr document and knows nothing of napari.  What it does know of Zarr and OME is what
RFC-9 makes part of the container, each in one module: the basenames of Zarr's metadata
documents (:mod:`.names`: RFC-9's ``jsonFirst`` puts them first), and the archive comment
``{"ome": {"version": ...}}`` (:mod:`.comment`, which also reads the version the writer puts
there from ``attributes.ome.version`` of the root ``zarr.json``).

Modules, in the order bytes flow through them when reading: :mod:`.source` (byte sources;
:mod:`.remote` for URLs), :mod:`.eocd` (end records), :mod:`.comment`, :mod:`.central`
(central directory in blocks; :mod:`.names`, :mod:`.namehash`), :mod:`.index`, :mod:`.layout`
(data offsets inferred), :mod:`.entry` (local header, inflate, CRC), :mod:`.archive`.  Besides:
:mod:`.probe` (the napari getter's quick look), :mod:`.writer`, :mod:`._io` (whole reads and
writes, CRC-32), :mod:`.records` (layouts and constants).
"""

from .archive import EntryInfo, ZipArchive
from .comment import OmeComment, parse_comment
from .names import is_metadata_name
from .records import NeedBytes
from .source import ByteSource, LocalFile

__all__ = [
    "ByteSource",
    "EntryInfo",
    "LocalFile",
    "NeedBytes",
    "OmeComment",
    "ZipArchive",
    "is_metadata_name",
    "parse_comment",
]
