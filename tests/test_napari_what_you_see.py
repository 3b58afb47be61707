"""Issue 12: what you save is what you see, in a real napari viewer.

Contrast from the data, every dtype, RGB(A), colormaps and time axes: saved with napari-ozx,
reopened the way a user does (``viewer.open(path, plugin=None)``), and compared with what
napari-ome-zarr shows for the same archive unzipped into a directory.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import napari_ozx
from helpers import open_in_napari

pytestmark = pytest.mark.gui

SHOTS = Path(os.environ.get("OZX_SCREENSHOTS", "/tmp/napari-ozx-shots"))


def _unzipped(path: Path) -> Path:
    """The archive as an OME-Zarr directory (what napari-ome-zarr opens)."""
    out = path.with_suffix(".zarr")
    with zipfile.ZipFile(path) as z:
        z.extractall(out)
    return out


def _open_ome_zarr(viewer, path: Path):
    return viewer.open(str(_unzipped(path)), plugin="napari-ome-zarr")


def _save(viewer, layers, path: Path) -> Path:
    written = viewer.layers.save(str(path), selected=False, plugin="napari-ozx") \
        if layers is None else napari_ozx.write_ozx(path, layers)
    assert written
    return path


def _image(rng, shape=(256, 256), dtype="uint16", high=1000):
    return (rng.random(shape) * high).astype(dtype)


def _shot(viewer, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    viewer.screenshot(str(path), canvas_only=True, flash=False)
    return path


# ------------------------------------------------------------------ 1. contrast from the data


def test_a_write_without_limits_opens_with_limits_inside_the_data_range(make_napari_viewer,
                                                                          tmp_path):
    rng = np.random.default_rng(1)
    data = _image(rng, (512, 512))  # uint16 in 0..1000
    data[10, 10] = 65000  # one hot pixel must not set the contrast
    path = tmp_path / "plain.ozx"
    napari_ozx.write_ozx(path, data)

    viewer = make_napari_viewer()
    (layer,) = open_in_napari(viewer, path)
    lo, hi = layer.contrast_limits
    assert 0 <= lo < 20 and 980 < hi <= 1000, layer.contrast_limits

    theirs = _open_ome_zarr(viewer, path)
    assert list(theirs[0].contrast_limits) == [lo, hi]


def test_contrast_from_the_data_is_not_averaged_away_by_the_pyramid(tmp_path):
    """Noise over 0..4000 in a 16 Mi-value image: the small level the window is read from is
    a mean of 2x2 pixels (its range is narrower), so full-resolution pixels must count too."""
    import time

    import dask.array as da

    noise = da.random.default_rng(7).integers(0, 4000, (2, 4096, 2048), chunks=(1, 1024, 2048))
    path = tmp_path / "noise.ozx"
    start = time.perf_counter()
    napari_ozx.write_ozx(path, noise.astype("uint16"))
    print(f"16 Mi-value save with contrast from the data: {time.perf_counter() - start:.2f} s")
    group = napari_ozx.open_ozx(path)
    assert group["1"].shape == (2, 2048, 1024)  # the level of <= 4 Mi values is downsampled
    window = group.attrs["ome"]["omero"]["channels"][0]["window"]
    assert window["start"] < 40 and window["end"] > 3960, window
    assert (window["min"], window["max"]) == (0, 65535)


@pytest.mark.parametrize("channels", [1, 3])
def test_float_data_without_limits_saves_and_opens_with_its_range(make_napari_viewer, tmp_path,
                                                                  channels):
    rng = np.random.default_rng(2)
    data = rng.normal(5.0, 2.0, (channels, 128, 128)).astype("float32")
    path = tmp_path / "float.ozx"
    if channels == 1:
        napari_ozx.write_ozx(path, data[0])
    else:
        napari_ozx.write_ozx(path, data, axes="cyx")

    viewer = make_napari_viewer()
    layers = open_in_napari(viewer, path)
    assert len(layers) == channels
    for i, layer in enumerate(layers):
        lo, hi = layer.contrast_limits
        assert data[i].min() <= lo < 0.0 and 10.0 < hi <= data[i].max()
        np.testing.assert_array_equal(np.asarray(layer.data[0] if layer.multiscale
                                                 else layer.data), data[i])


def test_a_layers_own_contrast_limits_win(make_napari_viewer, tmp_path):
    rng = np.random.default_rng(3)
    viewer = make_napari_viewer()
    viewer.add_image(_image(rng), name="mine", contrast_limits=(100, 300))
    path = tmp_path / "own.ozx"
    viewer.layers.save(str(path), plugin="napari-ozx")
    viewer.layers.clear()
    (layer,) = open_in_napari(viewer, path)
    assert list(layer.contrast_limits) == [100, 300]


# ------------------------------------------------------------------ 2. every dtype


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int16", "uint16", "int32",
                                   "uint32", "int64", "uint64", "float16", "float32",
                                   "float64"])
def test_every_dtype_round_trips_through_napari(make_napari_viewer, tmp_path, dtype):
    rng = np.random.default_rng(4)
    data = (rng.random((300, 300)) * 100 - (50 if np.dtype(dtype).kind in "if" else 0))
    data = (data > 0) if dtype == "bool" else data.astype(dtype)
    viewer = make_napari_viewer()
    viewer.add_image(data, name=f"img-{dtype}")
    path = tmp_path / f"{dtype}.ozx"
    viewer.layers.save(str(path), plugin="napari-ozx")
    viewer.layers.clear()
    (layer,) = open_in_napari(viewer, path)
    level0 = layer.data[0] if layer.multiscale else layer.data
    assert level0.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(level0), data)
    # every level zarr itself reads back
    import zarr

    group = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
    np.testing.assert_array_equal(group["0"][:], data)


def test_a_dtype_we_do_not_save_is_refused_before_the_archive_exists(make_napari_viewer,
                                                                     tmp_path):
    path = tmp_path / "complex.ozx"
    with pytest.raises(napari_ozx.OzxError) as e:
        napari_ozx.write_ozx(path, np.zeros((16, 16), dtype=np.complex64), name="waves")
    message = str(e.value)
    assert "'waves'" in message and "complex64" in message and "napari cannot show" in message
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ 3. RGB / RGBA


@pytest.mark.parametrize("n", [3, 4])
def test_rgb_and_rgba_layers_round_trip_as_one_layer(make_napari_viewer, tmp_path, n):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:256, 0:256]
    rgb = np.stack([xx, yy, 255 - xx, np.full_like(xx, 255)][:n], axis=-1).astype("uint8")
    if n == 4:
        rgb[:128, :, 3] = 128  # half transparent top half
    rgb[::7, ::7, :3] = rng.integers(0, 255, (37, 37, 3))
    viewer = make_napari_viewer(show=True)
    viewer.add_image(rgb, name="photo", rgb=True)
    path = tmp_path / f"rgb{n}.ozx"
    viewer.layers.save(str(path), plugin="napari-ozx")
    viewer.layers.clear()

    (layer,) = open_in_napari(viewer, path)
    assert layer.rgb and layer.name == "photo"
    level0 = layer.data[0] if layer.multiscale else layer.data
    assert level0.shape == (256, 256, n)
    np.testing.assert_array_equal(np.asarray(level0), rgb)
    assert list(layer.contrast_limits) == [0, 255]
    shot = _shot(viewer, f"rgb{n}")
    pixels = viewer.screenshot(canvas_only=True, flash=False)
    # red grows left to right, blue right to left (as drawn, not washed out)
    h, w = pixels.shape[:2]
    left, right = pixels[h // 2 + 20, w // 2 - 60], pixels[h // 2 + 20, w // 2 + 60]
    assert right[0] > left[0] + 40 and left[2] > right[2] + 40, (left, right, shot)

    # other tools: channels on c with red, green, blue colours (napari-ome-zarr: 3-4 layers)
    theirs = _open_ome_zarr(viewer, path)
    assert len(theirs) == n
    assert [round(float(v), 3) for v in theirs[0].colormap.colors[-1][:3]] == [1.0, 0.0, 0.0]
    assert [round(float(v), 3) for v in theirs[1].colormap.colors[-1][:3]] == [0.0, 1.0, 0.0]
    assert [round(float(v), 3) for v in theirs[2].colormap.colors[-1][:3]] == [0.0, 0.0, 1.0]
    if n == 4:
        assert not theirs[3].visible  # alpha is not added in as a grey channel
    group = napari_ozx.open_ozx(path)
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["c", "y", "x"]
    assert group.attrs["napari-ozx"]["rgb"] is True

    # saved again from the reopened layer: still one RGB(A) layer with the same pixels
    for other in theirs:
        viewer.layers.remove(other)
    again = tmp_path / f"rgb{n}-again.ozx"
    viewer.layers.save(str(again), plugin="napari-ozx")
    viewer.layers.clear()
    (back,) = open_in_napari(viewer, again)
    assert back.rgb
    np.testing.assert_array_equal(np.asarray(back.data[0] if back.multiscale else back.data),
                                  rgb)


# ------------------------------------------------------------------ 4. colormaps


def test_viridis_round_trips(make_napari_viewer, tmp_path):
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:256, 0:256]
    data = (xx * 4 + rng.integers(0, 10, xx.shape)).astype("uint16")
    viewer = make_napari_viewer(show=True)
    viewer.add_image(data, name="ramp", colormap="viridis", contrast_limits=(0, 1024))
    path = tmp_path / "viridis.ozx"
    viewer.layers.save(str(path), plugin="napari-ozx")
    viewer.layers.clear()

    (layer,) = open_in_napari(viewer, path)
    assert layer.colormap.name == "viridis"
    from napari.utils.colormaps import AVAILABLE_COLORMAPS

    np.testing.assert_allclose(layer.colormap.colors, AVAILABLE_COLORMAPS["viridis"].colors,
                               atol=1e-5)
    shot = _shot(viewer, "viridis")
    pixels = viewer.screenshot(canvas_only=True, flash=False)
    h, w = pixels.shape[:2]
    mid = pixels[h // 2, w // 2][:3].astype(int)
    # viridis at 0.5 is teal (33, 145, 140): not a grey or a black-to-yellow ramp
    assert mid[1] > mid[0] + 50 and mid[2] > mid[0] + 50, (mid, shot)

    # other viewers: the omero colour is viridis' top colour, the ramp a single colour
    channel = napari_ozx.open_ozx(path).attrs["ome"]["omero"]["channels"][0]
    assert channel["color"] == "FDE725"
    theirs = _open_ome_zarr(viewer, path)
    np.testing.assert_allclose(theirs[0].colormap.colors[-1][:3],
                               [0xFD / 255, 0xE7 / 255, 0x25 / 255], atol=1e-2)


def test_a_custom_colormap_round_trips(make_napari_viewer, tmp_path):
    from napari.utils.colormaps import Colormap

    cmap = Colormap([[0, 0, 0, 1], [1, 0, 0, 1], [1, 1, 0, 1]], controls=[0, 0.3, 1],
                    name="fire-ish")
    viewer = make_napari_viewer()
    viewer.add_image(np.arange(64 * 64, dtype="uint16").reshape(64, 64), colormap=cmap)
    path = tmp_path / "custom.ozx"
    viewer.layers.save(str(path), plugin="napari-ozx")
    viewer.layers.clear()
    (layer,) = open_in_napari(viewer, path)
    np.testing.assert_allclose(layer.colormap.colors, cmap.colors, atol=1e-5)
    np.testing.assert_allclose(layer.colormap.controls, cmap.controls, atol=1e-5)


# ------------------------------------------------------------------ 5. axes


def test_a_default_labelled_time_lapse_keeps_every_frame_on_every_level(make_napari_viewer,
                                                                        tmp_path):
    frames = np.stack([np.full((256, 256), 100 * (t + 1), dtype="uint16") for t in range(6)])
    viewer = make_napari_viewer()
    viewer.add_image(frames, name="timelapse")
    assert viewer.layers[0].axis_labels == ("-3", "-2", "-1")  # napari's defaults
    path = tmp_path / "tl.ozx"
    # the layer itself (napari's labels, pixel units); 3 levels asked for, as a big one gets
    napari_ozx.write_ozx(path, viewer.layers[0], pyramid_levels=3)
    viewer.layers.clear()

    (layer,) = open_in_napari(viewer, path)
    assert layer.multiscale and len(layer.data) == 3
    assert [lvl.shape[0] for lvl in layer.data] == [6, 6, 6]
    for level in layer.data:  # frame 3 is frame 3 on every level, never blended
        assert np.unique(np.asarray(level[3])).tolist() == [400]
    axes = napari_ozx.open_ozx(path).attrs["ome"]["multiscales"][0]["axes"]
    assert axes[0] == {"name": "dim_0"} and [a["type"] for a in axes[1:]] == ["space"] * 2

    theirs = _open_ome_zarr(viewer, path)
    assert [lvl.shape[0] for lvl in theirs[0].data] == [6, 6, 6]


def test_a_spatial_unit_or_label_makes_the_leading_axis_z(tmp_path):
    data = np.zeros((16, 64, 64), dtype="uint8")
    napari_ozx.write_ozx(tmp_path / "zyx.ozx", data, units=["micrometer"] * 3,
                         pyramid_levels=2)
    group = napari_ozx.open_ozx(tmp_path / "zyx.ozx")
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["z", "y", "x"]
    assert group["1"].shape == (8, 32, 32)  # isotropic: z halved with y and x

    napari_ozx.write_ozx(tmp_path / "tyx.ozx", data, units=["second", "um", "um"],
                         pyramid_levels=2)
    group = napari_ozx.open_ozx(tmp_path / "tyx.ozx")
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    assert [(a["name"], a["type"]) for a in axes] == [("t", "time"), ("y", "space"),
                                                      ("x", "space")]
    assert group["1"].shape == (16, 32, 32)


# ------------------------------------------------------------------ 7. no root group


def _root_not_zarr(tmp_path: Path) -> Path:
    """The RFC-9 test kit's ``rootnotzarr`` case: the hierarchy sits in a folder of the ZIP."""
    inner = tmp_path / "inner.ozx"
    napari_ozx.write_ozx(inner, np.zeros((32, 32), dtype="uint8"))
    out = tmp_path / "rootnotzarr.ozx"
    with zipfile.ZipFile(inner) as z, zipfile.ZipFile(out, "w") as o:
        for info in z.infolist():
            o.writestr("image.zarr/" + info.filename, z.read(info))
    inner.unlink()
    return out


