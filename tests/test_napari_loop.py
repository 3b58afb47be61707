"""The loop a microscopist runs: open an .ozx in napari, look, paint, save, reopen.

Everything goes through napari's own objects: ``viewer.open(path, plugin=None)`` (what
drag-and-drop, File > Open and ``napari x.ozx`` pass), the layers napari made from it (their
``.data`` is ``MultiScaleData``, dask or numpy as napari holds it), ``layer.paint`` / ``fill``,
and ``viewer.layers.save``.  Saving unchanged data copies its stored entries (``rawcopy``):
checked byte for byte against the source archive.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from helpers import level0, random_pixels
from napari_ozx import add_labels, open_ozx, write_ozx
from napari_ozx.cli import main as cli

pytestmark = pytest.mark.gui

SCALE = (0.5, 0.5)


def _image(shape=(2, 300, 400), seed=1):
    return random_pixels(shape, seed=seed, high=1000)


def _cells(shape=(300, 400)):
    lab = np.zeros(shape, "uint16")
    lab[20:80, 30:90] = 1
    lab[150:260, 200:330] = 2
    return lab


@pytest.fixture
def small_ozx(tmp_path):
    """Two channels and a label image small enough to paint, as write_ozx saves them."""
    path = tmp_path / "cells.ozx"
    write_ozx(path, _image(), labels={"cells": _cells()}, axes="cyx", scale=SCALE,
              channel_names=["DAPI", "Actin"], colormaps=["blue", "green"],
              contrast_limits=[(0, 900), (50, 800)])
    return path


@pytest.fixture
def big_ozx(tmp_path):
    """An image past napari's screen tile (2600 px wide): saved with a pyramid."""
    path = tmp_path / "big.ozx"
    write_ozx(path, _image((2, 256, 2600), seed=2), labels={"cells": _cells((256, 2600))},
              axes="cyx", channel_names=["DAPI", "Actin"], contrast_limits=[(0, 900)] * 2)
    return path


def _data_entries(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()
                if not i.filename.endswith("zarr.json")}


# ------------------------------------------------------------------ open: what napari holds


def test_small_archive_opens_as_plain_layers_and_labels_can_be_painted(make_napari_viewer,
                                                                        small_ozx):
    viewer = make_napari_viewer()
    viewer.open(str(small_ozx), plugin=None)
    assert [layer.name for layer in viewer.layers] == ["DAPI", "Actin", "cells"]
    dapi, actin, cells = viewer.layers
    assert not dapi.multiscale and not cells.multiscale  # 300 x 400: no pyramid
    assert isinstance(cells.data, np.ndarray) and cells.data.flags.writeable
    cells.paint((100, 100), 7, refresh=True)  # the brush, at (y, x) in data coordinates
    cells.fill((40, 40), 9)  # label 1's region becomes 9
    assert cells.data[100, 100] == 7
    assert (cells.data[20:80, 30:90] == 9).all()


def test_paint_fill_add_labels_save_and_reopen(make_napari_viewer, small_ozx, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(small_ozx), plugin=None)
    dapi, actin, cells = viewer.layers
    cells.paint((100, 100), 5, refresh=True)
    cells.paint((110, 300), 6, refresh=True)
    cells.fill((200, 250), 8)  # label 2 -> 8
    painted = cells.data.copy()
    assert {5, 6, 8} <= set(np.unique(painted).tolist())
    nuclei = np.zeros((300, 400), "uint8")
    nuclei[5:15, 5:15] = 3
    viewer.add_labels(nuclei, name="nuclei", scale=SCALE)
    dapi.contrast_limits = (10, 700)
    actin.visible = False
    actin.colormap = "magenta"
    dapi.name = "Hoechst"

    out = tmp_path / "edited.ozx"
    assert viewer.layers.save(str(out), plugin="napari-ozx") == [str(out)]

    again = make_napari_viewer()
    again.open(str(out), plugin=None)
    assert [layer.name for layer in again.layers] == ["Hoechst", "Actin", "cells", "nuclei"]
    hoechst, actin2, cells2, nuclei2 = again.layers
    np.testing.assert_array_equal(level0(cells2), painted)
    np.testing.assert_array_equal(level0(nuclei2), nuclei)
    np.testing.assert_array_equal(level0(hoechst), _image()[0])
    assert tuple(hoechst.contrast_limits) == (10, 700)
    assert actin2.visible is False and hoechst.visible is True
    assert actin2.colormap.name == "magenta" and hoechst.colormap.name == "blue"
    np.testing.assert_allclose(cells2.scale, SCALE)
    np.testing.assert_allclose(nuclei2.scale, SCALE)
    # every value painted has a colour of its own, all distinct (napari's label colours)
    colours = [tuple(np.round(cells2.colormap.map(np.array([v]))[0], 3)) for v in (5, 6, 8)]
    assert len(set(colours)) == 3 and all(c[3] > 0 for c in colours)
    assert cli(["validate", "--strict", "--no-progress", str(out)]) == 0


