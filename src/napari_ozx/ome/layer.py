"""Helpers shared by the image, label and plate readers: metadata paths, pyramids, warnings."""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import OzxWarning
from .arrays import to_dask
from .attrs import OmeAttrs, ome_attrs
from .errors import OmeMetadataError

LayerData = tuple[Any, dict[str, Any], str]


def zarr_format(group) -> int:
    return int(getattr(group.metadata, "zarr_format", 3))


def metadata_entry(group) -> str:
    """The archive entry holding a group's attributes (what a user can look up)."""
    name = "zarr.json" if zarr_format(group) == 3 else ".zattrs"
    return f"{group.path}/{name}" if group.path else name


def attrs_of(group) -> OmeAttrs:
    try:
        attributes = group.attrs.asdict()
    except Exception as e:  # unreadable attributes of any kind
        raise OmeMetadataError(f"unreadable attributes: {e}", entry=metadata_entry(group)) from e
    return ome_attrs(attributes, zarr_format(group))


def warn(message: str) -> None:
    warnings.warn(message, OzxWarning, stacklevel=3)


def child(group, path: str):
    """``group[path]`` or None when it does not exist."""
    try:
        return group[path]
    except KeyError:
        return None


def _entry_of(group, path: str) -> str:
    full = f"{group.path}/{path}" if group.path else path
    return full


def multiscale_of(group, oa: OmeAttrs) -> dict:
    entry = metadata_entry(group)
    ms_list = oa.get("multiscales")
    if not isinstance(ms_list, list) or not ms_list or not isinstance(ms_list[0], dict):
        raise OmeMetadataError("'multiscales' is not a non-empty list of objects", entry=entry)
    ms = ms_list[0]
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise OmeMetadataError("multiscales[0] lists no datasets", entry=entry)
    for i, ds in enumerate(datasets):
        if not isinstance(ds, dict) or not isinstance(ds.get("path"), str):
            raise OmeMetadataError(f"multiscales[0].datasets[{i}] has no 'path'", entry=entry)
    return ms


def pyramid(group, ms: dict) -> tuple[list, list[dict]]:
    """The zarr arrays of a multiscale's datasets, largest first, and their dataset entries.

    A missing level 0 is an error; a missing or not-smaller later level ends the pyramid
    there, with a warning (the levels before it still show the image).
    """
    entry = metadata_entry(group)
    arrays: list = []
    datasets: list[dict] = []
    for ds in ms["datasets"]:
        path = ds["path"]
        node = child(group, path)
        where = _entry_of(group, path)
        if node is None or not hasattr(node, "shape") or not hasattr(node, "dtype"):
            what = "is missing" if node is None else "is a group, not an array"
            if not arrays:
                raise OmeMetadataError(f"dataset {path!r} listed in multiscales {what}",
                                       entry=where)
            warn(f"{entry}: dataset {path!r} {what}; showing {len(arrays)} level(s)")
            break
        if arrays:
            prev = arrays[-1]
            if node.ndim != prev.ndim:
                warn(f"{entry}: dataset {path!r} has {node.ndim} dimensions, level 0 has "
                     f"{prev.ndim}; showing {len(arrays)} level(s)")
                break
            smaller = all(a <= b for a, b in zip(node.shape, prev.shape, strict=True)) and any(
                a < b for a, b in zip(node.shape, prev.shape, strict=True))
            if not smaller:
                warn(f"{entry}: dataset {path!r} shape {tuple(node.shape)} is not smaller than "
                     f"the level before it {tuple(prev.shape)}; showing {len(arrays)} level(s)")
                break
        arrays.append(node)
        datasets.append(ds)
    return arrays, datasets


def lazy_pyramid(arrays: list, token: str) -> list:
    return [to_dask(a, token=token) for a in arrays]


def as_data(levels: list):
    """napari takes a list for a multiscale layer and a plain array otherwise."""
    return levels if len(levels) > 1 else levels[0]
