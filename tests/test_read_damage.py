"""Damage in archives others wrote (issue 13, items 2 and 6): STORED entries checked in full
on request, central-directory names checked against local headers, duplicates checked and
shown once - through the command line and the Python API, as users meet them."""

from __future__ import annotations

import json
import struct
import warnings
import zipfile

import numpy as np
import pytest

from helpers import run_cli
from napari_ozx import open_ozx, write_ozx
from napari_ozx.errors import CorruptArchiveError


def _dup_zip(path, first=b"first", second=b"second"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("a", first)
            z.writestr("a", second)
    return path


def test_validate_crc_checks_each_copy_of_a_duplicated_name_against_its_own_bytes(
        tmp_path, capsys):
    path = _dup_zip(tmp_path / "dup.zip")
    code, out, _ = run_cli(capsys, "validate", "--crc", "--json", "--no-progress", path)
    report = json.loads(out)
    codes = {f["code"] for f in report[0]["findings"]} if isinstance(report, list) else {
        f["code"] for f in report["findings"]}
    assert "duplicate-name" in codes  # still an error: readers disagree on which copy wins
    assert "crc-mismatch" not in codes
    # damage the FIRST copy (the one readers do not take): reported, with its name
    raw = bytearray(path.read_bytes())
    at = raw.index(b"first")
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    code, out, _ = run_cli(capsys, "validate", "--crc", "--no-progress", path)
    assert code != 0
    assert "crc-mismatch [a]" in out


def _ozx_with_duplicated_root(tmp_path):
    src = tmp_path / "a.ozx"
    write_ozx(src, np.arange(64 * 64, dtype="uint16").reshape(64, 64), axes="yx",
              pyramid_levels=1)
    out = tmp_path / "dup.ozx"
    with zipfile.ZipFile(src) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(out, "w") as w:
            for name in z.namelist():
                w.writestr(name, z.read(name))
            w.writestr("zarr.json", z.read("zarr.json"))  # a rewrite, as ZipStore does
            w.writestr("0/zarr.json", z.read("0/zarr.json"))
    return out


def test_info_shows_each_node_once_and_says_duplicates_exist(tmp_path, capsys):
    path = _ozx_with_duplicated_root(tmp_path)
    code, out, _ = run_cli(capsys, "info", path)
    assert code == 0
    assert out.count("multiscales") == 1
    assert out.count("/0 ") <= 2  # the array line and the level line, once each
    assert "duplicates  2 names occur more than once" in out
    code, out, _ = run_cli(capsys, "info", "--json", path)
    d = json.loads(out)
    d = d[0] if isinstance(d, list) else d
    assert [n["path"] for n in d["nodes"]] == ["", "0"]
    assert d["duplicates"] == ["0/zarr.json", "zarr.json"]
    assert len(d["multiscales"]) == 1


def _mangle_directory_name(path, old: bytes, new: bytes):
    """Rename an entry in the central directory only (the local header keeps ``old``)."""
    assert len(old) == len(new)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        cd = z.start_dir
    at = raw.index(b"PK\x01\x02" + b"", cd)
    while raw[at:at + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack("<HHH", raw[at + 28:at + 34])
        if raw[at + 46:at + 46 + n] == old:
            raw[at + 46:at + 46 + n] = new
            path.write_bytes(bytes(raw))
            return path
        at += 46 + n + e + c
    raise AssertionError(f"{old!r} not in the central directory")


def test_validate_reports_a_central_directory_name_that_differs_from_its_local_header(
        tmp_path, capsys):
    path = tmp_path / "a.ozx"
    write_ozx(path, np.ones((300, 400), dtype="uint16"), axes="yx", chunks=(64, 64),
              shards=(128, 128))
    code, out, _ = run_cli(capsys, "validate", "--no-progress", path)
    assert code == 0, out
    _mangle_directory_name(path, b"0/c/1/1", b"0/c/1/9")
    code, out, _ = run_cli(capsys, "validate", "--no-progress", path)
    assert code != 0
    assert "name-mismatch [0/c/1/9]" in out and "'0/c/1/1'" in out


@pytest.fixture()
def unchecked_damage(tmp_path):
    """An archive whose chunks carry no checksum (codec none, checksum off), one byte of one
    shard flipped on disk: only the ZIP CRC-32 knows."""
    pixels = np.arange(300 * 400, dtype="uint16").reshape(300, 400)
    path = tmp_path / "a.ozx"
    write_ozx(path, pixels, axes="yx", chunks=(64, 64), shards=(128, 128), codec="none",
              checksum=False, pyramid_levels=1)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("0/c/1/1")
    raw = bytearray(path.read_bytes())
    n, e = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    raw[info.header_offset + 30 + n + e + 1000] ^= 0xFF
    bad = tmp_path / "bad.ozx"
    bad.write_bytes(bytes(raw))
    return path, bad, pixels


def test_verify_stored_checks_an_entry_in_full_at_its_first_ranged_read(unchecked_damage):
    good, bad, pixels = unchecked_damage
    # without the option a range of a STORED entry cannot be checked: one inner chunk (a
    # ranged read of the shard) comes back with a wrong pixel
    got = open_ozx(bad)["0"][128:192, 128:192]
    assert (got != pixels[128:192, 128:192]).sum() == 1
    with pytest.raises(CorruptArchiveError) as info:
        open_ozx(bad, verify_stored=True)["0"][128:192, 128:192]
    assert info.value.entry == "0/c/1/1" and str(bad) in str(info.value)
    assert "CRC-32" in str(info.value)
    # the other shards still read, and an undamaged archive reads whole with the option
    g = open_ozx(bad, verify_stored=True)
    np.testing.assert_array_equal(g["0"][:128], pixels[:128])
    np.testing.assert_array_equal(open_ozx(good, verify_stored=True)["0"][...], pixels)


def test_validate_crc_finds_the_damaged_stored_entry(unchecked_damage, capsys):
    good, bad, _ = unchecked_damage
    assert run_cli(capsys, "validate", "--crc", "--no-progress", good)[0] == 0
    code, out, _ = run_cli(capsys, "validate", "--crc", "--no-progress", bad)
    assert code != 0 and "crc-mismatch [0/c/1/1]" in out


def test_verify_stored_survives_pickling(unchecked_damage):
    import pickle

    _, bad, _ = unchecked_damage
    g = open_ozx(bad, verify_stored=True)
    store = pickle.loads(pickle.dumps(g.store))
    assert store.archive.verify_stored
    with pytest.raises(CorruptArchiveError):
        store.archive.read("0/c/1/1", 0, 10)