def _bare_array(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A zip whose root is an array (what TensorStore's zip kvstore holds for one array),
    written by zarr's own ZipStore."""
    import zarr

    data = np.arange(40 * 50, dtype="uint16").reshape(40, 50)
    path = tmp_path / "bare.ozx"
    store = zarr.storage.ZipStore(path, mode="w")
    arr = zarr.create_array(store, shape=data.shape, dtype=data.dtype, chunks=(16, 16),
                            dimension_names=["y", "x"])
    arr[:] = data
    store.close()
    return path, data


def test_an_archive_without_a_root_group_is_not_ome_zarr(make_napari_viewer, tmp_path,
                                                        notifications, capsys):
    path = _root_not_zarr(tmp_path)
    with pytest.raises(napari_ozx.NotOmeZarrError) as e:
        napari_ozx.open_ozx(path)
    assert isinstance(e.value, napari_ozx.OzxError)
    assert str(path) in str(e.value) and "'image.zarr'" in str(e.value)

    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=None)  # no exception reaches the user
    assert len(viewer.layers) == 0
    errors = [str(n.message) for n in notifications if n.severity == "error"]
    assert any(str(path) in m and "no Zarr group or array at the root" in m for m in errors)

    from napari_ozx.cli import main

    main(["info", str(path)])
    assert "no zarr.json at the archive root" in capsys.readouterr().out


def test_a_bare_array_archive_opens(make_napari_viewer, tmp_path, capsys):
    import zarr

    path, data = _bare_array(tmp_path)
    arr = napari_ozx.open_ozx(path)
    assert isinstance(arr, zarr.Array)
    np.testing.assert_array_equal(arr[:], data)
    np.testing.assert_array_equal(zarr.open_array(napari_ozx.OzxStore(path), mode="r")[:], data)

    viewer = make_napari_viewer()
    (layer,) = open_in_napari(viewer, path)
    assert layer.name == "bare" and tuple(layer.axis_labels) == ("y", "x")
    np.testing.assert_array_equal(np.asarray(layer.data), data)

    from napari_ozx.cli import main

    main(["info", str(path)])
    out = capsys.readouterr().out
    assert "a bare Zarr array" in out and "(40, 50) uint16" in out


# ------------------------------------------------------------------ 8. quiet where nothing is wrong


def test_a_comment_less_zip_opens_without_warnings(make_napari_viewer, tmp_path, notifications):
    from napari_ozx.tools.validate import validate

    src = tmp_path / "img.ozx"
    napari_ozx.write_ozx(src, _image(np.random.default_rng(8)))
    plain = tmp_path / "plain.zip"  # same entries, no archive comment (as zip -r makes it)
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(plain, "w") as o:
        for info in z.infolist():
            o.writestr(info.filename, z.read(info))
    viewer = make_napari_viewer()
    (layer,) = open_in_napari(viewer, plain)
    np.testing.assert_array_equal(np.asarray(layer.data), napari_ozx.open_ozx(src)["0"][:])
    assert [n for n in notifications if n.severity in ("warning", "error")] == []
    assert "no-comment" in {f.code for f in validate(plain).findings}


# ------------------------------------------------------------------ 6. plate labels

@pytest.fixture(scope="module")
def labelled_plate(tmp_path_factory) -> tuple[Path, dict]:
    """An HCS plate (2 x 3, three wells, two fields) whose fields have ``labels/cells``,
    written by ome-zarr-py and zipped in RFC-9 order."""
    from archives import write_plate, zip_stdlib

    d = tmp_path_factory.mktemp("lplate")
    _, masks = write_plate(d / "plate.zarr", name="P2", field_shape=(64, 96), chunk=32,
                           labels=True)
    return zip_stdlib(d / "plate.zarr", d / "plate.ozx"), masks


def test_plate_labels_are_shown_tiled_like_the_images(make_napari_viewer, labelled_plate):
    path, masks = labelled_plate
    viewer = make_napari_viewer(show=True)
    layers = open_in_napari(viewer, path)
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds.count("Labels") == 1 and kinds.count("Image") == 2, kinds
    image = next(layer for layer in layers if type(layer).__name__ == "Image")
    cells = next(layer for layer in layers if type(layer).__name__ == "Labels")
    first = napari_ozx.open_ozx(path)["A/1/0/labels/cells"]
    n_levels = len(first.attrs["ome"]["multiscales"][0]["datasets"])
    assert cells.visible and cells.multiscale and len(cells.data) == n_levels > 1
    assert cells.data[0].shape == (2 * 64, 3 * 96) == image.data[0].shape[-2:]
    np.testing.assert_allclose(cells.scale, image.scale[-2:])
    # well B/2 is row 1, column 1 of the mosaic; absent wells are 0
    np.testing.assert_array_equal(np.asarray(cells.data[0][64:128, 96:192]),
                                  masks[("B/2", 0)])
    np.testing.assert_array_equal(np.asarray(cells.data[0][64:128, 0:96]), 0)
    np.testing.assert_array_equal(np.asarray(cells.data[1][:32, :48]),
                                  masks[("A/1", 0)][::2, ::2])
    # the first field's image-label colours (value 1 of well A/1: red)
    np.testing.assert_allclose(cells.colormap.map(1)[:3], [1.0, 0.0, 0.0], atol=1e-6)
    viewer.reset_view()
    _shot(viewer, "plate-labels")

    # napari-ome-zarr on the same plate unzipped: the same layers, grid and placement
    theirs = _open_ome_zarr(viewer, path)
    their_labels = [layer for layer in theirs if type(layer).__name__ == "Labels"]
    assert len(their_labels) == 1
    assert [lvl.shape for lvl in their_labels[0].data] == [lvl.shape for lvl in cells.data]
    np.testing.assert_allclose(their_labels[0].scale, cells.scale)
    np.testing.assert_array_equal(np.asarray(their_labels[0].data[1]),
                                  np.asarray(cells.data[1]))


def test_a_large_plate_with_labels_opens_in_seconds(tmp_path):
    """384 wells, labels in every field: the layer data comes back without reading pixels."""
    import time

    import zarr

    from archives import zip_stdlib
    from napari_ozx._reader import read_ozx

    rows = [chr(ord("A") + i) for i in range(16)]
    cols = [str(i + 1) for i in range(24)]
    d = tmp_path / "big.zarr"
    root = zarr.open_group(str(d), mode="w", zarr_format=3)
    wells = [f"{r}/{c}" for r in rows for c in cols]
    image_ms = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": [2.0 ** k, 2.0 ** k]}]} for k in range(2)]}]}
    root.attrs["ome"] = {"version": "0.5", "plate": {
        "rows": [{"name": r} for r in rows], "columns": [{"name": c} for c in cols],
        "wells": [{"path": w, "rowIndex": rows.index(w.split("/")[0]),
                   "columnIndex": cols.index(w.split("/")[1])} for w in wells]}}
    for w in wells:
        wg = root.require_group(w)
        wg.attrs["ome"] = {"version": "0.5", "well": {"images": [{"path": "0"}]}}
        fg = wg.require_group("0")
        fg.attrs["ome"] = image_ms
        lg = fg.require_group("labels")
        lg.attrs["ome"] = {"version": "0.5", "labels": ["nuclei"]}
        cg = lg.require_group("nuclei")
        cg.attrs["ome"] = dict(image_ms, **{"image-label": {}})
        for g, dtype in ((fg, "uint16"), (cg, "uint32")):
            for k, n in enumerate((256, 128)):
                g.create_array(str(k), shape=(n, n), dtype=dtype, chunks=(n, n))
    path = zip_stdlib(d, tmp_path / "big.ozx")
    start = time.perf_counter()
    layers = read_ozx(str(path))
    seconds = time.perf_counter() - start
    print(f"384-well plate with labels: layer data in {seconds:.2f} s")
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    assert layers[1][0][0].shape == (16 * 256, 24 * 256)
    assert seconds < 20, seconds


# ------------------------------------------------------------------ 9. OME-Zarr 0.6 (RFC-5)


def _corners_in_world(layer) -> np.ndarray:
    """Where napari puts the corners of a layer's level 0 (what a user sees)."""
    shape = (layer.data[0] if layer.multiscale else layer.data).shape[-2:]
    corners = [(0, 0), (shape[0], 0), (0, shape[1]), (shape[0], shape[1])]
    return np.array([layer.data_to_world(c) for c in corners])


def test_ngff_zarr_0_6_archive_is_placed_as_napari_ome_zarr_places_it(make_napari_viewer,
                                                                      tmp_path):
    import ngff_zarr as nz

    data = np.arange(64 * 80, dtype="uint16").reshape(64, 80)
    image = nz.to_ngff_image(data, dims=["y", "x"], scale={"y": 0.5, "x": 0.25},
                             translation={"y": 10.0, "x": 20.0}, name="cells")
    path = tmp_path / "v06.ozx"
    nz.to_ngff_zarr(str(path), nz.to_multiscales(image, scale_factors=[2]), version="0.6")
    assert napari_ozx.open_ozx(path).attrs["ome"]["version"] == "0.6"

    viewer = make_napari_viewer()
    (ours,) = open_in_napari(viewer, path)
    np.testing.assert_allclose(ours.scale, [0.5, 0.25])
    np.testing.assert_allclose(ours.translate, [10.0, 20.0])
    np.testing.assert_array_equal(np.asarray(ours.data[0]), data)
    (theirs,) = _open_ome_zarr(viewer, path)
    np.testing.assert_allclose(_corners_in_world(ours), _corners_in_world(theirs), atol=1e-9)

    from napari_ozx.tools.info import describe

    assert [ms["axes"] for ms in describe(path)["multiscales"]] == [["y", "x"]]


def _v06_image(root, path: str, data: np.ndarray, *, scale, extra=None) -> None:
    """A hand-written OME-Zarr 0.6 image: one level, datasets -> 'physical' by a scale."""
    g = root.require_group(path)
    g.create_array("s0", data=data, chunks=data.shape)
    ms = {
        "coordinateSystems": [{"name": "physical", "axes": [
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]}],
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": list(scale), "input": {"path": "s0"},
             "output": {"name": "physical"}}]}],
        "name": path,
    }
    if extra:
        ms.update(extra)
    g.attrs["ome"] = {"version": "0.6", "multiscales": [ms]}


