"""Session fixtures shared by the test modules, built once: archives written by other tools,

* ome-zarr-py 0.18 (``ome_zarr.writer``) writes an OME-Zarr 0.5 directory, which the stdlib
  ``zipfile`` packs in RFC-9 order (``archives.zip_stdlib``: metadata first, STORED, comment);
* ngff-zarr writes its own ``.ozx``;
* ome-zarr-py with ``FormatV04`` writes an OME-Zarr 0.4 (Zarr v2) directory, zipped by Info-ZIP;
* a plate, a bioformats2raw collection and broken hierarchies built the same way;
* a small sharded Zarr v3 directory (``hierarchy``) and an archive of a million entries
  (``million_ozx``), shared by the CLI, validator, remote and load tests.

Pixels come from ``helpers.py``, archive builders from ``archives.py``.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import zarr

from archives import (
    make_v3_hierarchy,
    many_entry_archive,
    write_plate,
    zip_infozip,
    zip_stdlib,
)
from helpers import label_pixels, random_pixels

# ------------------------------------------------------------------ what the archives hold

CHANNELS = [
    {"label": "DAPI", "color": "0000FF", "active": True,
     "window": {"start": 100, "end": 900, "min": 0, "max": 4095}},
    {"label": "Actin", "color": "FF8000", "active": False,
     "window": {"start": 50, "end": 2000, "min": 0, "max": 4095}},
]
IMAGE_SCALE = {"z": 2.0, "y": 0.5, "x": 0.5}  # micrometer
LABEL_COLORS = {1: [255, 0, 0, 255], 2: [0, 255, 0, 128]}
LABEL_PROPERTIES = [{"label-value": 1, "class": "nucleus", "area": 400},
                    {"label-value": 2, "class": "cytoplasm", "area": 900}]


def write_ome_zarr_py_image(root: Path, *, fmt=None, sharded=True) -> dict:
    """A 2-channel czyx image with omero settings and a ``cells`` label image, by ome-zarr-py."""
    from ome_zarr.writer import write_image, write_labels

    if root.exists():
        shutil.rmtree(root)
    zarr_format = 2 if fmt is not None and fmt.version in ("0.4",) else 3
    g = zarr.open_group(str(root), mode="w", zarr_format=zarr_format)
    data = random_pixels((2, 8, 128, 128))
    opts = {"chunks": (1, 4, 32, 32)}
    if sharded and zarr_format == 3:
        opts["shards"] = (1, 8, 64, 64)
    write_image(data, g, axes="czyx", scale_factors=(2, 4), fmt=fmt,
                scale=IMAGE_SCALE,
                storage_options=opts, axes_units={"z": "micrometer", "y": "micrometer",
                                                  "x": "micrometer"},
                name="cells-image", omero={"channels": CHANNELS, "rdefs": {"model": "color"}})
    lab = label_pixels()
    write_labels(lab, g, name="cells", axes="zyx", scale_factors=(2,), fmt=fmt,
                 scale=IMAGE_SCALE,
                 label_metadata={
                     "colors": [{"label-value": k, "rgba": v} for k, v in LABEL_COLORS.items()],
                     "properties": LABEL_PROPERTIES,
                 })
    return {"image": data, "labels": lab}


@pytest.fixture(scope="session")
def ome_zarr_py_ozx(tmp_path_factory) -> Path:
    """ome-zarr-py 0.5 directory (sharded), zipped in RFC-9 order with the stdlib."""
    d = tmp_path_factory.mktemp("ome-zarr-py")
    write_ome_zarr_py_image(d / "cells.zarr")
    return zip_stdlib(d / "cells.zarr", d / "cells.ozx")


@pytest.fixture(scope="session")
def ome_zarr_py_dir(ome_zarr_py_ozx) -> Path:
    return ome_zarr_py_ozx.parent / "cells.zarr"


@pytest.fixture(scope="session")
def ngff_zarr_ozx(tmp_path_factory) -> Path:
    """An ``.ozx`` written by ngff-zarr's ``to_ngff_zarr`` itself (zyx, scale and translation)."""
    import ngff_zarr as nz

    d = tmp_path_factory.mktemp("ngff-zarr")
    data = random_pixels((4, 96, 128), seed=3)
    image = nz.to_ngff_image(data, dims=["z", "y", "x"], scale={"z": 3.0, "y": 0.25, "x": 0.5},
                             translation={"z": 1.0, "y": 2.0, "x": 4.0}, name="ngff")
    ms = nz.to_multiscales(image, scale_factors=[2])
    out = d / "ngff.ozx"
    nz.to_ngff_zarr(str(out), ms, version="0.5")
    return out


