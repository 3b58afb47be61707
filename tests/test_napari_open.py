"""The reader in a real napari viewer (Qt under Xvfb): what a user sees after opening an archive."""

from __future__ import annotations

import numpy as np
import pytest

from archives import PLATE_COLS, PLATE_ROWS, PLATE_WELLS
from conftest import CHANNELS, LABEL_COLORS
from helpers import label_pixels, open_in_napari, random_pixels

pytestmark = pytest.mark.gui


def test_ome_zarr_py_archive(make_napari_viewer, ome_zarr_py_ozx):
    viewer = make_napari_viewer()
    open_in_napari(viewer, ome_zarr_py_ozx)
    assert [layer.name for layer in viewer.layers] == ["DAPI", "Actin", "cells"]
    dapi, actin, cells = viewer.layers
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Image", "Labels"]

    # channels: omero label, colour, window, active
    assert dapi.colormap.name == "blue"
    np.testing.assert_allclose(actin.colormap.colors[-1], [1.0, 128 / 255, 0.0, 1.0], atol=1e-6)
    assert list(dapi.contrast_limits) == [100, 900]
    assert list(actin.contrast_limits) == [50, 2000]
    assert dapi.visible and not actin.visible
    assert [c["active"] for c in CHANNELS] == [dapi.visible, actin.visible]

    # geometry: the channel axis is split off; scale and units from the metadata
    for layer in (dapi, actin, cells):
        np.testing.assert_allclose(layer.scale, [2.0, 0.5, 0.5])
        np.testing.assert_allclose(layer.translate, [0, 0, 0])
        assert tuple(layer.axis_labels) == ("z", "y", "x")
    assert [str(u) for u in dapi.units] == ["micrometer"] * 3

    # a multiscale pyramid of lazy arrays, chunked like the zarr inner chunks
    assert dapi.multiscale and len(dapi.data) == 3
    assert [lvl.shape for lvl in dapi.data] == [(8, 128, 128), (8, 64, 64), (8, 32, 32)]
    assert dapi.data[0].chunksize == (4, 32, 32)
    # labels within the paint budget: level 0 alone, in memory, so napari can paint it
    assert not cells.multiscale and isinstance(cells.data, np.ndarray)
    assert cells.data.shape == (8, 128, 128) and cells.data.flags.writeable

    # labels: image-label colours and properties
    np.testing.assert_allclose(cells.colormap.map(1), np.array(LABEL_COLORS[1]) / 255, atol=1e-6)
    np.testing.assert_allclose(cells.colormap.map(2), np.array(LABEL_COLORS[2]) / 255, atol=1e-6)
    features = cells.features.set_index("index")
    assert features.loc[1, "class"] == "nucleus" and features.loc[2, "area"] == 900

    # the pixels are the ones ome-zarr-py wrote
    np.testing.assert_array_equal(np.asarray(actin.data[0][3]),
                                  random_pixels((2, 8, 128, 128))[1, 3])
    np.testing.assert_array_equal(cells.data[2], label_pixels()[2])


def test_gui_open_path_picks_our_reader(make_napari_viewer, sample_ozx):
    """File > Open and drag-and-drop go through QtViewer._qt_open with no plugin."""
    viewer = make_napari_viewer()
    viewer.window._qt_viewer._qt_open([str(sample_ozx)], stack=False)
    assert [layer.name for layer in viewer.layers] == ["nuclei", "membrane", "masks"]
    assert {layer.source.reader_plugin for layer in viewer.layers} == {"napari-ozx"}


def test_ngff_zarr_archive(make_napari_viewer, ngff_zarr_ozx):
    viewer = make_napari_viewer()
    open_in_napari(viewer, ngff_zarr_ozx)
    assert len(viewer.layers) == 1
    (layer,) = viewer.layers
    assert type(layer).__name__ == "Image"
    assert layer.name == "ngff"
    np.testing.assert_allclose(layer.scale, [3.0, 0.25, 0.5])
    np.testing.assert_allclose(layer.translate, [1.0, 2.0, 4.0])
    assert layer.multiscale and [lvl.shape for lvl in layer.data] == [(4, 96, 128), (2, 48, 64)]
    # no omero window: the dtype range, never a scan of the data
    assert list(layer.contrast_limits) == [0, 65535]


def test_zipped_v04_dataset_reads_quietly(make_napari_viewer, v04_zip, notifications, caplog):
    """A zipped 0.4 directory without a comment (``zip -r``) is a normal thing to have: no
    warning pops up; the log says it once and ``validate`` reports it."""
    import logging

    from napari_ozx.tools.validate import validate

    viewer = make_napari_viewer()
    with caplog.at_level(logging.INFO, logger="napari_ozx"):
        open_in_napari(viewer, v04_zip)
    assert [layer.name for layer in viewer.layers] == ["DAPI", "Actin", "cells"]
    assert viewer.layers["DAPI"].data[0].shape == (8, 128, 128)
    # ours (napari's own "Inconsistent units across layers" is about the labels' units)
    ours = [str(n.message) for n in notifications if n.severity in ("warning", "error")
            and str(v04_zip) in str(n.message)]
    assert ours == []
    logged = [r.getMessage() for r in caplog.records if r.name == "napari_ozx"]
    assert any("0.4" in m and "RFC-9" in m and str(v04_zip) in m for m in logged), logged
    codes = {f.code for f in validate(v04_zip).findings}
    assert "no-comment" in codes and any("0.4" in f.message for f in validate(v04_zip).findings)


