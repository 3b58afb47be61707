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
# Everything that pulls in zarr, dask or the writer is imported on first use: ``napari-ozx info``
# and the napari reader's probe must not pay ~0.8 s of imports they do not need.
_LAZY = {
    "OzxStore": ".store",
    "open_ozx": ".store",
    "write_ozx": ".write",
    "add_labels": ".edit",
    "OzxWriteStore": ".write_store",
    "RemoteError": ".zip.remote",
    "OzxWriter": ".zip.writer",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_ozx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
    "add_labels",
    "open_ozx",
    "write_ozx",
]

# The version pip installed (pyproject.toml's), read from the package metadata: one source of
# truth, and importlib.metadata is cheap (no zarr, no dask). A source tree that was never
# installed has no metadata.
try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("napari-ozx")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0+unknown"
del PackageNotFoundError, version
