"""npe2 reader: ``.ozx`` (and ``.zip`` holding OME-Zarr) to napari layers.

Thin glue: :func:`napari_ozx.open_ozx` gives the zarr group, :mod:`napari_ozx.ome` turns it into
layer data.  The getter never raises; problems reading an archive become napari notifications
that name the archive and the entry.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import OzxConformanceWarning, OzxError, OzxWarning
from .zip.probe import RootProbe
from .zip.source import is_url

_log = logging.getLogger("napari_ozx")


_ROOT_METADATA = ("zarr.json", ".zattrs")
_OME_KEYS = ("multiscales", "plate", "well", "bioformats2raw.layout")


def _single_path(path: Any) -> str | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, os.PathLike)):
        return None
    return os.fspath(path)


def napari_get_reader(path: Any) -> Callable | None:
    """The reader for ``path``, or None to let other plugins have it.  Never raises."""
    try:
        p = _single_path(path)
        if p is None:
            return None
        lower = p.lower().rstrip("/")
        if is_url(p):
            return read_ozx if lower.split("?", 1)[0].endswith(".ozx") else None
        if lower.endswith(".ozx"):
            return read_ozx
        if lower.endswith(".zip") and os.path.isfile(p) and holds_ome_zarr(p):
            return read_ozx
    except Exception:  # a getter must not raise: decline
        return None
    return None


# -------------------------------------------------------------------------------- the probe


def holds_ome_zarr(path: str | os.PathLike) -> bool:
    """Does this ZIP hold an OME-Zarr hierarchy at its root?

    Decided from the end of the file and the first block of the central directory
    (:class:`~napari_ozx.zip.probe.RootProbe`): an RFC-9 comment (``{"ome": ...}``) says yes;
    otherwise the root ``zarr.json`` (or ``.zattrs``) must be among the first entries of the
    directory and carry OME attributes.  Costs a few small reads whatever the size of the
    archive; never raises.
    """
    try:
        with RootProbe(path) as probe:
            if probe.comment.data is not None:
                return True
            for name in _ROOT_METADATA:
                doc = probe.root_document(name)
                if doc is not None and _is_ome_document(name, doc):
                    return True
    except (OzxError, OSError, ValueError):
        return False
    return False


def _is_ome_document(name: str, doc: dict) -> bool:
    if name == "zarr.json":
        attrs = doc.get("attributes") or {}
        if not isinstance(attrs, dict):
            return False
        ome = attrs.get("ome")
        return isinstance(ome, dict) or any(k in attrs for k in _OME_KEYS)
    return any(k in doc for k in _OME_KEYS)


# -------------------------------------------------------------------------------- reading


def _layer_name(path: str) -> str:
    base = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    for ext in (".ozx", ".zip"):
        if base.lower().endswith(ext):
            return base[: -len(ext)] or base
    return base or "image"


def _token(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return path


def _notify(level: str, message: str) -> None:
    from napari.utils.notifications import show_error, show_warning

    (show_error if level == "error" else show_warning)(message)


def _open_root(path: str):
    """The root group; a root whose metadata zarr cannot parse is an :class:`OzxError`."""
    from . import open_ozx
    from .ome import OmeMetadataError

    try:
        return open_ozx(path)
    except OzxError:
        raise
    except Exception as e:  # zarr: missing or malformed zarr.json / .zgroup / .zattrs
        raise OmeMetadataError(
            f"the root metadata cannot be read as a Zarr group ({type(e).__name__}: {e})",
            archive=path,
            entry="zarr.json",
        ) from e


#: Label values past the largest listed one that get napari's own colours in a direct colormap
#: (what a user paints next: napari's "new label" is the largest value + 1).
UNLISTED_COLOURS = 1024


def _napari_label_colormap(listed: dict):
    """napari colormap for ``image-label.colors`` (``{value: rgba}``): None (napari's own
    cyclic colours) when the listed colours are napari's own, as in archives napari-ozx saved
    from a layer with default colours; otherwise the listed colours over napari's own for
    every other value up to :data:`UNLISTED_COLOURS` past the largest listed."""
    from napari.utils.colormaps import DirectLabelColormap, label_colormap

    own = label_colormap(49, seed=0.5)
    values = np.array(sorted(v for v in listed if v is not None and v != 0), dtype=np.int64)
    if values.size and np.allclose(own.map(values), [listed[int(v)] for v in values],
                                   atol=1.5 / 255):
        return None
    top = int(values.max()) if values.size else 0
    more = np.arange(1, top + UNLISTED_COLOURS + 1, dtype=np.int64)
    colours: dict[int | None, Any] = {
        int(v): rgba for v, rgba in zip(more, own.map(more), strict=True)
    }
    colours.update({k: v for k, v in listed.items() if k is not None})
    colours.setdefault(0, [0.0, 0.0, 0.0, 0.0])
    colours[None] = [0.0, 0.0, 0.0, 0.0]
    return DirectLabelColormap(color_dict=colours)


def _for_napari(layers: list, *, load: bool = True) -> list:
    """Finish layer data for napari: label images small enough to paint are loaded into a
    writable array (with ``load``; remembered, so an unchanged one is copied on save, see
    :mod:`.provenance`), and label colours are napari colormaps."""
    from .ome.labels import PYRAMID_KEY
    from .read import provenance

    out = []
    for data, kwargs, kind in layers:
        if kind == "labels":
            pyramid = kwargs.pop(PYRAMID_KEY, None)
            if pyramid is not None and load:
                # napari paints it in place: writable, contiguous, its own memory (computing
                # already made one, so this copies only if the result was a view)
                data = np.require(data.compute(), requirements=["C", "W", "O"])
                provenance.register_loaded(data, pyramid)
            elif pyramid is not None:  # not for napari to paint: the stored pyramid as it is
                data = pyramid if len(pyramid) > 1 else pyramid[0]
                kwargs["multiscale"] = len(pyramid) > 1
            cmap = kwargs.get("colormap")
            if isinstance(cmap, dict):
                cmap = _napari_label_colormap(cmap)
                if cmap is None:
                    kwargs.pop("colormap")
                else:
                    kwargs["colormap"] = cmap
        out.append((data, kwargs, kind))
    return out


def _notify_chunk(message: str) -> None:
    """A chunk that cannot be read while napari draws: one notification (from any thread)."""
    from napari.utils.notifications import show_error

    show_error(f"napari-ozx: {message}")


def read_ozx(path: Any) -> list:
    """Layer data for one archive; on failure a notification and napari's empty result."""
    from .ome import read_layers
    from .ome.labels import paint_budget
    from .read import guard

    guard.set_reporter(_notify_chunk)  # chunks failing while napari draws: notifications

    p = _single_path(path)
    if p is None:
        return [(None,)]
    guard.forget(p)  # opened again: its failing chunks are reported again, once each
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OzxWarning)
        try:
            group = _open_root(p)
            layers = _for_napari(read_layers(group, name=_layer_name(p), token=_token(p),
                                             paint_budget=paint_budget()))
        except OzxError as e:
            e.with_archive(p)
            _notify("error", f"napari-ozx could not open {e}")
            layers = [(None,)]
        except Exception as e:  # anything else the archive's content triggers in zarr
            _notify("error", f"napari-ozx could not open {p}: {type(e).__name__}: {e}")
            layers = [(None,)]
    for w in caught:
        if issubclass(w.category, OzxConformanceWarning):
            # nothing is wrong with what is shown: said once, in the log (validate reports it)
            msg = str(w.message)
            _log.info("%s", msg if msg.startswith(p) else f"{p}: {msg}")
        elif issubclass(w.category, OzxWarning):
            msg = str(w.message)
            _notify("warning", msg if msg.startswith(p) else f"{p}: {msg}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return layers