def test_multiscale_level_transformations(make_napari_viewer, multiscale_transform_ozx):
    viewer = make_napari_viewer()
    open_in_napari(viewer, multiscale_transform_ozx)
    assert len(viewer.layers[:2]) == 2  # the two channels
    for layer in viewer.layers[:2]:
        # dataset: scale (2, .5, .5), translation (5, 6, 7); then multiscale: scale z by 3,
        # translate x by 100
        np.testing.assert_allclose(layer.scale, [6.0, 0.5, 0.5])
        np.testing.assert_allclose(layer.translate, [15.0, 6.0, 107.0])


def test_plate_mosaic(make_napari_viewer, plate_ozx):
    path, fields = plate_ozx
    viewer = make_napari_viewer()
    open_in_napari(viewer, path)
    assert [layer.name for layer in viewer.layers] == ["P1 [0]", "P1 [1]"]
    layer = viewer.layers[0]
    h, w = 32, 48
    assert layer.data[0].shape == (len(PLATE_ROWS) * h, len(PLATE_COLS) * w)
    mosaic = np.asarray(layer.data[0])
    for r, row in enumerate(PLATE_ROWS):
        for c, col in enumerate(PLATE_COLS):
            tile = mosaic[r * h : (r + 1) * h, c * w : (c + 1) * w]
            well = f"{row}/{col}"
            want = fields[(well, 0)][0] if well in PLATE_WELLS else 0
            np.testing.assert_array_equal(tile, want)


def test_bioformats2raw_collection(make_napari_viewer, collection_ozx):
    viewer = make_napari_viewer()
    open_in_napari(viewer, collection_ozx)
    assert [layer.name for layer in viewer.layers] == ["series-0", "series-1"]
    assert [layer.data.shape for layer in viewer.layers] == [(64, 64), (32, 40)]


@pytest.mark.parametrize(
    ("variant", "entry", "words"),
    [
        ("missing_level0", "nope", "missing"),
        ("no_datasets", "zarr.json", "no datasets"),
        ("unreadable_root", "zarr.json", "cannot be read"),
    ],
)
def test_broken_metadata_is_a_notification(make_napari_viewer, broken_ozx, notifications,
                                           variant, entry, words):
    viewer = make_napari_viewer()
    path = broken_ozx[variant]
    viewer.open(str(path), plugin=None)  # no exception reaches the user
    assert len(viewer.layers) == 0
    errors = [str(n.message) for n in notifications if n.severity == "error"]
    assert len(errors) == 1, errors
    assert str(path) in errors[0] and repr(entry) in errors[0] and words in errors[0]


@pytest.mark.parametrize("variant", ["missing_level2", "not_decreasing"])
def test_bad_lower_levels_keep_the_image(make_napari_viewer, broken_ozx, notifications, variant):
    viewer = make_napari_viewer()
    path = broken_ozx[variant]
    viewer.open(str(path), plugin=None)
    assert [layer.name for layer in viewer.layers] == ["DAPI", "Actin", "cells"]
    assert len(viewer.layers["DAPI"].data) == 2
    warnings = [str(n.message) for n in notifications if n.severity == "warning"]
    assert any(str(path) in m and "zarr.json" in m and "2 level(s)" in m for m in warnings)


def test_screenshot_shows_channels_and_labels(make_napari_viewer, sample_ozx, tmp_path):
    viewer = make_napari_viewer(show=True)
    open_in_napari(viewer, sample_ozx)
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Image", "Labels"]
    assert viewer.layers[0].data[0].chunksize == (128, 128)  # the image: a lazy pyramid
    assert isinstance(viewer.layers["masks"].data, np.ndarray)  # paintable
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    from imageio.v3 import imwrite

    imwrite(tmp_path / "sample.png", shot)
    rgb = shot[..., :3].astype(int)
    assert rgb.std() > 10, "blank screenshot"
    greenish = (rgb[..., 1] > 120) & (rgb[..., 0] < 80) & (rgb[..., 2] < 80)
    assert greenish.sum() > 1000, "no green membranes"

    # with the labels hidden the blue nuclei show; the labels change where the nuclei are
    viewer.layers["masks"].visible = False
    bare = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    imwrite(tmp_path / "sample-no-labels.png", bare.astype(np.uint8))
    bluish = (bare[..., 2] > 120) & (bare[..., 0] < 80) & (bare[..., 1] < 80)
    assert bluish.sum() > 1000, "no blue nuclei"
    changed = np.abs(rgb - bare).sum(axis=-1) > 30
    blue_dominant = bare[..., 2] > bare[..., 1] + 20  # inside a nucleus, dim or bright
    assert changed.sum() > 1000 and (changed & blue_dominant).sum() > 0.8 * changed.sum()
