"""A damaged chunk in napari (issue 13, item 3): opened the way users open files, the viewer
shows one notification naming the archive and the entry, draws the rest of the image, and the
damaged chunk blank - never speckle, never a traceback per tile."""

from __future__ import annotations

import numpy as np
import pytest

from test_save_checksums import _save, flip_byte

pytestmark = pytest.mark.gui


@pytest.fixture()
def damaged(tmp_path):
    yy, xx = np.mgrid[:300, :400]
    pixels = (20000 + 60 * yy + 40 * xx).astype("uint16")  # bright everywhere, a ramp
    good = _save(tmp_path, pixels, "good.ozx", pyramid_levels=1)
    return flip_byte(good, tmp_path / "bad.ozx"), pixels


def test_a_damaged_chunk_is_one_notification_and_the_rest_renders(make_napari_viewer, damaged,
                                                                  tmp_path):
    from napari.utils.notifications import notification_manager

    bad, pixels = damaged
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        viewer = make_napari_viewer(show=True)
        layers = viewer.open(str(bad), plugin=None)
        assert [layer.source.reader_plugin for layer in layers] == ["napari-ozx"]
        (layer,) = layers
        layer.contrast_limits = (0, 65535)
        layer.colormap = "gray"
        viewer.reset_view()
        shots = []
        for _ in range(3):  # redraws (a pan, a refresh) must not add notifications
            viewer.window._qt_viewer.canvas.native.update()
            shots.append(viewer.screenshot(canvas_only=True, flash=False))
            layer.refresh()
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    ours = [n for n in seen if "napari-ozx" in str(n.message)]
    assert len(ours) == 1, [str(n.message) for n in seen]
    msg = str(ours[0].message)
    assert str(bad) in msg and "'0/c/1/1'" in msg and "checksum" in msg
    errors = [n for n in seen if n not in ours and str(n.severity) in ("error", "ERROR")]
    assert errors == [], [str(n.message) for n in errors]

    # the data napari shows: the damaged inner chunk blank, every other pixel exact
    shown = np.asarray(layer.data if not layer.multiscale else layer.data[0])
    assert (shown[128:192, 128:192] == 0).all()
    mask = np.ones(pixels.shape, bool)
    mask[128:192, 128:192] = False
    np.testing.assert_array_equal(shown[mask], pixels[mask])

    # and on screen: the image drawn (bright), one dark square where the chunk failed
    shot = shots[-1]
    from PIL import Image

    Image.fromarray(shot).save(tmp_path / "damaged.png")
    gray = shot[..., :3].mean(axis=2)
    bright = gray > 60
    assert bright.mean() > 0.2, "the image was not drawn"
    rows, cols = np.nonzero(bright)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    h, w = bottom - top, right - left
    # the chunk at rows 128-192, cols 128-192 of 300 x 400, in screen coordinates
    y0, y1 = top + int(h * 135 / 300), top + int(h * 185 / 300)
    x0, x1 = left + int(w * 135 / 400), left + int(w * 185 / 400)
    assert gray[y0:y1, x0:x1].max() < 30, "the damaged chunk is not blank on screen"
    assert gray[top + int(h * 0.1): top + int(h * 0.3), left + int(w * 0.6): left + int(w * 0.9)
                ].min() > 60, "undamaged chunks around it are not drawn"
