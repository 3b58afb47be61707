"""napari-ozx: zipped OME-Zarr (RFC-9 ``.ozx``) for napari and for scripts."""

from .errors import (
    CorruptArchiveError,
    NotAZipError,
    NotOmeZarrError,
    OzxConformanceWarning,
    OzxError,
    OzxWarning,
    UnsafeNameError,
    UnsupportedFeatureError,
)

# Everything that pulls in zarr, dask or the writer is imported on first use: ``napari-ozx info``
# and the napari reader's probe must not pay ~0.8 s of imports they do not need.
_LAZY = {
    "OzxStore": ".read.store",
    "open_ozx": ".read.store",
    "write_ozx": ".save.api",
    "add_labels": ".save.edit",
    "OzxWriteStore": ".save.store",
    "RemoteError": ".zip.remote",
    "OzxWriter": ".zip.writer",
}


def _installed_version() -> str:
    """The version pip installed (pyproject.toml's), from the package metadata: one source of
    truth. Read on first use, like the modules above: importlib.metadata costs tens of ms."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-ozx")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name):
    if name == "__version__":
        globals()[name] = value = _installed_version()
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_ozx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})


__all__ = [
    "CorruptArchiveError",
    "NotAZipError",
    "NotOmeZarrError",
    "OzxConformanceWarning",
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
