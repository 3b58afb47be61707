"""Saving napari layers as .ozx: what a user gets back in napari and in other tools.

Round trip through real viewers (save with File > Save Layers' code path, reopen with our
reader), the same archive read pixel-identical by zarr's ZipStore, ngff-zarr and ome-zarr-py
(after ``napari-ozx unpack``), ``napari-ozx validate --strict`` clean, label pyramids holding
only input values, failures and cancels that leave the destination as it was, layers that
cannot share an image named in the error, a dask.distributed cluster doing the work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import zipfile

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import zarr

from helpers import level0, open_in_napari, random_pixels
from napari_ozx import open_ozx, write_ozx
from napari_ozx.cli import main as cli
from napari_ozx.errors import OzxError
from napari_ozx.save.api import WriteCancelled, write_layers

IMAGE_SHAPE = (6, 300, 260)  # z, y, x: odd sizes, several shards per level
SCALE = (2.0, 0.5, 0.5)
TRANSLATE = (10.0, -3.0, 4.0)


def _labels(shape=IMAGE_SHAPE) -> np.ndarray:
    lab = np.zeros(shape, "uint16")
    lab[:, 20:120, 30:90] = 3
    lab[1:5, 150:290, 100:250] = 7
    lab[:, 200:230, 10:40] = 12
    return lab


FEATURES = pd.DataFrame({"index": [3, 7, 12], "class": ["nucleus", "cell", "debris"],
                         "area": [6000.0, 30800.0, 900.0]})


def _add_layers(viewer):
    kw = dict(scale=SCALE, translate=TRANSLATE, axis_labels=("z", "y", "x"),
              units=("micrometer",) * 3)
    viewer.add_image(random_pixels(IMAGE_SHAPE, seed=1), name="DAPI", colormap="blue",
                     contrast_limits=(100, 900), **kw)
    viewer.add_image(random_pixels(IMAGE_SHAPE, seed=2), name="Actin", colormap="magenta",
                     contrast_limits=(50, 3000), visible=False, **kw)
    viewer.add_labels(_labels(), name="cells", features=FEATURES, **kw)


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """Two channels and a labels layer written by ``write_ozx`` from napari layers."""
    from napari.layers import Image, Labels

    kw = dict(scale=SCALE, translate=TRANSLATE, axis_labels=("z", "y", "x"),
              units=("micrometer",) * 3)
    layers = [
        Image(random_pixels(IMAGE_SHAPE, seed=1), name="DAPI", colormap="blue",
              contrast_limits=(100, 900), **kw),
        Image(random_pixels(IMAGE_SHAPE, seed=2), name="Actin", colormap="magenta",
              contrast_limits=(50, 3000), visible=False, **kw),
        Labels(_labels(), name="cells", features=FEATURES, **kw),
    ]
    path = tmp_path_factory.mktemp("save") / "cells.ozx"
    seen = []
    out = write_ozx(path, layers, chunks=(1, 2, 64, 64), pyramid_levels="full",
                    progress=lambda done, total: seen.append((done, total)))
    assert out == str(path)
    return path, layers, seen


# ------------------------------------------------------------------ napari round trip


@pytest.mark.gui
def test_round_trip_through_napari(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _add_layers(viewer)
    originals = {layer.name: layer for layer in viewer.layers}
    path = tmp_path / "roundtrip.ozx"
    written = viewer.layers.save(str(path), plugin="napari-ozx")
    assert written == [str(path)]
    assert path.is_file()

    other = make_napari_viewer()
    open_in_napari(other, path)
    assert [layer.name for layer in other.layers] == ["DAPI", "Actin", "cells"]
    assert [type(layer).__name__ for layer in other.layers] == ["Image", "Image", "Labels"]
    for layer in other.layers:
        orig = originals[layer.name]
        np.testing.assert_array_equal(level0(layer), np.asarray(orig.data))
        np.testing.assert_allclose(layer.scale, SCALE)
        np.testing.assert_allclose(layer.translate, TRANSLATE)
        assert tuple(layer.axis_labels) == ("z", "y", "x")
        assert [str(u) for u in layer.units] == ["micrometer"] * 3
        assert layer.visible == orig.visible
        # small (24 x 96 x 96): no pyramid, so it opens as a plain layer that saves again
        assert not layer.multiscale
    dapi, actin, cells = other.layers
    assert dapi.colormap.name == "blue" and actin.colormap.name == "magenta"
    assert list(dapi.contrast_limits) == [100, 900]
    assert list(actin.contrast_limits) == [50, 3000]
    # label colours: the ones napari showed, for every value present
    values = np.array([3, 7, 12])
    np.testing.assert_allclose(cells.colormap.map(values),
                               originals["cells"].colormap.map(values), atol=1 / 255)
    feats = cells.features.set_index("index")
    assert feats.loc[7, "class"] == "cell" and feats.loc[12, "area"] == 900.0
    assert feats.loc[3, "class"] == "nucleus"


@pytest.mark.gui
def test_npe2_write_and_a_multiscale_layer_kept_as_it_is(make_napari_viewer, tmp_path):
    import npe2

    base = random_pixels((512, 384), seed=5)
    pyramid = [base, base[::2, ::2].copy(), base[::4, ::4].copy()]
    data = [(pyramid, {"name": "tiles", "multiscale": True, "colormap": "green",
                       "contrast_limits": (0, 4000)}, "image")]
    path = tmp_path / "ms.ozx"
    assert npe2.write(str(path), data, plugin_name="napari-ozx") == [str(path)]
    g = open_ozx(path)
    for k, lvl in enumerate(pyramid):
        np.testing.assert_array_equal(g[str(k)][:], lvl)
    assert "3" not in g  # no level added to a pyramid that came with the layer
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-ozx")
    assert layer.multiscale and [lvl.shape for lvl in layer.data] == [p.shape for p in pyramid]
    assert layer.colormap.name == "green" and layer.name == "tiles"


# ------------------------------------------------------------------ what is in the archive


def test_archive_layout_and_metadata(saved):
    path, layers, seen = saved
    g = open_ozx(path)
    ome = g.attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "z", "y", "x"]
    assert [a.get("type") for a in ms["axes"]] == ["channel", "space", "space", "space"]
    assert [a.get("unit") for a in ms["axes"]] == [None] + ["micrometer"] * 3
    # each level: scale times its factor, origin at the centre of its first pixel
    shapes = [g[d["path"]].shape for d in ms["datasets"]]
    assert shapes[0] == (2, *IMAGE_SHAPE)
    assert len(shapes) >= 3 and shapes[-1][2] <= 64 and shapes[-1][3] <= 64
    fz, z_spacing, xy_spacing = 1, SCALE[0], SCALE[1]
    for k, (d, shape) in enumerate(zip(ms["datasets"], shapes, strict=True)):
        f = 2 ** k  # y and x halve at every level
        if k:  # z halves only once its spacing is no larger than that of y/x
            if z_spacing <= xy_spacing:
                fz, z_spacing = fz * 2, z_spacing * 2
            xy_spacing *= 2
        assert shape[1] == -(-IMAGE_SHAPE[0] // fz)
        assert shape[2:] == tuple(-(-n // f) for n in IMAGE_SHAPE[1:])
        tr = {t["type"]: t for t in d["coordinateTransformations"]}
        assert tr["scale"]["scale"] == [1.0, SCALE[0] * fz, SCALE[1] * f, SCALE[2] * f]
        t = tr.get("translation", {"translation": [0.0, 0.0, 0.0, 0.0]})["translation"]
        assert t == [0.0, TRANSLATE[0] + (fz - 1) * SCALE[0] / 2,
                     TRANSLATE[1] + (f - 1) * SCALE[1] / 2, TRANSLATE[2] + (f - 1) * SCALE[2] / 2]
    # z (spacing 4x y/x) is kept until y/x spacing reaches it
    assert [s[1] for s in shapes[:3]] == [6, 6, 6]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["DAPI", "Actin"]
    assert [c["color"] for c in ome["omero"]["channels"]] == ["0000FF", "FF00FF"]
    assert [c["active"] for c in ome["omero"]["channels"]] == [True, False]
    # sharded Zarr v3, zstd inside, crc32c on the shard index, chunks as asked, 1 along c
    meta = g["0"].metadata.to_dict()
    (codec,) = meta["codecs"]
    assert codec["name"] == "sharding_indexed"
    cfg = codec["configuration"]
    assert tuple(cfg["chunk_shape"]) == (1, 2, 64, 64)
    assert [c["name"] for c in cfg["codecs"]] == ["bytes", "zstd"]
    assert [c["name"] for c in cfg["index_codecs"]] == ["bytes", "crc32c"]
    # progress: every shard counted, ending at the total
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == list(range(1, len(seen) + 1))
    # labels: under labels/<name>, colours for the values present only, properties, source
    assert g["labels"].attrs["ome"]["labels"] == ["cells"]
    il = g["labels/cells"].attrs["ome"]["image-label"]
    assert [c["label-value"] for c in il["colors"]] == [0, 3, 7, 12]
    assert il["source"] == {"image": "../../"}
    assert [p["label-value"] for p in il["properties"]] == [3, 7, 12]
    assert il["properties"][1]["class"] == "cell"


def test_label_pyramid_holds_only_input_values(saved):
    path, layers, _ = saved
    g = open_ozx(path)
    lab = g["labels/cells"]
    levels = [d["path"] for d in lab.attrs["ome"]["multiscales"][0]["datasets"]]
    assert len(levels) >= 3
    for p in levels:
        assert set(np.unique(lab[p][:]).tolist()) <= {0, 3, 7, 12}
    # the label pyramid lies on the image's grid
    assert [lab[p].shape for p in levels] == [g[p].shape[1:] for p in levels]


def test_zarr_zipstore_reads_the_same_pixels(saved):
    path, layers, _ = saved
    ours = open_ozx(path)
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        g = zarr.open_group(store, mode="r")
        np.testing.assert_array_equal(g["0"][0], np.asarray(layers[0].data))
        np.testing.assert_array_equal(g["0"][1], np.asarray(layers[1].data))
        np.testing.assert_array_equal(g["labels/cells/0"][:], np.asarray(layers[2].data))
        for p in ("1", "2", "labels/cells/1"):
            np.testing.assert_array_equal(g[p][:], ours[p][:])
    finally:
        store.close()


def test_ngff_zarr_reads_the_same_pixels(saved):
    import ngff_zarr as nz

    path, layers, _ = saved
    ms = nz.from_ngff_zarr(str(path))
    assert list(ms.images[0].dims) == ["c", "z", "y", "x"]
    level0 = np.asarray(ms.images[0].data)
    np.testing.assert_array_equal(level0[0], np.asarray(layers[0].data))
    np.testing.assert_array_equal(level0[1], np.asarray(layers[1].data))
    ours = open_ozx(path)
    np.testing.assert_array_equal(np.asarray(ms.images[1].data), ours["1"][:])
    assert ms.images[0].scale == {"c": 1.0, "z": 2.0, "y": 0.5, "x": 0.5}


def test_ome_zarr_py_reads_the_unpacked_archive(saved, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path, layers, _ = saved
    out = tmp_path / "unpacked.zarr"
    assert cli(["unpack", "--no-progress", str(path), str(out)]) == 0
    nodes = list(Reader(parse_url(str(out)))())
    image = nodes[0]
    np.testing.assert_array_equal(np.asarray(image.data[0])[0], np.asarray(layers[0].data))
    np.testing.assert_array_equal(np.asarray(image.data[0])[1], np.asarray(layers[1].data))
    labels = [n for n in nodes if str(n.zarr).split(" ")[0].endswith("labels/cells")]
    assert labels, [str(n.zarr) for n in nodes]
    np.testing.assert_array_equal(np.asarray(labels[0].data[0]), np.asarray(layers[2].data))


def test_validate_strict_finds_nothing(saved, capsys):
    path, _, _ = saved
    assert cli(["validate", "--strict", "--crc", "--no-progress", str(path)]) == 0
    out = capsys.readouterr().out
    assert "0 errors, 0 warnings" in out


def test_rfc9_order_and_stored_entries(saved):
    path, _, _ = saved
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    names = [i.filename for i in infos]
    assert names[0] == "zarr.json"
    n_meta = sum(n.endswith("zarr.json") for n in names)
    assert n_meta and all(n.endswith("zarr.json") for n in names[:n_meta])
    assert len(set(names)) == len(names)
    assert infos and all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert json.loads(zipfile.ZipFile(path).comment)["ome"]["version"] == "0.5"


# ------------------------------------------------------------------ options


def test_storage_options_are_honoured(tmp_path):
    img = random_pixels((200, 300), seed=9)
    path = tmp_path / "opts.ozx"
    write_ozx(path, img, chunks=(32, 48), shards=(64, 96), codec="gzip", level=5,
              index_crc32c=False, pyramid_levels=2, image_method="nearest")
    g = open_ozx(path)
    cfg = g["0"].metadata.to_dict()["codecs"][0]["configuration"]
    assert tuple(cfg["chunk_shape"]) == (32, 48)
    assert tuple(g["0"].metadata.to_dict()["chunk_grid"]["configuration"]["chunk_shape"]) == \
        (64, 96)
    assert [c["name"] for c in cfg["codecs"]] == ["bytes", "gzip"]
    assert [c["name"] for c in cfg["index_codecs"]] == ["bytes"]
    assert sorted(k for k in g.array_keys()) == ["0", "1"]
    np.testing.assert_array_equal(g["0"][:], img)
    np.testing.assert_array_equal(g["1"][:], img[::2, ::2])


# ------------------------------------------------------------------ errors, failures, cancel


def test_layers_that_differ_are_named_in_the_error(tmp_path):
    from napari.layers import Image

    a = Image(np.zeros((64, 64), "uint16"), name="left")
    b = Image(np.zeros((64, 64), "uint16"), name="right", scale=(2, 2))
    c = Image(np.zeros((64, 32), "uint16"), name="narrow")
    with pytest.raises(OzxError, match=r"'right'.*scale"):
        write_ozx(tmp_path / "x.ozx", [a, b])
    with pytest.raises(OzxError, match=r"'narrow'.*shape \(64, 32\)"):
        write_ozx(tmp_path / "x.ozx", [a, c])
    assert not (tmp_path / "x.ozx").exists()
    assert os.listdir(tmp_path) == []


def _exploding(shape, chunks, fail_at):
    """A lazy image whose block ``fail_at`` raises when computed."""
    def block(block_id=None):
        if block_id == fail_at:
            raise RuntimeError("disk on fire")
        block_shape = [c[i] for c, i in zip(chunks_t, block_id, strict=True)]
        return np.full(block_shape, sum(block_id), "uint16")

    chunks_t = da.core.normalize_chunks(chunks, shape)
    return da.map_blocks(block, chunks=chunks_t, dtype="uint16")


def test_failing_write_leaves_existing_file_byte_identical(tmp_path):
    dest = tmp_path / "keep.ozx"
    write_ozx(dest, np.ones((64, 64), "uint16"))
    before = dest.read_bytes()
    bad = _exploding((1024, 1024), (256, 256), fail_at=(3, 2))
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_ozx(dest, bad, chunks=(128, 128), shards=(256, 256))
    assert dest.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.ozx"]  # no temporary file left


def test_cancel_leaves_existing_file_and_stops_early(tmp_path):
    dest = tmp_path / "keep.ozx"
    write_ozx(dest, np.ones((64, 64), "uint16"))
    before = dest.read_bytes()
    cancel = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done == 2:
            cancel.set()

    img = da.from_array(random_pixels((2048, 2048), seed=3), chunks=256)
    with pytest.raises(WriteCancelled, match="keep.ozx"):
        write_layers(dest, [(img, {"name": "big"}, "image")], chunks=(128, 128),
                     shards=(256, 256), progress=progress, cancel=cancel)
    assert dest.read_bytes() == before
    assert max(calls) < 64 + 16  # stopped long before the 64 + 16 + ... shards
    assert sorted(os.listdir(tmp_path)) == ["keep.ozx"]


def test_labels_without_an_image_are_refused_with_a_reason(tmp_path):
    with pytest.raises(OzxError, match="inside an image"):
        write_ozx(tmp_path / "x.ozx", labels={"cells": np.ones((64, 64), "uint8")})


def test_float_labels_are_refused(tmp_path):
    with pytest.raises(OzxError, match="'bad'.*float"):
        write_ozx(tmp_path / "x.ozx", np.zeros((8, 8), "uint8"),
                  labels={"bad": np.zeros((8, 8), "float32")})


# ------------------------------------------------------------------ schedulers


@pytest.mark.slow
def test_distributed_local_cluster_writes_the_same_archive(tmp_path):
    from distributed import Client, LocalCluster

    img = random_pixels((16, 700, 600), seed=11)
    lab = _labels((16, 700, 600))
    ref = tmp_path / "threads.ozx"
    write_ozx(ref, da.from_array(img, chunks=(8, 256, 256)), labels={"cells": lab},
              axes="zyx", chunks=(8, 128, 128), shards=(16, 256, 256), pyramid_levels="full")
    out = tmp_path / "cluster.ozx"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        tasks_before = sum(len(v) for v in client.run(lambda dask_worker: list(
            dask_worker.data.keys())).values())
        write_ozx(out, da.from_array(img, chunks=(8, 256, 256)), labels={"cells": lab},
                  axes="zyx", chunks=(8, 128, 128), shards=(16, 256, 256),
                  pyramid_levels="full")
        processed = client.run(lambda dask_worker: len(dask_worker.state.log))
        assert len(processed) == 2 and all(n > 0 for n in processed.values())  # both worked
        assert tasks_before == 0
    a, b = open_ozx(ref), open_ozx(out)
    for p in ("0", "1", "2", "labels/cells/0", "labels/cells/1"):
        np.testing.assert_array_equal(a[p][:], b[p][:])
    np.testing.assert_array_equal(b["0"][:], img)
    assert cli(["validate", "--strict", "--no-progress", str(out)]) == 0


def test_pyramid_from_source_equals_pyramid_from_written_levels(tmp_path):
    img = random_pixels((8, 200, 300), seed=6)
    lab = _labels((8, 200, 300))
    a, b = tmp_path / "written.ozx", tmp_path / "source.ozx"
    write_ozx(a, img, labels={"l": lab}, axes="zyx", chunks=(8, 32, 32), pyramid_levels="full")
    write_ozx(b, img, labels={"l": lab}, axes="zyx", chunks=(8, 32, 32), pyramid_levels="full",
              pyramid_from="source")
    ga, gb = open_ozx(a), open_ozx(b)
    assert sorted(ga.array_keys()) == sorted(gb.array_keys()) == ["0", "1", "2", "3", "4"]
    for p in ("1", "2", "4", "labels/l/1", "labels/l/4"):
        np.testing.assert_array_equal(ga[p][:], gb[p][:])


# ------------------------------------------------------------------ memory


BIG = """
import sys, time
import dask.array as da, numpy as np
from napari_ozx import write_ozx

