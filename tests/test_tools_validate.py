"""validate: every error and warning class of RFC-9 flagged on a fixture that has exactly that
defect (archives from the stdlib, Info-ZIP and our raw writer), and our own archives pass with no
warning even in strict mode."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import zarr

from archives import (
    COMMENT_JSON_FIRST,
    COMMENT_PLAIN,
    ROOT_META,
    SMALL_ARRAY_META,
    SMALL_CHUNK,
    RawEntry,
    layout,
    make_v2_hierarchy,
    many_entry_archive,
    tree_files,
    write_raw_zip,
    zip_stdlib,
)
from napari_ozx.save.store import OzxWriteStore
from napari_ozx.tools.pack import pack
from napari_ozx.tools.validate import ERROR, WARNING, validate
from napari_ozx.zip import records
from napari_ozx.zip.writer import OzxWriter


@pytest.fixture(scope="module")
def ours(hierarchy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ours") / "image.ozx"
    pack(hierarchy.path, out)
    return out


def _raw(path: Path, entries, **kw) -> Path:
    return write_raw_zip(path, entries, **kw)


def _good_entries():
    return [("zarr.json", ROOT_META), ("a/zarr.json", SMALL_ARRAY_META), ("a/c/0/0", SMALL_CHUNK)]


def _codes(report, level):
    return {f.code for f in report.findings if f.level == level}


def _entries(report, code):
    return {f.entry for f in report.findings if f.code == code}


# ------------------------------------------------------------------ our archives pass


def test_our_packed_archive_passes_strict_with_crc(ours):
    report = validate(ours, crc=True)
    assert report.findings == []
    assert report.ok(strict=True)
    assert report.entries == len(layout(ours).names)


def test_our_write_store_archive_passes_strict(tmp_path):
    import numpy as np
    from ome_zarr.writer import write_image

    path = tmp_path / "img.ozx"
    with OzxWriteStore(path) as store:
        g = zarr.open_group(store, mode="w")
        write_image(np.zeros((64, 64), "uint8"), g, axes="yx",
                    storage_options=dict(chunks=(32, 32), shards=(64, 64)))
    report = validate(path, crc=True)
    assert report.findings == [], [str(f) for f in report.findings]


def test_raw_rfc9_archive_passes(tmp_path):
    p = _raw(tmp_path / "ok.ozx", _good_entries(), zip64=True)
    assert validate(p, crc=True).findings == []


# ------------------------------------------------------------------ errors


def test_not_a_zip(tmp_path):
    p = tmp_path / "text.ozx"
    p.write_text("just some text, no end-of-central-directory record\n" * 100)
    report = validate(p)
    assert _codes(report, ERROR) == {"not-a-zip"}
    assert not report.ok()


def test_root_zarr_json_missing(tmp_path):
    p = _raw(tmp_path / "noroot.ozx", [("a/c/0/0", SMALL_CHUNK)], zip64=True)
    report = validate(p)
    assert _codes(report, ERROR) == {"root-missing"}


def test_zarr_v2_archive_has_no_root_zarr_json(tmp_path):
    src = tmp_path / "v2.zarr"
    make_v2_hierarchy(src)
    p = zip_stdlib(src, tmp_path / "v2.ozx", force_zip64=True, comment=COMMENT_PLAIN)
    report = validate(p)
    assert _codes(report, ERROR) == {"root-missing"}
    msg = next(f.message for f in report.findings if f.code == "root-missing")
    assert "Zarr v2" in msg


def test_root_in_a_subfolder(tmp_path, hierarchy):
    names = tree_files(hierarchy.path)
    entries = [(f"image.zarr/{n}", (hierarchy.path / n).read_bytes()) for n in names]
    p = _raw(tmp_path / "nested-root.ozx", entries, zip64=True)
    report = validate(p)
    assert _codes(report, ERROR) == {"root-not-at-root"}
    assert _entries(report, "root-not-at-root") == {"image.zarr/zarr.json"}


def test_archive_inside_the_archive(tmp_path, ours):
    p = _raw(tmp_path / "zipinzip.ozx", _good_entries() + [("inner.ozx", ours.read_bytes())],
             zip64=True)
    report = validate(p)
    assert _codes(report, ERROR) == {"archive-in-archive"}
    assert _entries(report, "archive-in-archive") == {"inner.ozx"}


def test_archive_hidden_under_a_chunk_name_found_with_crc(tmp_path, ours):
    entries = _good_entries()[:2] + [("a/c/0/0", ours.read_bytes())]
    p = _raw(tmp_path / "hidden.ozx", entries, zip64=True)
    assert validate(p).ok()
    report = validate(p, crc=True)
    assert _codes(report, ERROR) == {"archive-in-archive"}
    assert _entries(report, "archive-in-archive") == {"a/c/0/0"}


def test_multi_part_archive_from_infozip(tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    (src / "zarr.json").write_bytes(ROOT_META)
    (src / "blob").write_bytes(bytes(range(256)) * 1024)
    out = tmp_path / "split.zip"
    subprocess.run(["zip", "-q", "-0", "-s", "64k", "-r", str(out), "."], cwd=src, check=True)
    assert (tmp_path / "split.z01").exists()
    report = validate(out)
    assert _codes(report, ERROR) == {"multi-part"}


def test_json_first_claimed_but_false(tmp_path):
    p = many_entry_archive(tmp_path / "liar.ozx", 50, late_metadata=True, zip64=True)
    report = validate(p)
    assert "json-first-false" in _codes(report, ERROR)
    assert _entries(report, "json-first-false") == {"late/zarr.json"}
    # The same order without the claim is only a warning.
    q = many_entry_archive(tmp_path / "honest.ozx", 50, late_metadata=True, zip64=True,
                           comment=COMMENT_PLAIN)
    report = validate(q)
    assert _codes(report, ERROR) == set()
    assert "not-breadth-first" in _codes(report, WARNING)


def test_duplicate_names(tmp_path):
    p = _raw(tmp_path / "dup.ozx", _good_entries() + [("a/c/0/0", SMALL_CHUNK[::-1])], zip64=True)
    report = validate(p)
    assert _codes(report, ERROR) == {"duplicate-name"}
    assert _entries(report, "duplicate-name") == {"a/c/0/0"}


@pytest.mark.parametrize("bad", ["../evil", "/etc/passwd", "a/../../b", "a\\b"])
def test_unsafe_names(tmp_path, bad):
    p = _raw(tmp_path / "unsafe.ozx", _good_entries() + [(bad, b"x")], zip64=True)
    report = validate(p)
    assert _codes(report, ERROR) == {"unsafe-name"}
    assert _entries(report, "unsafe-name") == {bad}


def test_encrypted_entry_from_infozip(tmp_path):
    src = tmp_path / "enc"
    src.mkdir()
    (src / "zarr.json").write_bytes(ROOT_META)
    out = tmp_path / "enc.ozx"
    subprocess.run(["zip", "-q", "-0", "-P", "secret", str(out), "zarr.json"], cwd=src, check=True)
    report = validate(out)
    assert "encrypted" in _codes(report, ERROR)
    assert _entries(report, "encrypted") == {"zarr.json"}


def test_encrypted_flag_on_a_chunk(tmp_path):
    entries = _good_entries()[:2] + [
        RawEntry("a/c/0/0", SMALL_CHUNK, flags=records.FLAG_UTF8 | records.FLAG_ENCRYPTED)
    ]
    report = validate(_raw(tmp_path / "enc.ozx", entries, zip64=True))
    assert _codes(report, ERROR) == {"encrypted"}


@pytest.mark.parametrize(
    "doc",
    [b"{not json", b"[1, 2]", json.dumps({"zarr_format": 2, "node_type": "array"}).encode(),
     json.dumps({"zarr_format": 3, "node_type": "table"}).encode(),
     json.dumps({"zarr_format": 3, "node_type": "array", "shape": [4]}).encode()],
)
def test_invalid_zarr_json(tmp_path, doc):
    entries = [("zarr.json", ROOT_META), ("a/zarr.json", doc), ("a/c/0/0", SMALL_CHUNK)]
    report = validate(_raw(tmp_path / "badjson.ozx", entries, zip64=True))
    assert _codes(report, ERROR) == {"invalid-zarr-json"}
    assert _entries(report, "invalid-zarr-json") == {"a/zarr.json"}


def test_root_without_ome_metadata(tmp_path):
    plain = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()
    entries = [("zarr.json", plain)] + _good_entries()[1:]
    report = validate(_raw(tmp_path / "plain.ozx", entries, zip64=True))
    assert _codes(report, ERROR) == {"root-not-ome"}


def test_comment_version_differs_from_root(tmp_path):
    comment = json.dumps({"ome": {"version": "0.4"}}).encode()
    report = validate(_raw(tmp_path / "ver.ozx", _good_entries(), zip64=True, comment=comment))
    assert _codes(report, ERROR) == {"version-mismatch"}
    assert "0.4" in next(f.message for f in report.findings if f.code == "version-mismatch")


def test_crc_mismatch_found_only_with_crc(tmp_path, ours):
    bad = tmp_path / "flipped.ozx"
    shutil.copy(ours, bad)
    lay = layout(bad)
    i = next(k for k, n in enumerate(lay.names) if "/c/" in n)
    with open(bad, "r+b") as f:
        f.seek(lay.data_offsets[i] + 3)
        b = f.read(1)
        f.seek(lay.data_offsets[i] + 3)
        f.write(bytes([b[0] ^ 0xFF]))
    assert validate(bad).ok(strict=True)
    report = validate(bad, crc=True)
    assert _codes(report, ERROR) == {"crc-mismatch"}
    assert _entries(report, "crc-mismatch") == {lay.names[i]}


# ------------------------------------------------------------------ warnings


def _stdlib(tmp_path, hierarchy, name="w.ozx", **kw) -> Path:
    kw.setdefault("force_zip64", True)
    return zip_stdlib(hierarchy.path, tmp_path / name, **kw)


def test_stdlib_archive_lacks_only_zip64_end_records(tmp_path, hierarchy):
    """The stdlib writes ZIP64 end records only past the 32-bit limits, even with
    force_zip64 on every entry: RFC-9 recommends them whatever the size."""
    report = validate(_stdlib(tmp_path, hierarchy))
    assert [f.code for f in report.findings] == ["no-zip64"]


def test_no_comment(tmp_path, hierarchy):
    report = validate(_stdlib(tmp_path, hierarchy, comment=None))
    assert _codes(report, ERROR) == set()
    assert _codes(report, WARNING) == {"no-comment", "no-zip64"}
    assert report.ok() and not report.ok(strict=True)


@pytest.mark.parametrize("comment", [b"not json", b'{"other": 1}', b'{"ome": {}}'])
def test_invalid_comment(tmp_path, hierarchy, comment):
    report = validate(_stdlib(tmp_path, hierarchy, comment=comment))
    assert _codes(report, ERROR) == set()
    assert _codes(report, WARNING) == {"invalid-comment", "no-zip64"}


def test_no_zip64_end_records(tmp_path):
    """Detected from the records: the same entries with and without the ZIP64 end records."""
    with_64 = _raw(tmp_path / "z64.ozx", _good_entries(), zip64=True)
    without = _raw(tmp_path / "z32.ozx", _good_entries(), zip64=False)
    assert layout(without).zip64_eocd is None and layout(with_64).zip64_eocd is not None
    assert validate(with_64).findings == []
    report = validate(without)
    assert [f.code for f in report.findings] == ["no-zip64"]
    assert report.ok() and not report.ok(strict=True)


def test_infozip_archive_warnings(tmp_path, hierarchy):
    out = tmp_path / "info.ozx"
    subprocess.run(["zip", "-q", "-0", "-r", "-X", "-D", str(out), "."], cwd=hierarchy.path,
                   check=True)
    report = validate(out)
    assert _codes(report, ERROR) == set()
    assert {"no-comment", "no-zip64"} <= _codes(report, WARNING)


def test_zip_level_compression(tmp_path, hierarchy):
    report = validate(_stdlib(tmp_path, hierarchy, compression=zipfile.ZIP_DEFLATED))
    assert _codes(report, WARNING) == {"compressed", "no-zip64"}
    assert _codes(report, ERROR) == set()
    assert "deflated" in next(f.message for f in report.findings if f.code == "compressed")


def test_not_breadth_first(tmp_path, hierarchy):
    p = _stdlib(tmp_path, hierarchy, json_first=False, comment=COMMENT_PLAIN)
    report = validate(p)
    assert _codes(report, WARNING) == {"not-breadth-first", "no-zip64"}
    assert _codes(report, ERROR) == set()


def test_deeper_metadata_before_shallower(tmp_path, hierarchy):
    names = tree_files(hierarchy.path)
    meta = [n for n in names if n.endswith("zarr.json")]
    data = [n for n in names if n not in meta]
    order = ["zarr.json"] + sorted(meta[1:], key=lambda n: -n.count("/")) + data
    report = validate(_stdlib(tmp_path, hierarchy, names=order))
    assert _codes(report, WARNING) == {"not-breadth-first", "no-zip64"}
    assert _codes(report, ERROR) == set()


def test_root_not_first_in_file(tmp_path):
    # Root listed first in the directory, but its bytes come after another entry's.
    entries = [("a/zarr.json", SMALL_ARRAY_META), ("zarr.json", ROOT_META),
               ("a/c/0/0", SMALL_CHUNK)]
    p = _raw(tmp_path / "late-root.ozx", entries, zip64=True)
    report = validate(p)
    assert _codes(report, WARNING) == {"not-breadth-first"}


def test_not_ozx_name(tmp_path, ours):
    p = tmp_path / "image.zip"
    shutil.copy(ours, p)
    report = validate(p)
    assert _codes(report, WARNING) == {"not-ozx"} and _codes(report, ERROR) == set()


def test_unsharded_array_with_many_chunks(tmp_path):
    p = tmp_path / "many.ozx"
    with OzxWriteStore(p) as store:
        g = zarr.open_group(store, mode="w", attributes={"ome": {"version": "0.5"}})
        g.create_array("unsharded", shape=(256, 256), chunks=(4, 4), dtype="uint8")
        g.create_array("sharded", shape=(256, 256), chunks=(4, 4), shards=(256, 256),
                       dtype="uint8")
    report = validate(p)
    assert _codes(report, WARNING) == {"many-unsharded-chunks"}
    assert _entries(report, "many-unsharded-chunks") == {"unsharded/zarr.json"}
    assert "4096 chunks" in report.findings[0].message
    assert validate(p, many_chunks=5000).findings == []


def test_many_findings_are_summarised(tmp_path):
    entries = [("zarr.json", ROOT_META)] + [
        RawEntry(f"x/{i}", b"abc", method=records.METHOD_DEFLATED) for i in range(30)
    ]
    report = validate(_raw(tmp_path / "defl.ozx", entries, zip64=True))
    compressed = [f for f in report.findings if f.code == "compressed"]
    assert len(compressed) == 11
    assert "20 more entries" in compressed[-1].message


def test_our_writer_with_jsonfirst_comment_matches_stdlib_reading(tmp_path):
    p = tmp_path / "w.ozx"
    with OzxWriter(p) as w:
        w.set_metadata("zarr.json", ROOT_META)
    with zipfile.ZipFile(p) as zf:
        assert json.loads(zf.comment) == json.loads(COMMENT_JSON_FIRST)
