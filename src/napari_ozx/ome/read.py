"""Which kind of OME-Zarr hierarchy a root group holds, and its layers."""

from __future__ import annotations

import warnings

from ..errors import NotOmeZarrError, OzxConformanceWarning
from .errors import OmeMetadataError
from .image import image_layers
from .layer import LayerData, attrs_of, child, metadata_entry, warn
from .plate import plate_layers

# A bioformats2raw collection without an OME/ series list: probe 0, 1, 2, ... up to this many.
MAX_PROBED_SERIES = 1000


def read_layers(root, *, name: str = "image", token: str = "",
                paint_budget: int | None = None) -> list[LayerData]:
    """napari layer data for the OME-Zarr hierarchy whose root group is ``root``.

    ``name`` names layers whose metadata gives no name (the archive's stem, say); ``token``
    makes the dask names of two archives differ; ``paint_budget`` (bytes) gives label images
    up to that size as one level to be loaded for painting (see :func:`.labels.label_layer`).
    Raises :class:`OmeMetadataError` or :class:`~napari_ozx.errors.NotOmeZarrError` (both
    without the archive name, which the caller adds); problems that still leave something to
    show are warnings.
    """
    if hasattr(root, "shape"):  # a bare array at the root (no group, no OME metadata)
        return [bare_array_layer(root, name=name, token=token)]
    oa = attrs_of(root)
    if oa.legacy and oa.is_ome:
        warnings.warn(f"OME-Zarr {oa.version or '0.4 or older'} (Zarr v{oa.zarr_format}): "
                      "RFC-9 archives hold OME-Zarr 0.5; reading it anyway",
                      OzxConformanceWarning, stacklevel=2)
    if "plate" in oa:
        return plate_layers(root, name=name, token=token)
    if "scene" in oa:
        from .scene import scene_layers

        return scene_layers(root, name=name, token=token)
    if "multiscales" in oa:
        return image_layers(root, name=name, token=token, paint_budget=paint_budget)
    if "bioformats2raw.layout" in oa:
        return _collection_layers(root, name=name, token=token)
    if "well" in oa:
        return _well_layers(root, oa, name=name, token=token)
    raise NotOmeZarrError(
        "the root group has no OME-Zarr metadata (multiscales, plate, well, scene or "
        "bioformats2raw.layout)",
        entry=metadata_entry(root),
    )


def _series_paths(root) -> list[str]:
    ome = child(root, "OME")
    if ome is not None and not hasattr(ome, "shape"):
        series = attrs_of(ome).get("series")
        if series is None:
            series = dict(ome.attrs).get("series")
        if isinstance(series, list) and series:
            return [str(s) for s in series]
    paths = []
    for i in range(MAX_PROBED_SERIES):
        if child(root, str(i)) is None:
            break
        paths.append(str(i))
    return paths


def _collection_layers(root, *, name: str, token: str) -> list[LayerData]:
    """bioformats2raw layout: every series (image group) in the collection."""
    paths = _series_paths(root)
    layers: list[LayerData] = []
    for path in paths:
        group = child(root, path)
        if group is None or hasattr(group, "shape"):
            warn(f"{path}: series listed in the collection is missing")
            continue
        try:
            layers.extend(image_layers(group, name=f"{name} series {path}", token=token))
        except OmeMetadataError as e:
            warn(f"series {path} skipped: {e}")
    if not layers:
        raise OmeMetadataError("bioformats2raw collection holds no readable image",
                               entry=metadata_entry(root))
    return layers


def _well_layers(root, oa, *, name: str, token: str) -> list[LayerData]:
    """A single well: its first field of view."""
    images = (oa.get("well") or {}).get("images")
    if not isinstance(images, list) or not images or "path" not in images[0]:
        raise OmeMetadataError("well lists no images", entry=metadata_entry(root))
    group = child(root, str(images[0]["path"]))
    if group is None:
        raise OmeMetadataError("first field of the well is missing",
                               entry=str(images[0]["path"]))
    return image_layers(group, name=name, token=token)


def bare_array_layer(array, *, name: str, token: str = "") -> LayerData:
    """A root array without OME metadata as one image layer: no scale, no channels; its
    contrast limits the dtype's range unless napari may look at all of it."""
    from .arrays import to_dask
    from .channels import dtype_limits
    from .image import MAX_SCANNED

    kwargs: dict = {"name": name, "metadata": {"path": "/", "bare_array": True}}
    names = getattr(array.metadata, "dimension_names", None)
    if names and all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names):
        kwargs["axis_labels"] = tuple(names)
    if array.size > MAX_SCANNED:
        kwargs["contrast_limits"] = dtype_limits(array.dtype) or [0.0, 1.0]
    return to_dask(array, token=token), kwargs, "image"
