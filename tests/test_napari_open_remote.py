"""A URL opened in a real napari viewer (Qt under Xvfb): the napari-ozx reader claims
``http://.../x.ozx`` and shows the same layers and pixels as the local file."""

from __future__ import annotations

import numpy as np
import pytest

from servers import RangeServer

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_viewer_opens_an_http_url(make_napari_viewer, ngff_zarr_ozx, sample_ozx):
    with RangeServer() as srv:
        url = srv.put("/data/ngff.ozx", ngff_zarr_ozx.read_bytes())
        sample_url = srv.put("/data/cells.ozx", sample_ozx.read_bytes())
        viewer = make_napari_viewer()
        layers = viewer.open(url, plugin=None)
        assert [layer.source.reader_plugin for layer in layers] == ["napari-ozx"]
        (layer,) = layers
        assert layer.name == "ngff"
        np.testing.assert_allclose(layer.scale, [3.0, 0.25, 0.5])
        assert layer.multiscale and [lvl.shape for lvl in layer.data] == [
            (4, 96, 128), (2, 48, 64)
        ]
        # pixels identical to the local file, read through the viewer's layer data
        local = make_napari_viewer().open(str(ngff_zarr_ozx), plugin=None)[0]
        for remote_level, local_level in zip(layer.data, local.data, strict=True):
            np.testing.assert_array_equal(np.asarray(remote_level), np.asarray(local_level))
        assert srv.stats.requests > 0

        # a multi-layer sample archive (images + labels) over HTTP too
        viewer.open(sample_url, plugin=None)
        assert [lyr.name for lyr in viewer.layers][1:] == ["nuclei", "membrane", "masks"]
        assert {lyr.source.reader_plugin for lyr in viewer.layers} == {"napari-ozx"}
