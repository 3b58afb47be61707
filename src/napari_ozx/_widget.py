"""The "Export .ozx" dock widget.

Choose the image and labels layers, the storage (chunk and shard shape, codec and level), the
pyramid (levels, method) and the output path; the export runs in a worker thread
(:func:`napari_ozx.save.api.write_layers`), with a progress bar (shards written / total) in the
widget and in napari's activity dock, and a Cancel button.  Success and failure are napari
notifications; a cancelled or failed export leaves the destination as it was.

The layer list follows the viewer's (insert, remove, rename, reorder). Each row stands for a
layer object, never a name, so a renamed layer is saved under its new name; layers an OME-Zarr
cannot hold (points, shapes, ...) are named under the list as left out.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._writer import UNSTORABLE_WHY
from .errors import WriteCancelled
from .save.api import CODECS, write_layers
from .save.pyramid import LABEL_METHODS, METHODS

if TYPE_CHECKING:
    import napari

AUTO = "auto"


def _kind(layer: Any) -> str:
    return type(layer).__name__.lower()


def _describe(layers: list) -> str:
    """``points 'cells', shapes 'roi'``: what a user sees in a message about layers."""
    return ", ".join(f"{_kind(layer)} {layer.name!r}" for layer in layers)


def parse_shape(text: str) -> tuple[int, ...] | None:
    """``"1, 256, 256"`` -> ``(1, 256, 256)``; empty or ``auto`` -> None."""
    text = text.strip().lower()
    if not text or text == AUTO:
        return None
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a shape: give integers separated by commas") from None
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{text!r} is not a shape: give positive integers")
    return values


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread."""

    progressed = Signal(int, int)


class ExportWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self._cancel: threading.Event | None = None
        self._pbar = None
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_progress)
        self.last_result: str | None = None
        self.last_error: BaseException | None = None
        self._saving = ""

        self.layer_list = QListWidget()
        self.chunks = QLineEdit(AUTO)
        self.chunks.setToolTip("inner chunk shape, e.g. 1,256,256 (auto: 256x256 in 2D, "
                               "64-128 cubed in 3D, 1 along c and t)")
        self.shards = QLineEdit(AUTO)
        self.shards.setToolTip("shard shape, a multiple of the chunk shape (auto: ~32 MB)")
        self.codec = QComboBox()
        self.codec.addItems(list(CODECS))
        self.level = QSpinBox()
        self.level.setRange(0, 22)
        self.level.setValue(3)
        self.levels = QSpinBox()
        self.levels.setRange(0, 32)
        self.levels.setSpecialValueText(AUTO)
        self.levels.setToolTip("number of pyramid levels (auto: down to one chunk)")
        self.image_method = QComboBox()
        self.image_method.addItems(list(METHODS))
        self.labels_method = QComboBox()
        self.labels_method.addItems(list(LABEL_METHODS))
        self.path = QLineEdit()
        self.browse = QPushButton("Browse...")
        self.browse.clicked.connect(self._browse)
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")

        form = QFormLayout()
        form.addRow("Chunk shape", self.chunks)
        form.addRow("Shard shape", self.shards)
        form.addRow("Codec", self.codec)
        form.addRow("Codec level", self.level)
        form.addRow("Pyramid levels", self.levels)
        form.addRow("Image downsampling", self.image_method)
        form.addRow("Labels downsampling", self.labels_method)
        out = QHBoxLayout()
        out.addWidget(self.path)
        out.addWidget(self.browse)
        form.addRow("Output", out)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Layers"))
        layout.addWidget(self.layer_list)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        self.left_out = QLabel("")
        self.left_out.setWordWrap(True)
        layout.insertWidget(2, self.left_out)

        # The list follows the viewer's layer list.  Each row holds the layer object itself, so
        # a rename shows at once and a save never goes through a stale name.
        self._rows: list = []  # the layer behind each row of ``layer_list``, in order
        self._checked: dict[int, bool] = {}  # id(layer) -> checked, for layers in the list
        events = self.viewer.layers.events
        events.inserted.connect(self._on_inserted)
        events.removed.connect(self._on_removed)
        events.reordered.connect(self._refresh)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh)
        self._refresh()

    # ------------------------------------------------------------------ layers

    def _on_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh)
        self._refresh()

    def _on_removed(self, event: Any) -> None:
        layer = event.value
        layer.events.name.disconnect(self._refresh)
        was_checked = self._checked.get(id(layer), False) and any(r is layer for r in self._rows)
        self._refresh()
        if was_checked:
            self.status.setText(f"Layer {layer.name!r} was removed from the viewer; "
                                "it is no longer in the export")

    def _remember_checks(self) -> None:
        for i, layer in enumerate(self._rows):
            item = self.layer_list.item(i)
            if item is not None:
                self._checked[id(layer)] = item.checkState() == Qt.CheckState.Checked

    def _refresh(self, event: Any = None) -> None:
        from napari.layers import Image, Labels

        self._remember_checks()
        present = {id(layer) for layer in self.viewer.layers}
        self._checked = {k: v for k, v in self._checked.items() if k in present}
        self.layer_list.clear()
        self._rows = []
        others = []
        for layer in self.viewer.layers:
            if not isinstance(layer, (Image, Labels)):
                others.append(layer)
                continue
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = self._checked.setdefault(id(layer), True)  # a new layer starts checked
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            item.setToolTip(f"{_kind(layer)} layer")
            self.layer_list.addItem(item)
            self._rows.append(layer)
        self.left_out.setText(
            f"Not saved in .ozx: {_describe(others)} ({UNSTORABLE_WHY})" if others else "")
        self.left_out.setVisible(bool(others))

    def selected_layers(self) -> list:
        """The checked layers, in list order (layer objects, never looked up by name)."""
        self._remember_checks()
        return [layer for layer in self._rows if self._checked.get(id(layer), False)]

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export .ozx", self.path.text(),
                                              "Zipped OME-Zarr (*.ozx)")
        if path:
            self.path.setText(path)

    # ------------------------------------------------------------------ running

    def options(self) -> dict:
        levels = self.levels.value()
        return {
            "chunks": parse_shape(self.chunks.text()),
            "shards": parse_shape(self.shards.text()),
            "codec": self.codec.currentText(),
            "level": self.level.value(),
            "pyramid_levels": levels or None,
            "image_method": self.image_method.currentText(),
            "labels_method": self.labels_method.currentText(),
        }

    def start(self) -> Any:
        """Start the export in a worker thread; returns the worker (None if refused)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress
        from napari.utils.notifications import show_error

        if self.worker is not None:
            return None
        path = self.path.text().strip()
        layers = self.selected_layers()
        try:
            if not path:
                raise ValueError("choose an output path")
            if not path.lower().endswith(".ozx"):
                path += ".ozx"
                self.path.setText(path)
            if not layers:
                raise ValueError("select at least one image or labels layer")
            options = self.options()
        except ValueError as e:
            show_error(f"Export .ozx: {e}")
            return None
        vanished = [layer for layer in layers
                    if not any(layer is other for other in self.viewer.layers)]
        if vanished:
            show_error(f"Export .ozx: {_describe(vanished)} left the viewer after it was "
                       "checked; nothing was saved. Check the layers again and export.")
            self._refresh()
            return None
        data = [layer.as_layer_data_tuple() for layer in layers]
        self._saving = _describe(layers)
        self._cancel = threading.Event()
        cancel = self._cancel
        relay = self._relay

        def run() -> str:
            return write_layers(path, data, progress=relay.progressed.emit, cancel=cancel,
                                **options)

        self.last_result = None
        self.last_error = None
        self._pbar = progress(total=0, desc=f"Export {os.path.basename(path)}")
        self.progress.setRange(0, 0)
        self.status.setText(f"Exporting to {path}")
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        # errors are ours to report (a notification), not re-raised in the event loop
        worker = create_worker(run, _start_thread=False, _connect={
            "returned": self._on_done, "errored": self._on_error,
            "finished": self._on_finished})
        self.worker = worker
        worker.start()
        return worker

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.status.setText("Cancelling...")
            self.cancel_button.setEnabled(False)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        if self._pbar is not None:
            if self._pbar.total != total:
                self._pbar.total = total
            self._pbar.update(done - self._pbar.n)

    def _on_done(self, path: str) -> None:
        from napari.utils.notifications import show_info

        self.last_result = path
        self.status.setText(f"Saved {path}: {self._saving}")
        show_info(f"Saved {path}: {self._saving}")

    def _on_error(self, error: BaseException) -> None:
        from napari.utils.notifications import show_error, show_info

        self.last_error = error
        if isinstance(error, WriteCancelled):
            self.status.setText("Cancelled; nothing was written")
            show_info(f"Export cancelled: {error}")
        else:
            self.status.setText(f"Failed: {error}")
            show_error(f"Export .ozx failed: {error}")

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if self.last_result else 0)
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None
        self._cancel = None
