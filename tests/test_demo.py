"""``napari-ozx demo``: writes the sample and shows it in napari (Xvfb when there is no display)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

EXE = [sys.executable, "-m", "napari_ozx.cli"]


def _env_without_display():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    return env


def test_demo_no_gui(tmp_path):
    out = tmp_path / "cells.ozx"
    res = subprocess.run([*EXE, "demo", "--no-gui", "-o", str(out)], capture_output=True,
                         text=True, env=_env_without_display(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout
    assert "['nuclei', 'membrane']" in res.stdout and "masks" in res.stdout
    assert out.read_bytes()[:4] == b"PK\x03\x04"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs the Debian package xvfb")
def test_demo_without_display_saves_a_screenshot(tmp_path):
    from imageio.v3 import imread

    out, shot = tmp_path / "cells.ozx", tmp_path / "shot.png"
    res = subprocess.run([*EXE, "demo", "-o", str(out), "--screenshot", str(shot)],
                         capture_output=True, text=True, env=_env_without_display(), timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"screenshot {shot}" in res.stdout
    rgb = imread(shot)[..., :3].astype(int)
    assert rgb.shape[0] > 200 and rgb.shape[1] > 200
    assert rgb.std() > 10  # not blank
    greenish = (rgb[..., 1] > 120) & (rgb[..., 0] < 80) & (rgb[..., 2] < 80)
    assert greenish.sum() > 1000  # the membrane channel is drawn
