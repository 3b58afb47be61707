"""npe2 writer: napari layers (images and labels) -> one ``.ozx``.

Glue only: :func:`napari_ozx.save.api.write_layers` does the work; this shows a napari progress
bar (shards written / total) and returns ``[path]`` once the archive is complete on disk.

The manifest offers this writer for selections that hold at least one image or labels layer,
whatever else they hold (``points*``, ``shapes*``, ...), so that File > Save Selected Layers
and Save All Layers offer ``.ozx`` for a mixed selection.  Layers an OME-Zarr cannot hold are
left out here, and the user is told which, and why, in a napari notification.
"""

from __future__ import annotations

import os
from typing import Any

from .save.api import write_layers

EXTENSION = ".ozx"
STORABLE = ("image", "labels")
UNSTORABLE_WHY = "OME-Zarr holds images and label images only"


def _with_extension(path: str) -> str:
    path = os.fspath(path)
    return path if path.lower().endswith(EXTENSION) else path + EXTENSION


def split_storable(layer_data: list[tuple[Any, dict, str]]) -> tuple[list, list[str]]:
    """(the LayerData we save, ``"points 'cells'"`` for each one we cannot)."""
    kept, left_out = [], []
    for item in layer_data:
        kind = str(item[2]).lower()
        if kind in STORABLE:
            kept.append(item)
        else:
            meta = item[1] if len(item) > 1 and item[1] else {}
            left_out.append(f"{kind} {meta.get('name', kind)!r}")
    return kept, left_out


def write_ozx_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Save ``layer_data`` (napari ``LayerData`` tuples) as one archive at ``path``."""
    from napari.utils import progress
    from napari.utils.notifications import show_warning

    path = _with_extension(path)
    kept, left_out = split_storable(layer_data)
    if not kept:
        show_warning(f"Nothing saved to {os.path.basename(path)}: {', '.join(left_out)} "
                     f"cannot be saved as .ozx ({UNSTORABLE_WHY}).")
        return []
    with progress(total=0, desc=f"Saving {os.path.basename(path)}") as bar:

        def on_progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        written = write_layers(path, kept, progress=on_progress)
    if left_out:
        show_warning(f"Saved {os.path.basename(path)} without {', '.join(left_out)}: "
                     f"{UNSTORABLE_WHY}. Save those layers in another format "
                     "(e.g. File > Save Selected Layers with only them selected).")
    return [written]