def test_values_not_listed_get_napari_colours_not_one_grey(make_napari_viewer,
                                                           ome_zarr_py_ozx):
    """ome-zarr-py's archive lists colours for labels 1 and 2 only; labels painted after
    opening get napari's own distinct colours, the listed ones keep theirs."""
    viewer = make_napari_viewer()
    viewer.open(str(ome_zarr_py_ozx), plugin=None)
    cells = viewer.layers["cells"]
    assert isinstance(cells.data, np.ndarray)  # 8 x 128 x 128: paintable
    listed = cells.colormap.map(np.array([1, 2]))
    np.testing.assert_allclose(listed[0], [1, 0, 0, 1], atol=1 / 255)
    new = cells.colormap.map(np.array([5, 6, 7]))
    assert len({tuple(np.round(c, 3)) for c in new}) == 3
    assert (new[:, 3] > 0).all()
    grey = np.array([0.5, 0.5, 0.5, 1.0])
    assert not any(np.allclose(c, grey) for c in new)


def test_large_labels_open_read_only_as_a_pyramid_and_say_why(make_napari_viewer, big_ozx,
                                                              monkeypatch, notifications):
    monkeypatch.setenv("NAPARI_OZX_PAINT_BUDGET_MB", "0.1")  # 0.1 MiB: the labels are larger
    viewer = make_napari_viewer()
    viewer.open(str(big_ozx), plugin=None)
    cells = viewer.layers["cells"]
    assert cells.multiscale
    told = [str(n.message) for n in notifications if "read-only" in str(n.message)]
    assert len(told) == 1
    assert "cells" in told[0] and "paint" in told[0] and "NAPARI_OZX_PAINT_BUDGET_MB" in told[0]


# ------------------------------------------------------------------ saving costs what changed


def test_unchanged_layers_are_copied_byte_for_byte_edited_ones_encoded(make_napari_viewer,
                                                                       big_ozx, tmp_path):
    before = _data_entries(big_ozx)
    viewer = make_napari_viewer()
    viewer.open(str(big_ozx), plugin=None)
    dapi, actin, cells = viewer.layers
    assert dapi.multiscale and type(dapi.data).__name__ == "MultiScaleData"
    assert not cells.multiscale  # 256 x 2600 uint16 labels: within the paint budget
    cells.paint((100, 1000), 4, refresh=True)
    out = tmp_path / "resaved.ozx"
    viewer.layers.save(str(out), plugin="napari-ozx")
    after = _data_entries(out)
    image = [n for n in before if not n.startswith("labels/")]
    assert len(image) >= 4  # 2 channels in one shard per level, several levels
    assert [n for n in image if after.get(n) != before[n]] == []  # copied as stored
    label_entries = [n for n in before if n.startswith("labels/cells/0/")]
    assert label_entries and all(after[n] != before[n] for n in label_entries)
    g = open_ozx(out)
    assert g["labels/cells/0"][100, 1000] == 4
    assert g["labels/cells/0"][20, 30] == 1
    # the saved labels' pyramid is rebuilt from the painted pixels
    assert 4 in np.unique(g["labels/cells/1"][:]).tolist()


