import os
import zipfile

import numpy as np
import zarr

import napari_ozx


def test_open_stdlib_zip(tmp_path):
    d = tmp_path / "data.zarr"
    g = zarr.open_group(str(d), mode="w")
    a = g.create_array("img", shape=(64, 64), chunks=(16, 16), shards=(32, 32), dtype="uint16")
    a[:] = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as z:
        for root, _, files in os.walk(d):
            for f in files:
                p = os.path.join(root, f)
                z.write(p, os.path.relpath(p, d))
    grp = napari_ozx.open_ozx(path)
    np.testing.assert_array_equal(grp["img"][:], a[:])
