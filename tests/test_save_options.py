"""napari_ozx.save.options: the storage a save picks when the user names none (chunks and
shards for the image's axes and dtype)."""

from __future__ import annotations

import numpy as np

from napari_ozx.save.options import StorageOptions


def test_default_storage_for_a_3d_volume():
    chunks, shards = StorageOptions().layout((300, 2048, 2048), ["space"] * 3, "uint16")
    assert chunks == (64, 64, 64)
    assert all(s % c == 0 and s // c >= 2 for s, c in zip(shards, chunks, strict=True))
    assert 8 << 20 <= np.prod(shards) * 2 <= 64 << 20
    chunks, shards = StorageOptions().layout((3, 5000, 5000), ["channel", "space", "space"],
                                             "uint8")
    assert chunks == (1, 256, 256) and shards[0] == 1 and shards[1] >= 1024