def test_settings_only_resave_copies_every_entry(make_napari_viewer, big_ozx, tmp_path):
    before = _data_entries(big_ozx)
    viewer = make_napari_viewer()
    viewer.open(str(big_ozx), plugin=None)
    viewer.layers["DAPI"].contrast_limits = (5, 500)
    viewer.layers["Actin"].name = "F-actin"
    viewer.layers["cells"].visible = False
    import gc

    gc.collect()  # what napari held on to is all that keeps the stored pyramid known
    out = tmp_path / "settings.ozx"
    viewer.layers.save(str(out), plugin="napari-ozx")
    after = _data_entries(out)
    assert len(before) > 5
    assert after == before  # every chunk and shard, the labels too, copied as stored
    ome = open_ozx(out).attrs["ome"]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "F-actin"]
    assert ome["omero"]["channels"][0]["window"]["start"] == 5


def test_a_painted_copy_is_never_taken_for_the_unchanged_one(make_napari_viewer, small_ozx,
                                                             tmp_path):
    """Painting one pixel back to its own value leaves the digest; painting it changes it."""
    viewer = make_napari_viewer()
    viewer.open(str(small_ozx), plugin=None)
    cells = viewer.layers["cells"]
    cells.data[0, 0] = 3  # written into the array napari holds, as any tool may do
    out = tmp_path / "one-pixel.ozx"
    viewer.layers.save(str(out), plugin="napari-ozx")
    assert open_ozx(out)["labels/cells/0"][0, 0] == 3


# ------------------------------------------------------------------ save over the open file


def test_save_over_the_open_archive_and_keep_using_the_old_layers(make_napari_viewer, big_ozx):
    original = _image((2, 256, 2600), seed=2)
    viewer = make_napari_viewer()
    viewer.open(str(big_ozx), plugin=None)
    dapi = viewer.layers["DAPI"]
    seen = [np.asarray(level) for level in dapi.data]  # every zoom level, before the save
    assert len(seen) >= 2
    seg = np.zeros((256, 2600), "uint32")
    seg[:50, :50] = 11
    viewer.add_labels(seg, name="segmentation")
    assert viewer.layers.save(str(big_ozx), plugin="napari-ozx") == [str(big_ozx)]
    # the layers still shown read the bytes they were opened on, at every level
    assert hasattr(dapi.data[0], "dask")  # still a lazy (dask) array of the old archive
    for k, want in enumerate(seen):
        np.testing.assert_array_equal(np.asarray(dapi.data[k]), want, err_msg=f"level {k}")
    np.testing.assert_array_equal(seen[0], original[0])
    viewer.dims.ndisplay = 3  # 3D loads the smallest level whole
    viewer.reset_view()
    np.testing.assert_array_equal(np.asarray(dapi.data[-1][:, 100:200]), seen[-1][:, 100:200])
    viewer.dims.ndisplay = 2
    # and the file now holds the new labels beside the old ones
    g = open_ozx(big_ozx)
    assert g["labels"].attrs["ome"]["labels"] == ["cells", "segmentation"]
    assert g["labels/segmentation/0"][10, 10] == 11
    np.testing.assert_array_equal(g["0"][0], original[0])


def test_a_replaced_archive_is_not_read_through_a_new_descriptor(big_ozx, tmp_path):
    """A new process (fork, unpickling) reopens an archive by path: if it was saved over
    since, its bytes are not the ones indexed, and reading refuses instead of decoding them."""
    import pickle

    from napari_ozx import OzxError
    from napari_ozx.zip.source import LocalFile

    src = LocalFile(big_ozx)
    src.read(0, 4)
    state = pickle.dumps(src)
    write_ozx(big_ozx, _image((2, 64, 64), seed=9))  # saved over: another file at that path
    with pytest.raises(OzxError, match="replaced since it was opened"):
        pickle.loads(state).read(0, 4)


# ------------------------------------------------------------------ add_labels from a script


