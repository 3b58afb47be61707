"""OME-Zarr metadata -> napari layer data.

Pure translation: it is handed a zarr group (attributes and arrays) and returns napari
``LayerData`` tuples of lazy dask arrays; it reads nothing itself and knows nothing of ZIP.
Supported: multiscale images (0.1 - 0.5), ``omero`` channels, axes and units, scale and
translation at dataset and multiscale level, labels, HCS plates and wells, bioformats2raw
collections.
"""

from __future__ import annotations

from .attrs import OmeAttrs, ome_attrs
from .errors import OmeMetadataError
from .layer import LayerData
from .read import read_layers

__all__ = ["LayerData", "OmeAttrs", "OmeMetadataError", "ome_attrs", "read_layers"]