@pytest.fixture(scope="module")
def v06_scene(tmp_path_factory) -> Path:
    """A scene of three images in one 'world' system: by rotation, by affine (with shear), and
    by a translation nested in a sequence of sequences through an intermediate system."""
    import zarr

    from archives import zip_stdlib

    d = tmp_path_factory.mktemp("scene") / "scene.zarr"
    root = zarr.open_group(str(d), mode="w", zarr_format=3)
    rng = np.random.default_rng(9)
    for p in ("rot.zarr", "aff.zarr", "seq.zarr"):
        _v06_image(root, p, rng.integers(0, 1000, (40, 60), dtype="uint16"), scale=(0.5, 0.5))
    a = np.deg2rad(30)
    world = {"name": "world", "axes": [{"name": "y", "type": "space"},
                                       {"name": "x", "type": "space"}]}
    root.attrs["ome"] = {"version": "0.6", "scene": {
        "coordinateSystems": [world, dict(world, name="shifted")],
        "coordinateTransformations": [
            {"type": "rotation", "rotation": [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]],
             "input": {"path": "rot.zarr", "name": "physical"}, "output": {"name": "world"}},
            {"type": "affine", "affine": [[1.0, 0.3, 5.0], [0.0, 1.2, -7.0]],
             "input": {"path": "aff.zarr", "name": "physical"}, "output": {"name": "world"}},
            {"type": "sequence", "transformations": [
                {"type": "sequence", "transformations": [
                    {"type": "translation", "translation": [0.0, 40.0]}]},
                {"type": "scale", "scale": [2.0, 2.0]}],
             "input": {"path": "seq.zarr", "name": "physical"}, "output": {"name": "shifted"}},
            {"type": "identity", "input": {"name": "shifted"}, "output": {"name": "world"}},
        ]}}
    return zip_stdlib(d, d.with_suffix(".ozx"))