def test_add_labels_copies_the_image_and_keeps_the_other_labels(big_ozx):
    before = _data_entries(big_ozx)
    seg = np.zeros((256, 2600), "uint32")
    seg[100:120, 2000:2100] = 42
    assert add_labels(big_ozx, "nuclei", seg) == str(big_ozx)
    after = _data_entries(big_ozx)
    assert [n for n in before if after.get(n) != before[n]] == []  # image and cells copied
    g = open_ozx(big_ozx)
    assert g["labels"].attrs["ome"]["labels"] == ["cells", "nuclei"]
    assert g["labels/nuclei/0"][110, 2050] == 42
    assert g["labels/nuclei"].attrs["ome"]["image-label"]["colors"][-1]["label-value"] == 42
    with zipfile.ZipFile(big_ozx) as z:
        names = [i.filename for i in z.infolist()]
    assert len(names) == len(set(names))  # no duplicate entries
    assert cli(["validate", "--strict", "--no-progress", str(big_ozx)]) == 0

    # the same name again replaces it, in its place
    add_labels(big_ozx, "cells", seg * 2)
    g = open_ozx(big_ozx)
    assert g["labels"].attrs["ome"]["labels"] == ["cells", "nuclei"]
    assert set(np.unique(g["labels/cells/0"][:]).tolist()) == {0, 84}
    assert g["labels/nuclei/0"][110, 2050] == 42
    assert cli(["validate", "--strict", "--no-progress", str(big_ozx)]) == 0


def test_add_labels_to_an_ngff_zarr_archive_copies_its_image(ngff_zarr_ozx, tmp_path):
    import shutil

    path = tmp_path / "ngff.ozx"
    shutil.copy(ngff_zarr_ozx, path)
    before = _data_entries(path)
    g = open_ozx(path)
    ms = g.attrs["ome"]["multiscales"][0]
    level0 = g[ms["datasets"][0]["path"]]
    spatial = [n for n, a in zip(level0.shape, ms["axes"], strict=True) if a.get("type") == "space"]
    seg = np.zeros(spatial, "uint16")
    seg[..., :5, :5] = 2
    add_labels(path, "seg", seg)
    after = _data_entries(path)
    # ngff-zarr names its levels scale0/ngff, ...; saved as 0, 1, ..., each copied as stored
    copied = 0
    for k, ds in enumerate(ms["datasets"]):
        old = {n[len(ds["path"]) + 1:]: b for n, b in before.items()
               if n.startswith(ds["path"] + "/")}
        new = {n[len(str(k)) + 1:]: b for n, b in after.items() if n.startswith(f"{k}/")}
        assert old and new == old, f"level {ds['path']}"
        copied += len(old)
    assert copied == len(before)
    g = open_ozx(path)
    assert g["labels/seg/0"][(0,) * seg.ndim] == 2
    np.testing.assert_array_equal(g["0"][:], level0[:])


# ------------------------------------------------------------------ what the user sees


def test_screenshots_of_painted_labels_before_and_after_the_round_trip(make_napari_viewer,
                                                                      small_ozx, tmp_path):
    from imageio.v3 import imwrite

    viewer = make_napari_viewer(show=True)
    viewer.open(str(small_ozx), plugin=None)
    cells = viewer.layers["cells"]
    cells.brush_size = 40
    for x in range(120, 380, 20):
        cells.paint((120, x), 5, refresh=True)  # a stroke of label 5
    cells.fill((200, 250), 6)
    viewer.reset_view()
    before = viewer.screenshot(canvas_only=True, flash=False)
    imwrite(tmp_path / "painted-before.png", before)
    out = tmp_path / "painted.ozx"
    viewer.layers.save(str(out), plugin="napari-ozx")

    viewer.layers.clear()  # the same window (the same canvas size) shows the saved archive
    viewer.open(str(out), plugin=None)
    viewer.reset_view()
    after = viewer.screenshot(canvas_only=True, flash=False)
    imwrite(tmp_path / "painted-after.png", after)
    assert before.shape == after.shape
    assert before[..., :3].std() > 10
    # the same picture: the painted labels came back with the same colours
    diff = np.abs(before[..., :3].astype(int) - after[..., :3].astype(int))
    assert (diff.max(axis=-1) > 40).mean() < 0.01


