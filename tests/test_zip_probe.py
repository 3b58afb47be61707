"""zip/probe.py: the napari getter's quick look reads entries as the archive does.

The probe decides whether napari-ozx claims a ``.zip``; it reads the root ``zarr.json`` through
the same CRC-checked entry decoder as :class:`~napari_ozx.zip.ZipArchive`, so a document the
archive would refuse does not make the getter claim the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
import zlib

import pytest

from napari_ozx._reader import holds_ome_zarr
from napari_ozx.errors import CorruptArchiveError
from napari_ozx.zip.probe import RootProbe

ROOT = json.dumps({"zarr_format": 3, "node_type": "group",
                   "attributes": {"ome": {"version": "0.5", "multiscales": []}}}).encode()


def _zip(path, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        zf.writestr("zarr.json", ROOT)
        zf.writestr("0/zarr.json", b"{}")
    return path


def _break_crc(path):
    """Change the CRC-32 recorded for the root ``zarr.json`` in the central directory."""
    data = bytearray(path.read_bytes())
    want = zlib.crc32(ROOT).to_bytes(4, "little")
    cd = data.index(b"PK\x01\x02")  # the first central header is the root zarr.json
    assert data[cd + 16 : cd + 20] == want
    data[cd + 16 : cd + 20] = bytes(b ^ 0xFF for b in want)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_probe_reads_the_root_document(tmp_path, method):
    path = _zip(tmp_path / "a.zip", method)
    with RootProbe(path) as probe:
        assert probe.comment.data is None  # zipfile writes no RFC-9 comment
        assert probe.root_document("zarr.json") == json.loads(ROOT)
        assert probe.root_document(".zattrs") is None
    assert holds_ome_zarr(path)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_root_document_failing_its_crc_is_not_believed(tmp_path, method):
    path = _zip(tmp_path / "a.zip", method)
    _break_crc(path)
    with RootProbe(path) as probe, pytest.raises(CorruptArchiveError, match="CRC-32"):
        probe.root_document("zarr.json")
    assert not holds_ome_zarr(path)


def test_the_probe_does_not_import_zarr(tmp_path):
    path = _zip(tmp_path / "a.zip")
    code = ("import sys; from napari_ozx._reader import napari_get_reader; "
            f"assert napari_get_reader({str(path)!r}) is not None; "
            "print('zarr' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
