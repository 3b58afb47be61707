"""The "Export .ozx" dock widget driven like a user would, with qtbot: pick layers and options,
export in a worker thread while the UI stays live, cancel, fail, and get notified."""

from __future__ import annotations

import os
import threading

import dask.array as da
import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_ozx import open_ozx
from napari_ozx._widget import ExportWidget, parse_shape

pytestmark = pytest.mark.gui


def _widget(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = ExportWidget(viewer)
    qtbot.addWidget(widget)
    return viewer, widget


def _check(widget, names):
    for i in range(widget.layer_list.count()):
        item = widget.layer_list.item(i)
        item.setCheckState(Qt.CheckState.Checked if item.text() in names
                           else Qt.CheckState.Unchecked)


def test_parse_shape():
    assert parse_shape("auto") is None and parse_shape(" ") is None
    assert parse_shape("1, 256,256") == (1, 256, 256)
    assert parse_shape("64x64") == (64, 64)
    with pytest.raises(ValueError):
        parse_shape("1, a")
    with pytest.raises(ValueError):
        parse_shape("0, 4")


def test_the_widget_is_a_napari_contribution(make_napari_viewer):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-ozx", "Export .ozx")
    assert isinstance(widget, ExportWidget)


def test_export_selected_layers_with_options(make_napari_viewer, qtbot, tmp_path, notes):
    viewer, widget = _widget(make_napari_viewer, qtbot)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1000, (300, 400), dtype="uint16")
    b = rng.integers(0, 1000, (300, 400), dtype="uint16")
    viewer.add_image(a, name="A", colormap="red")
    viewer.add_image(b, name="B", colormap="green")
    viewer.add_image(np.zeros((10, 10), "uint8"), name="unrelated")
    lab = np.zeros((300, 400), "uint8")
    lab[50:100, 60:200] = 4
    viewer.add_labels(lab, name="mask")
    viewer.add_points([[1, 1]], name="points")  # not offered

    names = [widget.layer_list.item(i).text() for i in range(widget.layer_list.count())]
    assert names == ["A", "B", "unrelated", "mask"]
    _check(widget, {"A", "B", "mask"})
    widget.chunks.setText("1, 64, 64")
    widget.shards.setText("1, 128, 128")
    widget.codec.setCurrentText("blosc-lz4")
    widget.level.setValue(5)
    widget.levels.setValue(2)
    widget.labels_method.setCurrentText("nearest")
    out = tmp_path / "export"  # the extension is added
    widget.path.setText(str(out))

    worker = widget.start()
    assert worker is not None
    assert not widget.export_button.isEnabled() and widget.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    path = tmp_path / "export.ozx"
    assert widget.last_result == str(path) and path.is_file()
    assert widget.progress.value() == widget.progress.maximum()
    assert widget.export_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert any("Saved" in msg and str(path) in msg for _, msg in notes)

    g = open_ozx(path)
    np.testing.assert_array_equal(g["0"][:], np.stack([a, b]))
    assert sorted(g.array_keys()) == ["0", "1"]  # two levels as asked
    cfg = g["0"].metadata.to_dict()["codecs"][0]["configuration"]
    assert tuple(cfg["chunk_shape"]) == (1, 64, 64)
    assert cfg["codecs"][1]["name"] == "blosc"
    assert cfg["codecs"][1]["configuration"]["cname"] == "lz4"
    assert cfg["codecs"][1]["configuration"]["clevel"] == 5
    np.testing.assert_array_equal(g["labels/mask/1"][:], lab[::2, ::2])  # nearest
    assert [c["label"] for c in g.attrs["ome"]["omero"]["channels"]] == ["A", "B"]