# ------------------------------------------------------------------ layers from anywhere


def test_layers_opened_by_napari_ome_zarr_save_as_ozx(make_napari_viewer, ome_zarr_py_dir,
                                                      tmp_path):
    """Another reader plugin's layers (napari-ome-zarr on the unzipped directory: lists of
    dask arrays, channel_axis split by napari) save and reopen with the same pixels."""
    viewer = make_napari_viewer()
    viewer.open(str(ome_zarr_py_dir), plugin="napari-ome-zarr")
    images = [layer for layer in viewer.layers if type(layer).__name__ == "Image"]
    assert len(images) == 2 and images[0].multiscale
    out = tmp_path / "from-ome-zarr.ozx"
    assert viewer.layers.save(str(out), plugin="napari-ozx") == [str(out)]
    again = make_napari_viewer()
    again.open(str(out), plugin=None)
    assert len(again.layers) == len(viewer.layers)
    for a, b in zip(viewer.layers, again.layers, strict=True):
        np.testing.assert_array_equal(level0(b), level0(a), err_msg=a.name)


@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr", "list of levels"])
def test_every_kind_of_layer_data_saves(make_napari_viewer, tmp_path, kind):
    import dask.array as da
    import zarr

    img = _image((3000, 200), seed=4)
    half = img[::2, ::2].copy()
    data = {"numpy": img, "dask": da.from_array(img, chunks=(500, 200)),
            "zarr": zarr.array(img, chunks=(256, 200)), "list of levels": [img, half]}[kind]
    viewer = make_napari_viewer()
    viewer.add_image(data, name="img", contrast_limits=(0, 999))
    out = tmp_path / f"{kind}.ozx"
    assert viewer.layers.save(str(out), plugin="napari-ozx") == [str(out)]
    g = open_ozx(out)
    np.testing.assert_array_equal(g["0"][:], img)
    if kind == "list of levels":
        np.testing.assert_array_equal(g["1"][:], half)


# ------------------------------------------------------------------ archives by other tools


@pytest.mark.parametrize("which", ["ngff-zarr", "ome-zarr-py"])
def test_edit_and_save_archives_written_by_other_tools(make_napari_viewer, request, tmp_path,
                                                       which):
    """Open what another tool wrote (File > Open), edit as a user does, save, reopen."""
    source = request.getfixturevalue({"ngff-zarr": "ngff_zarr_ozx",
                                      "ome-zarr-py": "ome_zarr_py_ozx"}[which])
    viewer = make_napari_viewer()
    viewer.open(str(source), plugin=None)
    image = viewer.layers[0]
    image.contrast_limits = (10, 3000)
    image.colormap = "magenta"
    image.name = "renamed"
    shape = level0(image).shape
    seg = np.zeros(shape, "uint16")
    seg[..., 2:9, 3:12] = 5
    viewer.add_labels(seg, name="seg", scale=image.scale, translate=image.translate)
    labels = [layer for layer in viewer.layers if type(layer).__name__ == "Labels"]
    if which == "ome-zarr-py":  # its label image opened paintable: paint and fill it
        cells = viewer.layers["cells"]
        cells.paint((4, 100, 10), 9, refresh=True)
        cells.fill((4, 30, 30), 3)
    expected = {layer.name: level0(layer).copy() for layer in viewer.layers}
    out = tmp_path / f"{which}-edited.ozx"
    assert viewer.layers.save(str(out), plugin="napari-ozx") == [str(out)]

    again = make_napari_viewer()
    again.open(str(out), plugin=None)
    assert [layer.name for layer in again.layers] == list(expected)
    for layer in again.layers:
        np.testing.assert_array_equal(level0(layer), expected[layer.name], err_msg=layer.name)
    renamed = again.layers["renamed"]
    assert tuple(renamed.contrast_limits) == (10, 3000)
    assert renamed.colormap.name == "magenta"
    np.testing.assert_allclose(renamed.scale, image.scale)
    np.testing.assert_allclose(renamed.translate, image.translate)
    np.testing.assert_allclose(again.layers["seg"].scale, image.scale)
    assert len(labels) == (2 if which == "ome-zarr-py" else 1)


