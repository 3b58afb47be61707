"""Make docs/images/napari-ozx-paint.png: the sample opened in napari, a stroke of a new label
painted.  Run under a display (``xvfb-run -a -s "-screen 0 1280x1024x24" python
docs/make_screenshot.py``)."""

import os
import tempfile

import napari
import napari._qt.qt_main_window as qt_main_window
import numpy as np
from imageio.v3 import imwrite

from napari_ozx._sample_data import write_sample

HERE = os.path.dirname(os.path.abspath(__file__))

qt_main_window.SHOW_QT_WARNING = False  # napari's PyQt5 notice would cover the canvas
path = write_sample(os.path.join(tempfile.mkdtemp(), "cells.ozx"))
viewer = napari.Viewer(show=True)
viewer.window.resize(1100, 800)
viewer.open(str(path), plugin=None)
masks = viewer.layers["masks"]
masks.brush_size = 18
new = int(masks.data.max()) + 1  # napari's "new label"
for x in range(60, 460, 6):
    masks.paint((470 + 10 * np.sin(x / 40), x), new, refresh=True)
masks.selected_label = new
masks.mode = "paint"
viewer.reset_view()
imwrite(os.path.join(HERE, "images", "napari-ozx-paint.png"),
        viewer.screenshot(canvas_only=False, flash=False))
viewer.close()
