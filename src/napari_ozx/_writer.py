"""npe2 writer: napari layers (images and labels) -> one ``.ozx``.

Glue only: :func:`napari_ozx.write.write_layers` does the work; this shows a napari progress
bar (shards written / total) and returns ``[path]`` once the archive is complete on disk.
"""

from __future__ import annotations

import os
from typing import Any

from .write import write_layers

EXTENSION = ".ozx"


def _with_extension(path: str) -> str:
    path = os.fspath(path)
    return path if path.lower().endswith(EXTENSION) else path + EXTENSION


def write_ozx_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Save ``layer_data`` (napari ``LayerData`` tuples) as one archive at ``path``."""
    from napari.utils import progress

    path = _with_extension(path)
    with progress(total=0, desc=f"Saving {os.path.basename(path)}") as bar:

        def on_progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        written = write_layers(path, layer_data, progress=on_progress)
    return [written]
