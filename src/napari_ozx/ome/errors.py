"""The error raised for OME-Zarr metadata that cannot be turned into layers."""

from __future__ import annotations

from ..errors import OzxError


class OmeMetadataError(OzxError):
    """OME-Zarr metadata that is missing, malformed or contradicts the arrays it describes.

    ``entry`` names the metadata document (``<group path>/zarr.json`` or ``.zattrs``); the
    reader fills in the archive.
    """