@pytest.fixture(scope="session")
def v04_zip(tmp_path_factory) -> Path:
    """OME-Zarr 0.4 (Zarr v2) written by ome-zarr-py, zipped by Info-ZIP ``zip`` as ``.zip``."""
    from ome_zarr.format import FormatV04

    d = tmp_path_factory.mktemp("v04")
    write_ome_zarr_py_image(d / "old.zarr", fmt=FormatV04())
    return zip_infozip(d / "old.zarr", d / "old.zip")


@pytest.fixture(scope="session")
def plain_zip(tmp_path_factory) -> Path:
    """An ordinary zip of text files: not ours."""
    d = tmp_path_factory.mktemp("plain")
    out = d / "notes.zip"
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("README.txt", "hello")
        zf.writestr("data/table.csv", "a,b\n1,2\n")
    return out


@pytest.fixture(scope="session")
def plain_zarr_zip(tmp_path_factory) -> Path:
    """A zipped Zarr v3 hierarchy without OME metadata: not an image, not claimed as .zip."""
    d = tmp_path_factory.mktemp("plainzarr")
    g = zarr.open_group(str(d / "p.zarr"), mode="w")
    g.create_array("a", shape=(8, 8), dtype="u1")[:] = 1
    return zip_stdlib(d / "p.zarr", d / "p.zip", comment=None)


@pytest.fixture(scope="session")
def plate_ozx(tmp_path_factory) -> tuple[Path, dict]:
    """An HCS plate (2 x 3, three wells, two fields each) by ome-zarr-py, zipped RFC-9."""
    d = tmp_path_factory.mktemp("plate")
    fields, _ = write_plate(d / "plate.zarr", name="P1", field_shape=(32, 48), chunk=16)
    return zip_stdlib(d / "plate.zarr", d / "plate.ozx"), fields


@pytest.fixture(scope="session")
def collection_ozx(tmp_path_factory) -> Path:
    """A bioformats2raw layout (``bioformats2raw.layout: 3``, ``OME/`` series list) with two
    series written by ome-zarr-py."""
    from ome_zarr.writer import write_image

    d = tmp_path_factory.mktemp("b2r")
    root = zarr.open_group(str(d / "b2r.zarr"), mode="w")
    root.attrs["ome"] = {"version": "0.5", "bioformats2raw.layout": 3}
    ome = root.create_group("OME")
    ome.attrs["ome"] = {"version": "0.5", "series": ["0", "1"]}
    for s, shape in (("0", (64, 64)), ("1", (32, 40))):
        write_image(random_pixels(shape, seed=int(s)), root.create_group(s), axes="yx",
                    scale_factors=(), name=f"series-{s}")
    return zip_stdlib(d / "b2r.zarr", d / "b2r.ozx")


def _edit_root_attrs(root: Path, edit) -> None:
    meta_path = root / "zarr.json"
    meta = json.loads(meta_path.read_text())
    edit(meta["attributes"]["ome"])
    meta_path.write_text(json.dumps(meta))