# ------------------------------------------------------------------ the copy, when it goes wrong


def _reader_layers(path):
    """The layer data napari gets from our reader, channels split as napari splits them."""
    from napari.layers.utils.stack_utils import split_channels

    from napari_ozx._reader import napari_get_reader

    out = []
    for data, kwargs, kind in napari_get_reader(str(path))(str(path)):
        if "channel_axis" in kwargs:
            kwargs = dict(kwargs)
            out.extend(split_channels(data, kwargs.pop("channel_axis"), **kwargs))
        else:
            out.append((data, kwargs, kind))
    return out


def test_entries_of_a_deflated_archive_are_copied_inflated(big_ozx, tmp_path):
    """Another tool's DEFLATE-compressed archive: its entries are read (inflated, CRC-checked)
    and stored, not copied raw; the pixels are the same."""
    deflated = tmp_path / "deflated.ozx"
    with zipfile.ZipFile(big_ozx) as src, zipfile.ZipFile(deflated, "w",
                                                          zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    out = tmp_path / "from-deflated.ozx"
    from napari_ozx.save.api import write_layers

    write_layers(out, _reader_layers(deflated))
    assert _data_entries(out) == _data_entries(big_ozx)
    with zipfile.ZipFile(out) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}


def test_a_copy_that_fails_leaves_the_destination_as_it_was(big_ozx, tmp_path, monkeypatch):
    from napari_ozx.zip.writer import Reservation

    dest = tmp_path / "dest.ozx"
    dest.write_bytes(b"the file that was there")
    calls = []

    def failing_copy(self, fd, offset, crc):
        calls.append(self.name)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return original(self, fd, offset, crc)

    original = Reservation.copy
    monkeypatch.setattr(Reservation, "copy", failing_copy)
    from napari_ozx.save.api import write_layers

    with pytest.raises(OSError, match="Input/output error"):
        write_layers(dest, _reader_layers(big_ozx))
    assert len(calls) == 3
    assert dest.read_bytes() == b"the file that was there"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.ozx", "dest.ozx"]


def test_a_cancelled_copy_leaves_the_destination_as_it_was(big_ozx, tmp_path, monkeypatch):
    import threading

    from napari_ozx.save.api import WriteCancelled, write_layers
    from napari_ozx.zip.writer import Reservation

    cancel = threading.Event()
    original = Reservation.copy

    def copy_then_cancel(self, fd, offset, crc):
        original(self, fd, offset, crc)
        cancel.set()  # the user presses Cancel while the image is being copied

    monkeypatch.setattr(Reservation, "copy", copy_then_cancel)
    dest = tmp_path / "dest.ozx"
    with pytest.raises(WriteCancelled):
        write_layers(dest, _reader_layers(big_ozx), cancel=cancel)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.ozx"]


def test_an_archive_opened_over_http_saves_with_its_entries_copied(make_napari_viewer, big_ozx,
                                                                   tmp_path):
    """Opened from a web server (File > Open of a URL), labels added, saved locally: the image
    entries are fetched whole (CRC-checked) and stored as they were, not decoded."""
    from servers import RangeServer

    with RangeServer() as srv:
        url = srv.put("/big.ozx", big_ozx.read_bytes())
        viewer = make_napari_viewer()
        viewer.open(url, plugin=None)
        assert [layer.name for layer in viewer.layers] == ["DAPI", "Actin", "cells"]
        seg = np.zeros((256, 2600), "uint8")
        seg[:9, :9] = 1
        viewer.add_labels(seg, name="seg")
        out = tmp_path / "from-http.ozx"
        assert viewer.layers.save(str(out), plugin="napari-ozx") == [str(out)]
    before, after = _data_entries(big_ozx), _data_entries(out)
    image = [n for n in before if not n.startswith("labels/")]
    assert image and [n for n in image if after.get(n) != before[n]] == []
    assert open_ozx(out)["labels/seg/0"][3, 3] == 1
