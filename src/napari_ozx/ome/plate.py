"""HCS plates as one lazily tiled mosaic of wells (first field of view of each well), and the
label images of those fields tiled the same way."""

from __future__ import annotations

import dask.array as da

from .arrays import to_dask
from .errors import OmeMetadataError
from .image import image_kwargs
from .labels import label_layer, listed_label_groups
from .layer import LayerData, as_data, attrs_of, child, metadata_entry, multiscale_of, pyramid, warn


def _names(items, key: str, entry: str) -> list[str]:
    if not isinstance(items, list) or not items:
        raise OmeMetadataError(f"plate has no {key}", entry=entry)
    return [str(it["name"]) if isinstance(it, dict) else str(it) for it in items]


def _wells(plate: dict, rows: list[str], cols: list[str], entry: str) -> dict[tuple[int, int], str]:
    wells: dict[tuple[int, int], str] = {}
    for w in plate.get("wells") or []:
        if not isinstance(w, dict) or not isinstance(w.get("path"), str):
            continue
        path = w["path"]
        r, c = w.get("rowIndex"), w.get("columnIndex")
        if r is None or c is None:  # 0.3 and older: the path says "<row>/<column>"
            parts = path.split("/")
            if len(parts) != 2 or parts[0] not in rows or parts[1] not in cols:
                continue
            r, c = rows.index(parts[0]), cols.index(parts[1])
        wells[(int(r), int(c))] = path
    if not wells:
        raise OmeMetadataError("plate lists no wells", entry=entry)
    return wells


def _first_field(group, well_path: str) -> str:
    well = child(group, well_path)
    entry = f"{group.path}/{well_path}" if group.path else well_path
    if well is None:
        raise OmeMetadataError("first well of the plate is missing", entry=entry)
    images = (attrs_of(well).get("well") or {}).get("images")
    if not isinstance(images, list) or not images or "path" not in images[0]:
        raise OmeMetadataError("well lists no images", entry=metadata_entry(well))
    return str(images[0]["path"])


def plate_layers(group, *, name: str, token: str = "") -> list[LayerData]:
    """One (multichannel, multiscale) image layer showing every well side by side.

    Rows and columns of the plate become tiles along the last two axes; a well that is
    absent (or whose first field has another shape) is shown as zeros.  Nothing is read
    until napari asks for a tile.
    """
    oa = attrs_of(group)
    entry = metadata_entry(group)
    plate = oa.get("plate")
    if not isinstance(plate, dict):
        raise OmeMetadataError("'plate' is not an object", entry=entry)
    rows = _names(plate.get("rows"), "rows", entry)
    cols = _names(plate.get("columns"), "columns", entry)
    wells = _wells(plate, rows, cols, entry)
    first = wells[min(wells)]
    field = _first_field(group, first)
    image_group = child(group, f"{first}/{field}")
    if image_group is None:
        raise OmeMetadataError("first field of the first well is missing",
                               entry=f"{first}/{field}")
    image_oa = attrs_of(image_group)
    ms = multiscale_of(image_group, image_oa)
    arrays, datasets = pyramid(image_group, ms)
    levels = _mosaic(group, wells, rows, cols, field, arrays, datasets, token)
    name = str(plate.get("name") or name)
    kwargs, axes, scale, translate = image_kwargs(image_group, image_oa, ms, arrays, name=name)
    meta = kwargs["metadata"]
    for m in meta if isinstance(meta, list) else [meta]:
        m["plate"] = plate
        m["path"] = group.path or "/"
    out: list[LayerData] = [(as_data(levels), kwargs, "image")]
    c = axes.channel_axis
    keep = [i for i in range(len(scale)) if i != c]
    parent = (axes.without(c), scale[keep], translate[keep])
    out.extend(_plate_labels(group, wells, rows, cols, field, image_group, parent, token))
    return out


def _mosaic(group, wells, rows, cols, field: str, arrays: list, datasets: list,
            token: str) -> list:
    """Each level of ``<well>/<field>`` (an image or a label image) of every well, tiled
    rows x columns along the last two axes; an absent well (or one of another shape) is zeros.
    Lazy: nothing is read until napari asks for a tile."""
    levels = []
    for level, (tile, ds) in enumerate(zip(arrays, datasets, strict=True)):
        tile_dask = to_dask(tile, token=token)
        grid = []
        for r in range(len(rows)):
            row = []
            for c in range(len(cols)):
                arr = None
                if (r, c) in wells:
                    path = f"{wells[(r, c)]}/{field}/{ds['path']}"
                    arr = child(group, path)
                    if arr is not None and tuple(arr.shape) != tuple(tile.shape):
                        if level == 0:
                            warn(f"{path}: shape {tuple(arr.shape)} differs from the first "
                                 f"well's {tuple(tile.shape)}; shown as zeros")
                        arr = None
                if arr is None:
                    row.append(da.zeros(tile.shape, dtype=tile.dtype, chunks=tile_dask.chunks))
                else:
                    row.append(to_dask(arr, token=token))
            grid.append(row)
        levels.append(da.block(grid))
    return levels


def _plate_labels(group, wells, rows, cols, field: str, image_group, parent,
                  token: str) -> list[LayerData]:
    """The label images of the first field, as napari-ome-zarr shows them: each a Labels
    layer tiled like the images (one lazy pyramid over every well)."""
    out: list[LayerData] = []
    for label_name, where, lgroup in listed_label_groups(image_group):
        try:
            _, kwargs, _ = label_layer(lgroup, name=label_name, parent=parent, token=token)
            lms = multiscale_of(lgroup, attrs_of(lgroup))
            arrays, datasets = pyramid(lgroup, lms)
        except OmeMetadataError as e:
            warn(f"plate label image {where} skipped: {e}")
            continue
        if arrays[0].ndim != len(kwargs["scale"]):
            warn(f"plate label image {where} skipped: it has a channel axis")
            continue
        levels = _mosaic(group, wells, rows, cols, f"{field}/labels/{label_name}", arrays,
                         datasets, token)
        kwargs["multiscale"] = len(levels) > 1
        kwargs["metadata"] = dict(kwargs.get("metadata") or {}, path=group.path or "/",
                                  plate_labels=f"{field}/labels/{label_name}")
        out.append((as_data(levels), kwargs, "labels"))
    return out
