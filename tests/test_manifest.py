"""The plugin manifest as napari's plugin engine and the napari hub see it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

from npe2 import PluginManifest


def test_npe2_validate_accepts_the_installed_manifest():
    # The command plugin authors run: it finds the manifest through the installed entry point,
    # checks it against npe2's schema and (--imports) imports every python_name it names.
    run = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-ozx", "--imports"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "valid" in run.stdout


def test_manifest_is_public_and_listed_under_io_and_dataset():
    manifest = PluginManifest.from_distribution("napari-ozx")
    assert manifest.visibility == "public"
    assert [str(c) for c in manifest.categories] == ["IO", "Dataset"]


def test_version_is_the_installed_one():
    import napari_ozx

    # pyproject.toml's version, as pip installed it (it was a hard-coded "0.0.0")
    assert napari_ozx.__version__ == version("napari-ozx")
    assert napari_ozx.__version__ not in ("0.0.0", "0.0.0+unknown")
    assert PluginManifest.from_distribution("napari-ozx").package_version == napari_ozx.__version__
