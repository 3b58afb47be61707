"""Where the OME attributes of a group live, and which OME-Zarr version they are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Keys that mark a group as OME-Zarr, at the top of the attributes (0.4 and older, Zarr v2)
# or under "ome" (0.5, Zarr v3).
OME_KEYS = ("multiscales", "plate", "well", "bioformats2raw.layout", "labels", "image-label",
            "scene")


@dataclass(frozen=True)
class OmeAttrs:
    """The OME attributes of one group, whatever the version that wrote them."""

    attrs: dict[str, Any]
    version: str | None
    zarr_format: int

    def __contains__(self, key: str) -> bool:
        return key in self.attrs

    def get(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    @property
    def is_ome(self) -> bool:
        return any(k in self.attrs for k in OME_KEYS)

    @property
    def legacy(self) -> bool:
        """Written as OME-Zarr 0.4 or older (Zarr v2), which RFC-9 archives are not."""
        return self.zarr_format == 2 or _version_tuple(self.version) < (0, 5)


def ome_attrs(attributes: Mapping[str, Any], zarr_format: int = 3) -> OmeAttrs:
    """The OME attributes of a group's ``attributes`` mapping (0.5 ``ome`` key or 0.4 top level)."""
    attributes = dict(attributes)
    inner = attributes.get("ome")
    if isinstance(inner, Mapping):
        attrs = dict(inner)
        version = attrs.get("version")
    else:
        attrs = {k: v for k, v in attributes.items() if k in OME_KEYS or k == "omero"}
        version = _legacy_version(attrs)
    if "omero" not in attrs and isinstance(attributes.get("omero"), Mapping):
        attrs["omero"] = attributes["omero"]
    return OmeAttrs(attrs=attrs, version=str(version) if version is not None else None,
                    zarr_format=zarr_format)


def _legacy_version(attrs: Mapping[str, Any]) -> str | None:
    for key in ("multiscales", "plate", "well", "image-label"):
        value = attrs.get(key)
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            value = value[0]
        if isinstance(value, Mapping) and "version" in value:
            return str(value["version"])
    return None


def _version_tuple(version: str | None) -> tuple[int, ...]:
    if version is None:
        return (0, 5)
    parts = []
    for part in str(version).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
