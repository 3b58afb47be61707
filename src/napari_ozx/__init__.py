"""napari-ozx: zipped OME-Zarr (RFC-9 ``.ozx``) for napari and for scripts."""

from .errors import (
    CorruptArchiveError,
    NotAZipError,
    NotOmeZarrError,
    OzxError,
    OzxWarning,
    UnsafeNameError,
    UnsupportedFeatureError,
)
from .store import OzxStore, open_ozx
from .write import write_ozx
from .write_store import OzxWriteStore
from .zip.remote import RemoteError
from .zip.writer import OzxWriter

__all__ = [
    "CorruptArchiveError",
    "NotAZipError",
    "NotOmeZarrError",
    "OzxError",
    "OzxStore",
    "OzxWarning",
    "OzxWriteStore",
    "OzxWriter",
    "RemoteError",
    "UnsafeNameError",
    "UnsupportedFeatureError",
    "open_ozx",
    "write_ozx",
]

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover
    __version__ = "0.0.0"
