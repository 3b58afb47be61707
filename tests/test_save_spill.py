"""The spill file lower-level shards wait in while they fill (napari_ozx.save.spill): unnamed,
with or without O_TMPFILE, and gone after the save."""

from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import random_pixels, reference_pyramid
from napari_ozx import open_ozx, write_ozx


@pytest.mark.parametrize("tmpfile", [True, False], ids=["O_TMPFILE", "tempfile"])
def test_spilled_shards_wait_in_an_unnamed_file(tmp_path, monkeypatch, tmpfile):
    """Lower-level shards wait on disk: the save gives the same archive, leaves no file."""
    from napari_ozx.save.spill import Spill

    if not tmpfile:  # a file system without O_TMPFILE
        import errno

        real_open = os.open

        def no_tmpfile(path, flags, *a, **kw):
            if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
                raise OSError(errno.EOPNOTSUPP, "not supported")
            return real_open(path, flags, *a, **kw)

        monkeypatch.setattr(os, "open", no_tmpfile)
    spill = Spill(str(tmp_path))
    assert spill.append(b"abc") == 0 and spill.append(memoryview(b"defgh")) == 3
    assert spill.read(2, 4) == b"cdef"
    assert os.listdir(tmp_path) == []  # unnamed
    spill.close()
    spill.close()
    img = random_pixels((16, 300, 300), seed=6)
    write_ozx(tmp_path / "s.ozx", img, axes="zyx", chunks=(8, 32, 32), shards=(16, 64, 64),
              pyramid_levels="full")
    assert os.listdir(tmp_path) == ["s.ozx"]
    g = open_ozx(tmp_path / "s.ozx")
    for k, ref in enumerate(reference_pyramid(img, (8, 32, 32), ["space"] * 3, "mean")):
        np.testing.assert_array_equal(g[str(k)][:], ref)
