"""The ZIP container: records, sans-IO parsers, a compact index, byte sources, an archive reader.

Knows nothing of Zarr or napari.
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
