"""The ``napari-ozx`` command line: pack, unpack, info, validate, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from archives import (
    ROOT_META,
    hierarchy_bytes,
    layout,
    make_v2_hierarchy,
    write_raw_zip,
)
from helpers import run_cli
from napari_ozx import open_ozx
from napari_ozx.cli import main
from napari_ozx.zip import source as source_mod


@pytest.fixture(scope="module")
def packed(hierarchy, tmp_path_factory) -> Path:
    src, _ = hierarchy
    out = tmp_path_factory.mktemp("packed") / "image.ozx"
    assert main(["pack", str(src), str(out), "--no-progress"]) == 0
    return out


# ------------------------------------------------------------------ pack / unpack


def test_pack_then_unpack_gives_back_identical_files(hierarchy, packed, tmp_path, capsys):
    src, pixels = hierarchy
    code, out, _ = run_cli(capsys, "unpack", packed, tmp_path / "back", "--no-progress")
    assert code == 0, out
    assert hierarchy_bytes(tmp_path / "back") == hierarchy_bytes(src)
    # Same file set, nothing else written.
    assert sorted(p.relative_to(tmp_path / "back").as_posix()
                  for p in (tmp_path / "back").rglob("*") if p.is_file()) == \
        sorted(hierarchy_bytes(src))


def test_packed_archive_reads_back_and_is_rfc9(hierarchy, packed):
    _, pixels = hierarchy
    grp = open_ozx(packed)
    for path, expected in pixels.items():
        np.testing.assert_array_equal(grp[path][:], expected)
    lay = layout(packed)
    assert lay.names[0] == "zarr.json" and lay.local_headers[0] == 0
    assert lay.zip64_eocd is not None
    with zipfile.ZipFile(packed) as zf:
        assert zf.testzip() is None
    r = subprocess.run(["unzip", "-tq", str(packed)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_pack_shows_a_progress_bar(hierarchy, tmp_path, capsys):
    src, _ = hierarchy
    code, out, err = run_cli(capsys, "pack", src, tmp_path / "p.ozx", "--progress")
    assert code == 0
    assert "100%" in err and "packing" in err
    assert "entries" in out


def test_pack_refuses_what_is_not_ome_zarr_05(tmp_path, capsys):
    v2 = tmp_path / "v2.zarr"
    make_v2_hierarchy(v2)
    code, _, err = run_cli(capsys, "pack", v2, tmp_path / "v2.ozx")
    assert code == 2
    assert "Zarr v2" in err and "zarr.json" in err
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w", zarr_format=3).create_array("a", shape=(4,),
                                                                      dtype="u1")
    code, _, err = run_cli(capsys, "pack", plain, tmp_path / "plain.ozx")
    assert code == 2 and "not OME-Zarr" in err
    code, _, err = run_cli(capsys, "pack", tmp_path / "missing", tmp_path / "m.ozx")
    assert code == 2 and "not a directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.zarr", "v2.zarr"]


def test_pack_refuses_to_replace_an_archive_without_force(hierarchy, tmp_path, capsys):
    src, _ = hierarchy
    dest = tmp_path / "x.ozx"
    dest.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "pack", src, dest)
    assert code == 2 and "--force" in err
    assert dest.read_bytes() == b"precious"
    code, _, _ = run_cli(capsys, "pack", src, dest, "--force", "--no-progress")
    assert code == 0
    assert zipfile.ZipFile(dest).testzip() is None


def test_unpack_refuses_a_non_empty_directory_unless_forced(packed, tmp_path, capsys):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, "unpack", packed, dest)
    assert code == 2 and "not empty" in err
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]
    code, _, _ = run_cli(capsys, "unpack", packed, dest, "--force", "--no-progress")
    assert code == 0
    assert (dest / "keep.txt").read_text() == "mine"
    assert (dest / "zarr.json").exists()


@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/abs-evil.txt", "a/../../evil.txt"])
def test_unpack_never_writes_outside(tmp_path, capsys, bad):
    arc = write_raw_zip(tmp_path / "evil.ozx", [("zarr.json", ROOT_META), (bad, b"pwned")],
                        zip64=True)
    dest = tmp_path / "sub" / "out"
    code, _, err = run_cli(capsys, "unpack", arc, dest)
    assert code == 2 and "unsafe" in err
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()
    assert not Path("/tmp/abs-evil.txt").exists()
    assert not dest.exists() or list(dest.iterdir()) == []


def test_unpack_does_not_follow_a_symlink_in_the_destination(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    arc = write_raw_zip(tmp_path / "a.ozx", [("zarr.json", ROOT_META), ("a/c/0", b"data")],
                        zip64=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "a")
    code, _, err = run_cli(capsys, "unpack", arc, dest, "--force")
    assert code == 2 and "outside" in err
    assert list(outside.iterdir()) == []


def test_unpack_detects_corrupt_data(packed, tmp_path, capsys):
    bad = tmp_path / "bad.ozx"
    bad.write_bytes(packed.read_bytes())
    lay = layout(bad)
    i = next(k for k, n in enumerate(lay.names) if "/c/" in n)
    with open(bad, "r+b") as f:
        f.seek(lay.data_offsets[i])
        b = f.read(1)
        f.seek(lay.data_offsets[i])
        f.write(bytes([b[0] ^ 1]))
    code, _, err = run_cli(capsys, "unpack", bad, tmp_path / "o")
    assert code == 2 and "CRC-32" in err and lay.names[i] in err


# ------------------------------------------------------------------ info


def test_info_json_describes_the_hierarchy(packed, capsys):
    code, out, _ = run_cli(capsys, "info", packed, "--json")
    assert code == 0
    d = json.loads(out)
    assert d["entries"] == len(layout(packed).names)
    assert d["ome_version"] == "0.5" and d["json_first"] and d["zip64"]
    nodes = {n["path"]: n for n in d["nodes"]}
    assert nodes[""]["node_type"] == "group"
    assert nodes["0"]["shape"] == [64, 80] and nodes["0"]["dtype"] == "uint16"
    assert nodes["0"]["shards"] == [32, 32] and nodes["0"]["chunks"] == [16, 16]
    assert nodes["0"]["codecs"][0] == "sharding_indexed"
    assert nodes["labels/cells/0"]["shards"] is None
    assert nodes["labels/cells/0"]["chunks"] == [1, 10, 12]
    assert [lv["path"] for lv in d["multiscales"][0]["levels"]] == ["0"]
    assert d["labels"] == ["labels/cells"]


def test_info_text(packed, capsys):
    code, out, _ = run_cli(capsys, "info", packed)
    assert code == 0
    assert "entries" in out and "OME-Zarr    0.5" in out
    assert "/0" in out and "(64, 80) uint16" in out and "labels      labels/cells" in out


def test_info_into_a_closed_pipe_is_quiet(packed):
    """``napari-ozx info x.ozx | head -1``: the reader leaves early; no traceback, exit 0."""
    exe = Path(sys.executable).with_name("napari-ozx")
    p = subprocess.Popen([str(exe), "info", str(packed)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # like head after its line: every write now meets a broken pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_info_on_a_non_zip_fails_cleanly(tmp_path, capsys):
    p = tmp_path / "x.ozx"
    p.write_bytes(b"hello")
    code, _, err = run_cli(capsys, "info", p)
    assert code == 2 and str(p) in err


@pytest.mark.slow
def test_info_on_a_million_entries_reads_only_the_json_prefix(million_ozx, capsys, monkeypatch):
    read = []
    orig = source_mod.LocalFile.read

    def counting(self, offset, length):
        read.append(length)
        return orig(self, offset, length)

    monkeypatch.setattr(source_mod.LocalFile, "read", counting)
    t0 = time.perf_counter()
    code, out, _ = run_cli(capsys, "info", million_ozx, "--json")
    elapsed = time.perf_counter() - t0
    assert code == 0
    d = json.loads(out)
    assert d["entries"] == 1_000_000
    assert d["central_directory_fully_read"] is False
    assert [n["path"] for n in d["nodes"]] == ["", "a"]
    total = sum(read)
    size = million_ozx.stat().st_size
    assert total < 256 * 1024, f"read {total} bytes of a {size}-byte archive"
    print(f"info on 1M entries: {elapsed * 1e3:.1f} ms, {total} bytes read")


# ------------------------------------------------------------------ validate


def test_validate_exit_codes(packed, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "validate", "--strict", "--crc", "--no-progress", packed)
    assert code == 0 and "OK (0 errors, 0 warnings)" in out
    no_comment = tmp_path / "nc.ozx"
    with zipfile.ZipFile(packed) as src, zipfile.ZipFile(no_comment, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
    code, out, _ = run_cli(capsys, "validate", no_comment)
    assert code == 0 and "no-comment" in out
    code, out, _ = run_cli(capsys, "validate", "--strict", no_comment)
    assert code == 1 and "FAILED" in out
    dup = write_raw_zip(tmp_path / "dup.ozx", [("zarr.json", ROOT_META), ("x", b"1"), ("x", b"2")],
                        zip64=True)
    code, out, _ = run_cli(capsys, "validate", dup, packed)
    assert code == 1
    assert "duplicate-name [x]" in out


def test_validate_json(packed, tmp_path, capsys):
    not_zip = tmp_path / "n.ozx"
    not_zip.write_bytes(b"nope" * 100)
    code, out, _ = run_cli(capsys, "validate", "--json", packed, not_zip)
    assert code == 1
    docs = json.loads(out)
    assert [d["ok"] for d in docs] == [True, False]
    assert docs[1]["findings"][0] == {
        "level": "error", "code": "not-a-zip", "entry": None,
        "message": docs[1]["findings"][0]["message"],
    }


def test_console_script_is_installed(packed):
    exe = Path(sys.executable).with_name("napari-ozx")
    r = subprocess.run([str(exe), "validate", "--strict", str(packed)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_unpack_refuses_symlink_entries_from_infozip(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "zarr.json").write_bytes(ROOT_META)
    os.symlink("/etc/passwd", src / "link")
    arc = tmp_path / "links.ozx"
    subprocess.run(["zip", "-q", "-0", "-y", "-r", str(arc), "."], cwd=src, check=True)
    dest = tmp_path / "out"
    code, _, err = run_cli(capsys, "unpack", arc, dest)
    assert code == 2 and "symbolic link" in err and "link" in err
    assert not dest.exists() or list(dest.iterdir()) == []