shape = (1024, 1024, 1024)  # uint16: 2 GiB

def block(block_id=None, block_info=None):
    loc = block_info[None]["array-location"]
    z0, y0, x0 = (a for a, _ in loc)
    z, y, x = (b - a for a, b in loc)
    zz = np.arange(z0, z0 + z, dtype="uint16")[:, None, None]
    yy = np.arange(y0, y0 + y, dtype="uint16")[None, :, None]
    xx = np.arange(x0, x0 + x, dtype="uint16")[None, None, :]
    return (zz * 7 + yy * 3 + xx) & 0x0FFF

img = da.map_blocks(block, chunks=((128,) * 8, (256,) * 4, (256,) * 4), dtype="uint16")
t = time.perf_counter()
write_ozx(sys.argv[1], img, axes="zyx")
# VmHWM: the peak of this process alone (ru_maxrss would carry over the forking parent's)
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")]
print(time.perf_counter() - t, hwm[0] * 1024)
"""


@pytest.mark.slow
def test_2gb_lazy_image_saves_in_bounded_memory(tmp_path):
    script = tmp_path / "big.py"
    script.write_text(textwrap.dedent(BIG))
    out = tmp_path / "big.ozx"
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seconds, peak = proc.stdout.split()[-2:]
    peak = int(peak)
    print(f"2 GiB lazy image: {float(seconds):.1f} s, peak RSS {peak / 2**20:.0f} MiB")
    assert peak < 600 * 2**20
    g = open_ozx(out)
    assert g["0"].shape == (1024, 1024, 1024)
    z, y, x = 700, 333, 901
    assert g["0"][z, y, x] == (z * 7 + y * 3 + x) & 0x0FFF
    assert g["0"].nbytes == 2 << 30 and os.path.getsize(out) < g["0"].nbytes
    assert len(g.attrs["ome"]["multiscales"][0]["datasets"]) >= 4


@pytest.mark.gui
def test_save_layers_shows_progress(make_napari_viewer, tmp_path, monkeypatch):
    """File > Save Layers (``viewer.layers.save``) drives a napari progress bar to the total."""
    import napari.utils

    bars = []

    class Recording(napari.utils.progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen = []
            bars.append(self)

        def update(self, n=1):
            super().update(n)
            self.seen.append((self.n, self.total))

    monkeypatch.setattr(napari.utils, "progress", Recording)
    viewer = make_napari_viewer()
    viewer.add_image(random_pixels((2600, 500), seed=8), name="img")  # > SCREEN_TILE: a pyramid
    path = tmp_path / "progress.ozx"
    assert viewer.layers.save(str(path), plugin="napari-ozx") == [str(path)]
    (bar,) = bars
    assert "progress.ozx" in bar.desc
    assert bar.seen and bar.seen[-1][0] == bar.seen[-1][1] > 1
    assert [n for n, _ in bar.seen] == sorted(n for n, _ in bar.seen)


def test_axes_from_meaningful_labels_else_inferred(tmp_path):
    from napari.layers import Image

    # napari's placeholder labels ('-4'...'-1') mean nothing: the last two are y, x; the
    # leading ones are of unknown type and never downsampled.  OME-Zarr has room for one
    # axis of channel-or-unknown type: the first is saved as time (c goes after it), the
    # other as space (z), still not downsampled
    a = Image(random_pixels((2, 3, 40, 50), seed=1), name="a")
    b = Image(random_pixels((2, 3, 40, 50), seed=2), name="b")
    write_ozx(tmp_path / "t.ozx", [a, b], pyramid_levels=2)
    group = open_ozx(tmp_path / "t.ozx")
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    assert [(x["name"], x.get("type")) for x in axes] == [
        ("t", "time"), ("c", "channel"), ("z", "space"), ("y", "space"), ("x", "space")]
    assert group["1"].shape == (2, 2, 3, 20, 25)
    # meaningful labels are kept
    c = Image(random_pixels((40, 50), seed=3), name="c", axis_labels=("row", "col"),
              units=("nanometer", "nanometer"))
    write_ozx(tmp_path / "named.ozx", c, pyramid_levels=1)
    axes = open_ozx(tmp_path / "named.ozx").attrs["ome"]["multiscales"][0]["axes"]
    assert axes == [{"name": "row", "type": "space", "unit": "nanometer"},
                    {"name": "col", "type": "space", "unit": "nanometer"}]


def test_rgb_layer_becomes_three_channels(tmp_path):
    from napari.layers import Image

    rgb = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype="uint8")
    write_ozx(tmp_path / "rgb.ozx", Image(rgb, name="photo", rgb=True))
    g = open_ozx(tmp_path / "rgb.ozx")
    np.testing.assert_array_equal(np.moveaxis(g["0"][:], 0, -1), rgb)
    chans = g.attrs["ome"]["omero"]["channels"]
    assert [c["color"] for c in chans] == ["FF0000", "00FF00", "0000FF"]
