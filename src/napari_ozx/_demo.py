"""``napari-ozx demo``: write the sample ``.ozx`` and show it in napari.

With a display, napari's window opens and its event loop runs.  Without one (``DISPLAY`` unset)
an ``Xvfb`` server is started for the duration, the window is shown there, a screenshot PNG is
saved and its path printed.  ``--no-gui`` only writes the archive and prints what napari would
get from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def virtual_display(size: str = "1280x1024x24"):
    """Run an Xvfb server and point ``DISPLAY`` at it for the duration."""
    exe = shutil.which("Xvfb")
    if exe is None:
        raise RuntimeError("no display and no Xvfb: install the Debian package 'xvfb' "
                           "or run with --no-gui")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(write_fd), "-screen", "0", size, "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        saved = {k: os.environ.get(k) for k in ("DISPLAY", "QT_QPA_PLATFORM")}
        os.environ["DISPLAY"] = f":{number}"
        os.environ["QT_QPA_PLATFORM"] = "xcb"  # "offscreen" cannot draw image layers
        try:
            yield os.environ["DISPLAY"]
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _summary(path: Path) -> list[str]:
    from ._reader import read_ozx

    lines = []
    for data, kwargs, kind in read_ozx(str(path)):
        levels = data if isinstance(data, list) else [data]
        shapes = [tuple(a.shape) for a in levels]
        lines.append(f"  {kind:6s} {kwargs.get('name')!s:30s} levels={shapes}")
    return lines


def _show(path: Path, screenshot: Path | None, *, event_loop: bool) -> Path | None:
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True, title=f"napari-ozx demo: {path.name}")
    try:
        viewer.open(str(path), plugin=None)  # no plugin named: napari picks ours
        viewer.reset_view()
        for _ in range(5):
            QApplication.processEvents()
        if screenshot is not None:
            viewer.screenshot(path=str(screenshot), canvas_only=True, flash=False)
        if event_loop:
            napari.run()
    finally:
        if not event_loop:
            viewer.close()
    return screenshot


def run(output: str | None = None, screenshot: str | None = None, no_gui: bool = False,
        force: bool = False) -> int:
    from ._sample_data import write_sample
    from .errors import OzxError, WriteError
    from .zip.writer import os_reason

    out = Path(output) if output else Path(tempfile.mkdtemp(prefix="napari-ozx-")) / "cells.ozx"
    if out.exists() and not force:
        raise OzxError("exists; use --force to replace it", archive=str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(f"cannot create its directory: {os_reason(e)}", archive=str(out),
                         errno=e.errno) from e
    write_sample(out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    if no_gui:
        print("napari would show:")
        print("\n".join(_summary(out)))
        return 0
    shot = Path(screenshot) if screenshot else None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        _show(out, shot, event_loop=True)
        if shot is not None:
            print(f"screenshot {shot}")
        return 0
    shot = shot or out.with_name(out.stem + "-screenshot.png")
    # Qt keeps its X connection until the process ends: show the window in a child process,
    # so the Xvfb server is stopped only after Qt is gone.
    with virtual_display():
        rc = subprocess.run(
            [sys.executable, "-m", "napari_ozx._demo", str(out), str(shot)], env=os.environ.copy()
        ).returncode
    if rc != 0 or not shot.exists():
        print(f"napari could not show {out} (exit status {rc})", file=sys.stderr)
        return rc or 1
    print(f"screenshot {shot}")
    return 0


if __name__ == "__main__":  # the child process of run(): show, save a screenshot, exit
    _show(Path(sys.argv[1]), Path(sys.argv[2]), event_loop=False)