def test_a_0_6_scene_places_each_image_as_napari_ome_zarr_does(make_napari_viewer, v06_scene):
    viewer = make_napari_viewer()
    ours = {layer.name: layer for layer in open_in_napari(viewer, v06_scene)}
    assert sorted(ours) == ["aff.zarr", "rot.zarr", "seq.zarr"]
    # the rotated image: its corner (40, 0) px = (20, 0) um, turned by 30 degrees
    a = np.deg2rad(30)
    np.testing.assert_allclose(ours["rot.zarr"].data_to_world((40, 0)),
                               [20 * np.cos(a), 20 * np.sin(a)], atol=1e-9)
    # the sequence: (0.5 px scale, + (0, 40), then x2); through 'shifted' to 'world'
    np.testing.assert_allclose(ours["seq.zarr"].data_to_world((10, 10)), [10.0, 90.0])
    np.testing.assert_allclose(ours["seq.zarr"].affine.affine_matrix, np.eye(3))  # no affine
    # the affine (with shear): x' = 1.0 y + 0.3 x + 5, y' = 1.2 x - 7 on 0.5-um pixels
    np.testing.assert_allclose(ours["aff.zarr"].data_to_world((10, 20)),
                               [5 + 5 + 0.3 * 10, 1.2 * 10 - 7])

    # napari-ome-zarr on the same scene unzipped (it reads a scene from a directory): the
    # same place for the rotated and the affine image.  The nested sequence it mis-places
    # (0.10 flattens one level and drops 'identity' with "Unsupported transform type"): for
    # that image ours is the one the spec gives, checked above.
    theirs = _open_ome_zarr(viewer, v06_scene)
    assert len(theirs) == 3
    for path in ("rot.zarr", "aff.zarr"):
        pixels = np.asarray(ours[path].data)
        (same,) = [t for t in theirs if np.array_equal(np.asarray(t.data), pixels)]
        np.testing.assert_allclose(_corners_in_world(ours[path]), _corners_in_world(same),
                                   atol=1e-9)