def test_cancel_keeps_the_destination_and_the_ui_responsive(make_napari_viewer, qtbot,
                                                             tmp_path, notes):
    viewer, widget = _widget(make_napari_viewer, qtbot)
    dest = tmp_path / "keep.ozx"
    dest.write_bytes(b"what was there before")
    gate = threading.Event()
    armed = threading.Event()

    def slow(block):
        # the export (not napari drawing the layer) waits here until Cancel was pressed
        if armed.is_set():
            gate.wait(30)
        return block

    big = da.zeros((2048, 2048), chunks=256, dtype="uint16").map_blocks(slow)
    viewer.add_image(big, name="slow", contrast_limits=(0, 1))
    widget.chunks.setText("128, 128")
    widget.shards.setText("256, 256")
    widget.path.setText(str(dest))

    armed.set()
    worker = widget.start()
    assert widget.start() is None  # one export at a time
    # the event loop keeps running: the GUI answers while the worker is busy
    qtbot.wait(50)
    viewer.layers.selection.active = viewer.layers["slow"]
    assert worker.is_running
    qtbot.mouseClick(widget.cancel_button, Qt.MouseButton.LeftButton)
    assert widget.status.text().startswith("Cancelling")
    gate.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.last_result is None
    assert type(widget.last_error).__name__ == "WriteCancelled"
    assert dest.read_bytes() == b"what was there before"
    assert sorted(os.listdir(tmp_path)) == ["keep.ozx"]
    assert any("cancelled" in msg.lower() for _, msg in notes)
    assert widget.export_button.isEnabled()


def test_failure_is_a_notification_and_keeps_the_destination(make_napari_viewer, qtbot,
                                                            tmp_path, notes):
    viewer, widget = _widget(make_napari_viewer, qtbot)
    viewer.add_image(np.zeros((64, 64), "uint16"), name="square")
    viewer.add_image(np.zeros((64, 32), "uint16"), name="narrow")
    dest = tmp_path / "keep.ozx"
    dest.write_bytes(b"old")
    widget.path.setText(str(dest))
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert "narrow" in str(widget.last_error)
    assert any(level == "error" and "narrow" in msg for level, msg in notes)
    assert dest.read_bytes() == b"old"


def test_bad_options_are_reported_without_starting(make_napari_viewer, qtbot, tmp_path, notes):
    viewer, widget = _widget(make_napari_viewer, qtbot)
    viewer.add_image(np.zeros((8, 8), "uint8"))
    widget.path.setText(str(tmp_path / "x.ozx"))
    widget.chunks.setText("a, b")
    assert widget.start() is None
    assert any("not a shape" in msg for _, msg in notes)
    widget.chunks.setText("auto")
    widget.path.setText("")
    assert widget.start() is None
    assert any("output path" in msg for _, msg in notes)
    assert not (tmp_path / "x.ozx").exists()


def _names(widget):
    return [widget.layer_list.item(i).text() for i in range(widget.layer_list.count())]


def _checked(widget):
    return [widget.layer_list.item(i).text() for i in range(widget.layer_list.count())
            if widget.layer_list.item(i).checkState() == Qt.CheckState.Checked]


def _export(widget, qtbot, path):
    widget.path.setText(str(path))
    assert widget.start() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.last_error is None, widget.last_error
    return widget.last_result


def test_the_list_follows_insert_remove_rename_and_reorder(make_napari_viewer, qtbot):
    viewer, widget = _widget(make_napari_viewer, qtbot)
    viewer.add_image(np.zeros((16, 16), "uint16"), name="A")
    viewer.add_image(np.ones((16, 16), "uint16"), name="B")
    viewer.add_labels(np.zeros((16, 16), "uint8"), name="mask")
    assert _names(widget) == ["A", "B", "mask"]
    _check(widget, {"A", "mask"})

    viewer.layers["mask"].name = "nuclei"  # renamed after the widget opened
    assert _names(widget) == ["A", "B", "nuclei"]
    assert _checked(widget) == ["A", "nuclei"]  # the check follows the layer, not the name
    viewer.layers["B"].name = "A"  # napari makes names unique: "A [1]"
    assert _names(widget) == ["A", viewer.layers[1].name, "nuclei"]
    assert _checked(widget) == ["A", "nuclei"]

    viewer.layers.move(2, 0)  # reorder
    assert _names(widget) == ["nuclei", "A", viewer.layers[2].name]
    assert _checked(widget) == ["nuclei", "A"]

    viewer.add_image(np.zeros((16, 16), "uint16"), name="new")  # insert: checked
    assert _names(widget)[-1] == "new" and "new" in _checked(widget)
    viewer.layers.remove("A")
    assert "A" not in _names(widget)
    assert "removed" in widget.status.text() and "'A'" in widget.status.text()
    assert [layer.name for layer in widget.selected_layers()] == ["nuclei", "new"]
    assert all(any(layer is v for v in viewer.layers) for layer in widget.selected_layers())


