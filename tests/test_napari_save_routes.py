"""Every way a user saves in napari, with the layers napari itself made.

Sources: archives written by napari-ozx, by ngff-zarr and by ome-zarr-py (packed RFC-9), opened
with ``viewer.open(path, plugin=None)`` (what drag-and-drop and File > Open pass, so ``.data``
is napari's ``MultiScaleData``), and plain numpy / dask layers from ``viewer.add_image``.
Edits as users make them: rename, contrast limits, colormap, hide one channel, rename labels.
Routes: ``viewer.layers.save`` (all layers, ``selected=True``), ``npe2.write``, the Export .ozx
widget, and the Qt actions File > Save Selected Layers... / Save All Layers... with the file
dialog answered as a user does (the ``.ozx`` entry of the dialog's type list, a file name).
Every route then reopens the archive in a fresh viewer and compares pixels and settings.

A Points layer rides along in every save: it is left out and the user is told so in a napari
notification.  A differently shaped image that is not selected/checked must not be saved.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import napari_ozx
from helpers import label_pixels, level0, random_pixels

pytestmark = pytest.mark.gui

ROUTES = ["layers.save", "layers.save selected", "npe2.write", "widget",
          "File > Save Selected Layers", "File > Save All Layers"]
SELECTING = {"layers.save selected", "widget", "File > Save Selected Layers"}
SOURCES = ["napari-ozx", "napari-ozx small", "ngff-zarr", "ome-zarr-py", "numpy", "dask"]
ARCHIVES = {"napari-ozx": "ours_ozx", "napari-ozx small": "ours_small_ozx",
            "ngff-zarr": "ngff_zarr_ozx", "ome-zarr-py": "ome_zarr_py_ozx"}
PYRAMIDS = {"napari-ozx", "ngff-zarr", "ome-zarr-py"}  # archives that store several levels


def _ours(path: Path, shape) -> Path:
    return Path(napari_ozx.write_ozx(
        path, random_pixels((2, *shape), seed=5), labels={"cells": label_pixels(shape)},
        axes="czyx", scale=(2.0, 0.5, 0.5), units="micrometer", channel_names=["DAPI", "GFP"],
        colormaps=["blue", "green"], contrast_limits=[(10, 3000), (20, 2500)]))


@pytest.fixture(scope="session")
def ours_ozx(tmp_path_factory) -> Path:
    """Two channels and a label image by ``napari_ozx.write_ozx``, wider than napari's screen
    tile, so the image is stored (and opens) as a pyramid."""
    return _ours(tmp_path_factory.mktemp("ours") / "ours.ozx", (3, 256, 2600))


@pytest.fixture(scope="session")
def ours_small_ozx(tmp_path_factory) -> Path:
    """The same, small: stored as one level, opens as plain layers."""
    return _ours(tmp_path_factory.mktemp("ours-small") / "small.ozx", (6, 200, 300))


def _settings(layer) -> dict:
    """What a user sees of a layer (and checks after reopening it)."""
    out = {"type": type(layer).__name__, "name": layer.name, "visible": layer.visible,
           "scale": tuple(float(s) for s in layer.scale),
           "translate": tuple(float(t) for t in layer.translate)}
    if out["type"] == "Image":
        out["contrast_limits"] = tuple(float(c) for c in layer.contrast_limits)
        # the colours a user sees at the bottom, middle and top of the contrast range
        out["colors"] = np.round(layer.colormap.map(np.array([0.0, 0.5, 1.0])), 2).tolist()
    return out


def _load_source(source, viewer, request) -> None:
    """Put the source's layers into ``viewer`` the way a user gets them, then edit them."""
    if source in ARCHIVES:
        layers = viewer.open(str(request.getfixturevalue(ARCHIVES[source])), plugin=None)
        images = [layer for layer in layers if type(layer).__name__ == "Image"]
        assert images
        for layer in images:  # what napari holds: its MultiScaleData for a stored pyramid
            assert layer.multiscale == (source in PYRAMIDS)
            if layer.multiscale:
                assert type(layer.data).__name__ == "MultiScaleData"
    elif source == "numpy":
        viewer.add_image(random_pixels((240, 320), seed=9), name="raw", scale=(0.25, 0.5))
        viewer.add_labels(label_pixels((1, 240, 320))[0], name="Labels", scale=(0.25, 0.5))
    else:
        data = da.from_array(random_pixels((5, 120, 160), seed=11), chunks=(1, 64, 64))
        viewer.add_image(data, name="stack", scale=(3.0, 0.5, 0.5), contrast_limits=(0, 4000))

    images = [layer for layer in viewer.layers if type(layer).__name__ == "Image"]
    labels = [layer for layer in viewer.layers if type(layer).__name__ == "Labels"]
    assert images
    first = images[0]
    first.name = "edited"
    first.contrast_limits = (123.0, 1234.0)
    first.colormap = "magenta"
    if len(images) > 1:
        images[1].visible = False
    for layer in labels:
        layer.name = f"{layer.name}-renamed"
        if not layer.multiscale:  # paint a new cell, as with the brush
            layer.brush_size = 5
            layer.paint(tuple(s // 2 for s in layer.data.shape), 9)
            assert (np.asarray(layer.data) == 9).any()
    if source in ARCHIVES:
        # a segmentation of the opened image, added as a new labels layer
        ref = first.data[0] if first.multiscale else first.data
        seg = np.zeros(ref.shape, "uint16")
        seg[(slice(None),) * (seg.ndim - 2) + (slice(3, 40), slice(5, 60))] = 4
        viewer.add_labels(seg, name="segmentation", scale=first.scale, translate=first.translate)


def widget_of(viewer):
    from napari_ozx._widget import ExportWidget

    found = [w for w in viewer.window.dock_widgets.values() if isinstance(w, ExportWidget)]
    assert len(found) == 1
    return found[0]


def _save(route, viewer, path, qtbot, monkeypatch) -> list:
    """Save through ``route``; returns the paths the route reports as written."""
    import npe2

    if route == "layers.save":
        return viewer.layers.save(str(path), plugin="napari-ozx")
    if route == "layers.save selected":
        return viewer.layers.save(str(path), selected=True, plugin="napari-ozx")
    if route == "npe2.write":
        return npe2.write(str(path), list(viewer.layers), plugin_name="napari-ozx")
    if route == "widget":
        from qtpy.QtCore import Qt

        widget = widget_of(viewer)

        for i in range(widget.layer_list.count()):
            item = widget.layer_list.item(i)
            if item.text() == "scratch":
                item.setCheckState(Qt.CheckState.Unchecked)
        assert "points 'spots'" in widget.left_out.text()
        widget.path.setText(str(path))
        assert widget.start() is not None
        qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
        assert widget.last_error is None, widget.last_error
        return [widget.last_result]

    # the Qt File menu actions, with napari's own save dialog answered
    from qtpy.QtWidgets import QFileDialog

    asked = {}

    def answer(*args, **kwargs):
        types = kwargs.get("filter", args[3] if len(args) > 3 else "")
        asked["types"] = types
        ozx = [entry for entry in types.split(";;") if "*.ozx" in entry]
        assert len(ozx) == 1, f".ozx is not offered once in the save dialog: {types!r}"
        return str(path), ozx[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", answer)
    action_id = {"File > Save Selected Layers": "napari.window.file.save_layers_dialog.selected",
                 "File > Save All Layers": "napari.window.file.save_layers_dialog"}[route]
    menu = viewer.window.file_menu
    menu.aboutToShow.emit()  # what opening the menu does: enables the actions that apply
    actions = [a for a in menu.actions() if a.objectName() == action_id]
    assert len(actions) == 1 and actions[0].isEnabled()
    actions[0].trigger()
    assert "types" in asked, "the save dialog was not shown"
    return [str(path)] if path.exists() else []


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("source", SOURCES)
def test_save_route_round_trip(source, route, make_napari_viewer, qtbot, tmp_path,
                               monkeypatch, request, notes):
    viewer = make_napari_viewer()
    if route == "widget":  # docked before the file is opened and edited: it must follow
        viewer.window.add_plugin_dock_widget("napari-ozx", "Export .ozx")
    _load_source(source, viewer, request)
    saved_layers = list(viewer.layers)
    expected = {layer.name: (_settings(layer), level0(layer)) for layer in saved_layers}
    if route in SELECTING:
        # an unrelated image that would not even fit as a channel: not chosen, not saved
        viewer.add_image(np.zeros((7, 9), "uint8"), name="scratch")
    viewer.add_points([[1.0, 2.0], [3.0, 4.0]], name="spots")
    if route in SELECTING and route != "widget":
        viewer.layers.selection = {*saved_layers, viewer.layers["spots"]}

    path = tmp_path / "saved.ozx"
    written = _save(route, viewer, path, qtbot, monkeypatch)
    assert written == [str(path)] and path.is_file()
    if route != "widget":  # the widget names the Points layer in its list instead
        left_out = [msg for level, msg in notes if level == "warning" and "'spots'" in msg]
        assert len(left_out) == 1 and "points" in left_out[0], notes

    again = make_napari_viewer()
    reopened = again.open(str(path), plugin=None)
    got = {layer.name: (_settings(layer), level0(layer)) for layer in reopened}
    assert sorted(got) == sorted(expected)
    for name, (settings, pixels_before) in expected.items():
        settings_after, pixels_after = got[name]
        assert sorted(settings_after) == sorted(settings), name
        for key, value in settings.items():
            if key == "colors":
                np.testing.assert_allclose(settings_after[key], value, atol=0.01,
                                           err_msg=f"{name}: colormap")
            elif isinstance(value, tuple):
                assert settings_after[key] == pytest.approx(value), f"{name}: {key}"
            else:
                assert settings_after[key] == value, f"{name}: {key}"
        np.testing.assert_array_equal(pixels_after, pixels_before, err_msg=name)


def test_the_save_dialog_offers_ozx_for_a_mixed_selection_and_not_for_points_alone(
        make_napari_viewer):
    """napari builds the dialog's type list from npe2's compatible writers."""
    from napari.plugins._npe2 import file_extensions_string_for_layers

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((8, 8), "uint8"))
    labels = viewer.add_labels(np.zeros((8, 8), "uint8"))
    points = viewer.add_points([[1, 1]])
    shapes = viewer.add_shapes([[[0, 0], [4, 4], [0, 4]]], shape_type="polygon")

    def offered(layers):
        types, _ = file_extensions_string_for_layers(layers)
        return types.count("*.ozx")

    assert offered([image]) == 1
    assert offered([labels]) == 1
    assert offered([image, labels, points, shapes]) == 1
    assert offered([labels, shapes]) == 1
    assert offered([points]) == 0 and offered([points, shapes]) == 0


def test_saving_only_points_as_ozx_writes_nothing_and_says_why(make_napari_viewer, tmp_path,
                                                              notes):
    """``npe2.write`` does not offer us for points alone; our writer called anyway (a script
    calling it directly) writes nothing and says why."""
    from napari_ozx._writer import write_ozx_layers

    viewer = make_napari_viewer()
    points = viewer.add_points([[1, 1]], name="spots")
    path = tmp_path / "p.ozx"
    assert write_ozx_layers(str(path), [points.as_layer_data_tuple()]) == []
    assert not path.exists()
    assert any(level == "warning" and "points 'spots'" in msg and "Nothing saved" in msg
               for level, msg in notes)