@pytest.fixture(scope="session")
def broken_ozx(tmp_path_factory, ome_zarr_py_dir) -> dict[str, Path]:
    """Archives whose metadata is wrong in one way each (copies of the ome-zarr-py image)."""
    base = tmp_path_factory.mktemp("broken")
    out = {}

    def variant(name, edit=None, after=None):
        root = base / f"{name}.zarr"
        shutil.copytree(ome_zarr_py_dir, root)
        if edit is not None:
            _edit_root_attrs(root, edit)
        if after is not None:
            after(root)
        out[name] = zip_stdlib(root, base / f"{name}.ozx")

    def missing_level0(ome):
        ome["multiscales"][0]["datasets"][0]["path"] = "nope"

    def missing_level2(ome):
        ome["multiscales"][0]["datasets"][2]["path"] = "nope"

    def not_decreasing(ome):
        ds = ome["multiscales"][0]["datasets"]
        ds[1], ds[2] = ds[2], ds[1]

    def no_datasets(ome):
        ome["multiscales"][0]["datasets"] = []

    def garbage_root(root):
        (root / "zarr.json").write_text("{ this is not json")

    variant("missing_level0", missing_level0)
    variant("missing_level2", missing_level2)
    variant("not_decreasing", not_decreasing)
    variant("no_datasets", no_datasets)
    variant("unreadable_root", after=garbage_root)
    return out


@pytest.fixture(scope="session")
def multiscale_transform_ozx(tmp_path_factory, ome_zarr_py_dir) -> Path:
    """The ome-zarr-py image with a level-0 translation (5, 6, 7) plus multiscale-level
    transformations applied after the datasets': scale 3 on z, then translation 100 on x."""
    d = tmp_path_factory.mktemp("mstransform")
    root = d / "t.zarr"
    shutil.copytree(ome_zarr_py_dir, root)

    def edit(ome):
        ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][1] = {
            "type": "translation", "translation": [0.0, 5.0, 6.0, 7.0]}
        ome["multiscales"][0]["coordinateTransformations"] = [
            {"type": "scale", "scale": [1.0, 3.0, 1.0, 1.0]},
            {"type": "translation", "translation": [0.0, 0.0, 0.0, 100.0]},
        ]

    _edit_root_attrs(root, edit)
    return zip_stdlib(root, d / "t.ozx")


class Hierarchy(NamedTuple):
    path: Path  #: the directory, ``image.zarr``
    arrays: dict[str, np.ndarray]  #: {array path: the pixels stored there}


@pytest.fixture(scope="session")
def hierarchy(tmp_path_factory) -> Hierarchy:
    """``archives.make_v3_hierarchy`` with sharded arrays (index at the end) as a directory, the
    input of pack and of the validator's archives; tests read it and never write into it."""
    path = tmp_path_factory.mktemp("hierarchy") / "image.zarr"
    return Hierarchy(path, make_v3_hierarchy(path, shards="end"))


@pytest.fixture(scope="session")
def million_ozx(tmp_path_factory) -> Path:
    """An archive of 1,000,000 entries (``archives.many_entries``: root, ``a/zarr.json`` and
    999,998 one-row chunks), jsonFirst, ZIP64 records for every entry as RFC-9 recommends;
    built once (a few seconds, 180 MB) for the CLI, remote and load tests."""
    path = tmp_path_factory.mktemp("million") / "million.ozx"
    return many_entry_archive(path, 1_000_000, zip64=True)


@pytest.fixture(scope="session")
def sample_ozx(tmp_path_factory) -> Path:
    from napari_ozx._sample_data import write_sample

    return write_sample(tmp_path_factory.mktemp("sample") / "cells.ozx")


@pytest.fixture
def notifications():
    """The napari notifications emitted during a test (what a user sees pop up)."""
    from napari.utils.notifications import notification_manager

    seen = []

    def record(event):
        seen.append(event.notification if hasattr(event, "notification") else event)

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def notes():
    """The napari notifications shown during a test as ``(severity, message)`` strings."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []

    def record(notification):
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)