def test_a_renamed_labels_layer_is_saved_under_its_new_name(make_napari_viewer, qtbot,
                                                            tmp_path, notes):
    """The bug of issue 11: rename the labels after the widget opened, and the archive came
    out with no ``labels/`` while the widget said "Saved"."""
    viewer, widget = _widget(make_napari_viewer, qtbot)
    img = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    lab = np.zeros((64, 64), "uint8")
    lab[10:30, 5:50] = 3
    viewer.add_image(img, name="raw")
    viewer.add_labels(lab, name="Labels")
    viewer.layers["Labels"].name = "cells"
    viewer.layers["raw"].name = "dapi"
    path = _export(widget, qtbot, tmp_path / "renamed.ozx")

    g = open_ozx(path)
    assert g.attrs["ome"]["omero"]["channels"][0]["label"] == "dapi"
    assert list(g["labels"].attrs["ome"]["labels"]) == ["cells"]
    np.testing.assert_array_equal(g["labels/cells/0"][:], lab)
    np.testing.assert_array_equal(g["0"][:], img)
    saved = [msg for level, msg in notes if "Saved" in msg]
    assert len(saved) == 1 and "'dapi'" in saved[0] and "'cells'" in saved[0]


def test_unchecking_survives_renames_and_is_honoured(make_napari_viewer, qtbot, tmp_path):
    viewer, widget = _widget(make_napari_viewer, qtbot)
    viewer.add_image(np.full((32, 32), 7, "uint16"), name="keep")
    viewer.add_image(np.full((32, 32), 9, "uint16"), name="skip")
    _check(widget, {"keep"})
    viewer.layers["skip"].name = "still skipped"
    viewer.layers["keep"].name = "kept"
    assert _checked(widget) == ["kept"]
    path = _export(widget, qtbot, tmp_path / "one.ozx")
    g = open_ozx(path)
    assert g["0"].shape == (32, 32) and int(g["0"][0, 0]) == 7
    assert [c["label"] for c in g.attrs["ome"]["omero"]["channels"]] == ["kept"]


def test_a_checked_layer_that_left_the_viewer_is_never_dropped_silently(
        make_napari_viewer, qtbot, tmp_path, notes):
    viewer, widget = _widget(make_napari_viewer, qtbot)
    viewer.add_image(np.zeros((16, 16), "uint16"), name="img")
    viewer.add_labels(np.ones((16, 16), "uint8"), name="lab")
    lab = viewer.layers["lab"]
    # the layer leaves the viewer without the list hearing of it (a signal blocked, a race)
    with viewer.layers.events.removed.blocker():
        viewer.layers.remove(lab)
    assert "lab" in _checked(widget)
    dest = tmp_path / "x.ozx"
    widget.path.setText(str(dest))
    assert widget.start() is None
    assert any(level == "error" and "'lab'" in msg and "nothing was saved" in msg
               for level, msg in notes)
    assert not dest.exists()
    assert _names(widget) == ["img"]  # the list caught up


def test_layers_that_cannot_be_stored_are_named_in_the_widget(make_napari_viewer, qtbot):
    viewer, widget = _widget(make_napari_viewer, qtbot)
    viewer.add_image(np.zeros((16, 16), "uint16"), name="img")
    assert not widget.left_out.text()
    viewer.add_points([[1, 1]], name="spots")
    viewer.add_shapes([[[0, 0], [4, 4], [0, 4]]], shape_type="polygon", name="roi")
    text = widget.left_out.text()
    assert "points 'spots'" in text and "shapes 'roi'" in text and "OME-Zarr" in text
    assert _names(widget) == ["img"]
    viewer.layers["spots"].name = "dots"
    assert "points 'dots'" in widget.left_out.text()