def test_an_unknown_transformation_warns_and_the_image_still_opens(make_napari_viewer,
                                                                   tmp_path, notifications):
    import zarr

    from archives import zip_stdlib

    d = tmp_path / "odd.zarr"
    root = zarr.open_group(str(d), mode="w", zarr_format=3)
    data = np.arange(32 * 32, dtype="uint16").reshape(32, 32)
    root.create_array("s0", data=data, chunks=(32, 32))
    root.attrs["ome"] = {"version": "0.6", "multiscales": [{
        "coordinateSystems": [{"name": "physical", "axes": [
            {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]}],
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "sequence", "input": {"path": "s0"}, "output": {"name": "physical"},
             "transformations": [{"type": "scale", "scale": [2.0, 3.0]},
                                 {"type": "displacements", "path": "field"}]}]}]}]}
    path = zip_stdlib(d, tmp_path / "odd.ozx")
    viewer = make_napari_viewer()
    (layer,) = open_in_napari(viewer, path)
    np.testing.assert_allclose(layer.scale, [2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    warnings_ = [str(n.message) for n in notifications if n.severity == "warning"]
    assert any("displacements" in m and "not supported" in m and str(path) in m
               for m in warnings_), warnings_


def test_file_save_layers_of_a_big_time_lapse_keeps_its_frames(make_napari_viewer, tmp_path):
    """The same through File > Save Layers with the default pyramid (big enough to get one)."""
    frames = np.broadcast_to((np.arange(6, dtype="uint16") * 100 + 100)[:, None, None],
                             (6, 1024, 4096))  # wider than napari's 2048 tile
    viewer = make_napari_viewer()
    viewer.add_image(np.ascontiguousarray(frames), name="timelapse")
    path = tmp_path / "big-tl.ozx"
    viewer.layers.save(str(path), plugin="napari-ozx")
    viewer.layers.clear()
    (layer,) = open_in_napari(viewer, path)
    assert layer.multiscale and len(layer.data) > 1
    assert {lvl.shape[0] for lvl in layer.data} == {6}
    assert np.unique(np.asarray(layer.data[-1][3])).tolist() == [400]


def test_five_unlabelled_axes_save_as_ome_zarr_allows_and_only_the_plane_shrinks(
        make_napari_viewer, tmp_path):
    data = np.arange(2 * 3 * 4 * 64 * 64, dtype="uint32").reshape(2, 3, 4, 64, 64)
    viewer = make_napari_viewer()
    layer = viewer.add_image(data, name="five")
    path = tmp_path / "five.ozx"
    napari_ozx.write_ozx(path, layer, pyramid_levels=2)
    group = napari_ozx.open_ozx(path)
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    # one axis of unknown type is all OME-Zarr 0.5 allows: the others are typed, not shrunk
    assert [(a["name"], a.get("type")) for a in axes] == [
        ("t", "time"), ("dim_1", None), ("z", "space"), ("y", "space"), ("x", "space")]
    assert group["1"].shape == (2, 3, 4, 32, 32)
    viewer.layers.clear()
    (ours,) = open_in_napari(viewer, path)
    (theirs,) = _open_ome_zarr(viewer, path)  # ome-zarr-py accepts one unknown axis only
    assert [lvl.shape for lvl in theirs.data] == [lvl.shape for lvl in ours.data]


def test_a_0_6_image_with_alternative_systems_uses_the_first_as_napari_ome_zarr(
        make_napari_viewer, tmp_path):
    """Multiscale-level transformations in 0.6 are alternatives out of the datasets' system:
    the first applies (here a rotation with a translation), the second (a flip) does not."""
    import zarr

    from archives import zip_stdlib

    d = tmp_path / "alt.zarr"
    root = zarr.open_group(str(d), mode="w", zarr_format=3)
    _v06_image(root, "img", np.arange(30 * 50, dtype="uint16").reshape(30, 50),
               scale=(2.0, 2.0), extra={"coordinateTransformations": [
                   {"type": "sequence", "input": {"name": "physical"},
                    "output": {"name": "rotated"}, "transformations": [
                        {"type": "rotation", "rotation": [[0.0, -1.0], [1.0, 0.0]]},
                        {"type": "translation", "translation": [100.0, 0.0]}]},
                   {"type": "scale", "scale": [-1.0, 1.0], "input": {"name": "physical"},
                    "output": {"name": "flipped"}}]})
    path = zip_stdlib(d / "img", tmp_path / "alt.ozx")
    viewer = make_napari_viewer()
    (ours,) = open_in_napari(viewer, path)
    # pixel (30, 0) -> (60, 0) um -> rotated (0, 60) -> (100, 60)
    np.testing.assert_allclose(ours.data_to_world((30, 0)), [100.0, 60.0], atol=1e-9)
    (theirs,) = _open_ome_zarr(viewer, path)
    np.testing.assert_allclose(_corners_in_world(ours), _corners_in_world(theirs), atol=1e-9)
