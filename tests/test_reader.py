"""The npe2 contract of the reader: which paths it claims, that it never raises, npe2 glue."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import npe2
import pytest

from napari_ozx._reader import holds_ome_zarr, napari_get_reader, read_ozx


@pytest.fixture
def pm():
    """npe2's global plugin manager with installed plugins discovered (as napari does at start)."""
    manager = npe2.PluginManager.instance()
    manager.discover()
    return manager


def test_manifest_validates():
    exe = Path(sys.executable).with_name("npe2")
    out = subprocess.run([str(exe), "validate", "napari-ozx"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_npe2_read_returns_layer_data(pm, ome_zarr_py_ozx):
    layers = npe2.read([str(ome_zarr_py_ozx)], plugin_name="napari-ozx", stack=False)
    assert [t for _, _, t in layers] == ["image", "labels"]
    data, kwargs, _ = layers[0]
    assert kwargs["channel_axis"] == 0 and kwargs["name"] == ["DAPI", "Actin"]
    assert [lvl.shape for lvl in data] == [(2, 8, 128, 128), (2, 8, 64, 64), (2, 8, 32, 32)]


def test_only_our_reader_is_offered_for_ozx(pm, ome_zarr_py_ozx):
    names = {r.plugin_name for r in pm.iter_compatible_readers([str(ome_zarr_py_ozx)])}
    assert names == {"napari-ozx"}


def test_ozx_is_always_claimed(tmp_path):
    # even one that turns out broken: the user then gets our error, not "no reader"
    bad = tmp_path / "broken.ozx"
    bad.write_bytes(b"not a zip at all")
    assert napari_get_reader(str(bad)) is read_ozx
    assert napari_get_reader(str(tmp_path / "IMAGE.OZX")) is read_ozx


def test_zip_claimed_only_with_ome_zarr(v04_zip, plain_zip, plain_zarr_zip, ome_zarr_py_ozx,
                                        tmp_path):
    assert napari_get_reader(str(v04_zip)) is read_ozx  # Info-ZIP, no comment: from .zattrs
    renamed = tmp_path / "renamed.zip"
    shutil.copy(ome_zarr_py_ozx, renamed)
    assert napari_get_reader(str(renamed)) is read_ozx  # RFC-9 comment
    assert napari_get_reader(str(plain_zip)) is None  # text files
    assert napari_get_reader(str(plain_zarr_zip)) is None  # Zarr, but not OME


def test_zip_with_ome_zarr_and_no_comment_is_claimed(ome_zarr_py_dir, tmp_path):
    from archives import zip_infozip

    out = zip_infozip(ome_zarr_py_dir, tmp_path / "v05.zip")
    assert napari_get_reader(str(out)) is read_ozx


def test_probe_reads_only_the_tail_and_first_block(tmp_path):
    """A big ordinary zip is declined in milliseconds: only the end records and the first block
    of the central directory are read, never the whole directory."""
    out = tmp_path / "many.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for i in range(30_000):
            zf.writestr(f"files/{i:06d}.txt", b"x")
    assert napari_get_reader(str(out)) is None
    t0 = time.perf_counter()
    for _ in range(20):
        assert not holds_ome_zarr(out)
    per_call = (time.perf_counter() - t0) / 20
    assert per_call < 0.02, f"{per_call * 1e3:.1f} ms per probe"


@pytest.mark.parametrize(
    "path",
    [
        None,
        42,
        [],
        ["a.ozx", "b.ozx"],  # several paths: not ours to stack
        "/nonexistent/dir/x.zip",
        "file.tif",
        "https://example.org/x.zip",
        "s3://bucket/x.zarr",
    ],
)
def test_getter_declines_without_raising(path):
    assert napari_get_reader(path) is None


def test_getter_survives_hostile_zips(tmp_path):
    cases = {
        "empty.zip": b"",
        "text.zip": b"hello world",
        "eocd-only.zip": b"PK\x05\x06" + b"\xff" * 18,
        "truncated.zip": b"PK\x03\x04" + b"\x00" * 100 + b"PK\x05\x06" + b"\x00" * 8
        + b"\xff\xff\xff\xff" * 2 + b"\x00\x00",
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        assert napari_get_reader(str(p)) is None, name
    d = tmp_path / "dir.zip"
    d.mkdir()
    assert napari_get_reader(str(d)) is None


@pytest.mark.parametrize(
    "url",
    ["https://example.org/data/image.ozx", "http://host:8000/a.ozx",
     "s3://bucket/key/image.ozx", "https://example.org/image.ozx?token=abc"],
)
def test_remote_ozx_urls_are_claimed(url):
    assert napari_get_reader(url) is read_ozx


def test_reading_a_broken_archive_returns_napari_empty_result(tmp_path, notifications):
    bad = tmp_path / "broken.ozx"
    bad.write_bytes(b"PK\x03\x04 definitely not a complete archive")
    assert read_ozx(str(bad)) == [(None,)]
    (note,) = [n for n in notifications if n.severity == "error"]
    assert str(bad) in str(note.message)


def test_sample_data_contribution(pm, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    (contrib,) = [s for p, s in pm.iter_sample_data() if p == "napari-ozx"] or [[]]
    assert [s.key for s in contrib] == ["cells"]
    layers = contrib[0].open()
    assert [kw["name"] if t == "labels" else kw["name"] for _, kw, t in layers] == [
        ["nuclei", "membrane"], "masks"]
    assert (tmp_path / next(tmp_path.iterdir()).name / "cells.ozx").exists()


def test_sample_archive_is_a_clean_rfc9_archive(sample_ozx):
    """The sample is packed by our writer: the validator finds nothing to say about it."""
    exe = Path(sys.executable).with_name("napari-ozx")
    out = subprocess.run([str(exe), "validate", str(sample_ozx)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 errors, 0 warnings" in out.stdout
