"""What the save benchmarks share: the best of fresh worker processes, a strict validation, and
fsync of what a run wrote (so the time counts the bytes reaching the disk)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: str) -> None:
    """Remove an output (an archive or a directory) if it exists."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)


def best_of(script: str, args: list[str], out: str, repeat: int, label: str) -> dict | None:
    """Run ``python script *args`` ``repeat`` times, each in a fresh process after removing
    ``out``; the result (the JSON its last line prints) of the fastest run, or None (said)
    when a run fails."""
    best = None
    for _ in range(repeat):
        remove(out)
        proc = subprocess.run([sys.executable, os.path.abspath(script), *args],
                              capture_output=True, text=True)
        if proc.returncode:
            print(f"{label}: failed\n{proc.stderr[-3000:]}")
            return None
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    return best


def validate_strict(path: str) -> None:
    """``napari-ozx validate --strict`` passes on ``path``, or the benchmark stops."""
    rc = subprocess.call([sys.executable, "-m", "napari_ozx.cli", "validate", "--strict",
                          "--no-progress", path], stdout=subprocess.DEVNULL)
    if rc:
        raise SystemExit(f"napari-ozx validate --strict failed on {path}")
