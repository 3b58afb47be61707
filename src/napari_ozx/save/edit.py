"""Changing an archive that exists: :func:`add_labels`.

An archive is never edited in place (a ZIP's central directory sits at its end, and a crash
half-way must not lose the image).  The archive is read as napari reads it, the change is made
to those layers, and everything is saved again over the same path, atomically: the unchanged
image and label images are copied entry by entry as they are stored (:mod:`.rawcopy`), so the
cost is a copy of the archive plus encoding the new label image.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import OzxError
from .api import write_layers

__all__ = ["add_labels"]


def _image_layers(path: str) -> tuple[list, list]:
    """(image layer data split per channel as napari splits it, label layer data) of the
    archive at ``path``."""
    from napari.layers.utils.stack_utils import split_channels

    from .._reader import _for_napari, _layer_name, _open_root, _token
    from ..ome import read_layers

    group = _open_root(path)
    attrs = group.attrs.asdict().get("ome", group.attrs.asdict())
    if "multiscales" not in attrs:
        raise OzxError("add_labels needs an archive whose root is one image (multiscales); "
                       "this one holds a plate, a collection or no image", archive=path)
    images, labels = [], []
    layers = _for_napari(read_layers(group, name=_layer_name(path), token=_token(path)),
                         load=False)
    for data, kwargs, kind in layers:
        if kind == "labels":
            labels.append((data, kwargs, kind))
        elif "channel_axis" in kwargs:
            kwargs = dict(kwargs)
            images.extend(split_channels(data, kwargs.pop("channel_axis"), **kwargs))
        else:
            images.append((data, kwargs, kind))
    return images, labels


def _label_key(layer_data) -> str:
    """The name under ``labels/`` of a label image as the reader gave it."""
    _, kwargs, _ = layer_data
    path = (kwargs.get("metadata") or {}).get("path") or ""
    return path.rsplit("/", 1)[-1] if path else str(kwargs.get("name"))


def add_labels(
    path: str | os.PathLike,
    name: str,
    data: Any,
    *,
    colormap: Any = None,
    features: Mapping | None = None,
    scale: Any = None,
    translate: Any = None,
    **options: Any,
) -> str:
    """Add the label image ``data`` (an integer array: numpy, dask, zarr) as ``labels/<name>``
    of the ``.ozx`` at ``path``, or replace the label image of that name; returns ``path``.

    The image and the other label images are kept as they are stored (copied, not encoded
    again); ``labels/zarr.json`` lists the new one; the archive stays RFC-9 ordered, with no
    duplicate entries, and is replaced atomically (a failure leaves it as it was).  ``data``
    has the image's spatial shape (or its own ``scale``/``translate``, per spatial axis);
    ``colormap`` and ``features`` are as for a napari Labels layer.  ``options`` go to
    :func:`napari_ozx.save.api.write_layers` (``pyramid_levels``, ``labels_method``, ...; storage
    options there apply to the new label image and force everything else to be encoded again
    unless already laid out that way).
    """
    path = os.fspath(path)
    images, labels = _image_layers(path)
    if not images:
        raise OzxError("the archive holds no image to add labels to", archive=path)
    _, ref, _ = images[0]  # napari LayerData: (data, settings, kind)
    meta: dict[str, Any] = {"name": name}
    ndim = len(getattr(data, "shape", ()))
    image_scale = ref.get("scale")
    if scale is None and image_scale is not None and len(image_scale) == ndim:
        scale = image_scale  # on the image's grid
        if translate is None:
            translate = ref.get("translate")
    if scale is not None:
        meta["scale"] = list(scale)
    if translate is not None:
        meta["translate"] = list(translate)
    if ref.get("axis_labels") is not None and len(ref["axis_labels"]) == ndim:
        meta["axis_labels"] = list(ref["axis_labels"])
    if ref.get("units") is not None and len(ref["units"]) == ndim:
        meta["units"] = list(ref["units"])
    if colormap is not None:
        meta["colormap"] = colormap
    if features is not None:
        meta["features"] = features
    new = (data, meta, "labels")
    same = [i for i, (_, settings, _) in enumerate(labels)
            if name in (_label_key(labels[i]), settings.get("name"))]
    if same:  # replaced where it was listed
        labels = [new if i == same[0] else lab for i, lab in enumerate(labels) if
                  i == same[0] or i not in same]
    else:
        labels = [*labels, new]
    layers = [*images, *labels]
    name_of_image = ref.get("name")
    return write_layers(path, layers, name=_common_name(images) or name_of_image, **options)


def _common_name(images: list) -> str | None:
    """The image's own name (multiscales name) as the reader gave it."""
    _, settings, _ = images[0]
    meta = settings.get("metadata") or {}
    ome = meta.get("ome") if isinstance(meta, dict) else None
    ms = (ome or {}).get("multiscales") if isinstance(ome, dict) else None
    if isinstance(ms, list) and ms and isinstance(ms[0], dict) and ms[0].get("name"):
        return str(ms[0]["name"])
    return None
