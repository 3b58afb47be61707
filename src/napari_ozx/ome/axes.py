"""Axes of a multiscale image: names, types, units, and which one holds channels."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import OzxWarning

# OME-Zarr 0.3 gave axes as bare names; these are their types.
_TYPES_BY_NAME = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_DEFAULT_NAMES = ("t", "c", "z", "y", "x")


@dataclass(frozen=True)
class Axes:
    names: tuple[str, ...]
    types: tuple[str | None, ...]
    units: tuple[str | None, ...]

    @property
    def channel_axis(self) -> int | None:
        for i, t in enumerate(self.types):
            if t == "channel":
                return i
        return None

    def without(self, axis: int | None) -> Axes:
        if axis is None:
            return self
        keep = [i for i in range(len(self.names)) if i != axis]
        return Axes(tuple(self.names[i] for i in keep), tuple(self.types[i] for i in keep),
                    tuple(self.units[i] for i in keep))

    def napari_units(self) -> tuple[str, ...] | None:
        """Units napari accepts (pint names), one per axis; None when no axis has one."""
        if not any(self.units):
            return None
        return tuple(_pint_unit(u) for u in self.units)


def parse_axes(axes: Sequence[Any] | None, ndim: int) -> Axes:
    """Axes from a multiscale's ``axes`` (0.4+: dicts, 0.3: names, older: absent)."""
    if not axes:
        default = _DEFAULT_NAMES[-ndim:] if ndim <= 5 else tuple(f"dim_{i}" for i in range(ndim))
        return Axes(default, tuple(_TYPES_BY_NAME.get(n) for n in default), (None,) * ndim)
    names: list[str] = []
    types: list[str | None] = []
    units: list[str | None] = []
    for ax in axes:
        if isinstance(ax, str):
            names.append(ax)
            types.append(_TYPES_BY_NAME.get(ax.lower()))
            units.append(None)
        else:
            name = str(ax.get("name", f"dim_{len(names)}"))
            names.append(name)
            types.append(ax.get("type") or _TYPES_BY_NAME.get(name.lower()))
            unit = ax.get("unit")
            units.append(str(unit) if unit else None)
    return Axes(tuple(names), tuple(types), tuple(units))


# The units OME-Zarr allows on space and time axes (UDUNITS-2 names; pint knows every one).
# Checked against this list rather than pint: building pint's registry costs ~0.5 s.
OME_UNITS = frozenset("""
angstrom attometer centimeter decimeter exameter femtometer foot gigameter hectometer inch
kilometer megameter meter micrometer mile millimeter nanometer parsec petameter picometer
terameter yard yoctometer yottameter zeptometer zettameter
attosecond centisecond day decisecond exasecond femtosecond gigasecond hectosecond hour
kilosecond megasecond microsecond millisecond minute nanosecond petasecond picosecond second
terasecond yoctosecond yottasecond zeptosecond zettasecond
""".split())


def _pint_unit(unit: str | None) -> str:
    """An OME-Zarr unit for napari; anything OME-Zarr does not allow becomes a dimensionless
    ``pixel``, with a warning."""
    if unit is None:
        return "pixel"
    if unit not in OME_UNITS:
        warnings.warn(f"unit {unit!r} is not an OME-Zarr unit; shown as pixels", OzxWarning,
                      stacklevel=3)
        return "pixel"
    return unit
