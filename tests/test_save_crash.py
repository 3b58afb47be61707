"""No litter after a crash (issue 13, item 5): a save killed with SIGKILL while it writes data,
while it writes the central directory, or just before its rename leaves the destination
byte-identical to before, and the next save to the same place leaves nothing beside it.

The save runs in a child process; a patch in the child stops it at the chosen point (it prints
``PAUSED`` and sleeps) and the test kills it there with ``kill -9``.  ``named`` runs the same
with the fallback for file systems without ``O_TMPFILE`` (a named temporary from the start).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from napari_ozx import open_ozx, write_ozx

CHILD = textwrap.dedent('''
    import os, sys, time
    import numpy as np
    import napari_ozx.zip.destination as D
    import napari_ozx.zip.writer as W
    from napari_ozx import write_ozx

    dest, point, mode = sys.argv[1:4]

    def pause():
        print("PAUSED", flush=True)
        time.sleep(120)

    if mode == "named":
        D._open_unnamed = lambda directory: -1
    if point == "data":
        real, calls = W.pwrite_all, [0]
        def pwrite(fd, data, pos):
            n = real(fd, data, pos)
            calls[0] += 1
            if calls[0] == 6:
                os.fsync(fd)
                pause()
            return n
        W.pwrite_all = pwrite
    elif point == "central":
        real_end = W.records.pack_end_records
        def end(**kw):
            pause()
        W.records.pack_end_records = end
    elif point == "rename":
        real_replace = os.replace
        def replace(src, dst, *a, **kw):
            if os.fspath(dst) == dest:
                pause()
            return real_replace(src, dst, *a, **kw)
        os.replace = replace
    pixels = np.random.default_rng(5).integers(0, 4000, (512, 512), dtype=np.uint16)
    write_ozx(dest, pixels, axes="yx", chunks=(64, 64), shards=(128, 128))
    print("FINISHED", flush=True)
''')


def _kill_at(dest, point, mode) -> int:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(dest), point, mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip() in ("PAUSED", "FINISHED") or not line:
                break
        assert line.strip() == "PAUSED", (line, proc.stderr.read() if not line else "")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return proc.pid


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["unnamed", "named"])
@pytest.mark.parametrize("point", ["data", "central", "rename"])
def test_a_killed_save_leaves_the_destination_as_it_was_and_no_litter(tmp_path, point, mode):
    dest = tmp_path / "x.ozx"
    before = np.arange(100 * 120, dtype="uint16").reshape(100, 120)
    write_ozx(dest, before, axes="yx")
    original = dest.read_bytes()
    pid = _kill_at(dest, point, mode)
    assert dest.read_bytes() == original  # byte for byte
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "x.ozx")
    if mode == "unnamed" and point != "rename":
        assert left == []  # an unnamed temporary dies with its process
    else:  # a named temporary of the dead process: ours to remove at the next save
        assert len(left) == 1 and left[0].startswith(f".x.ozx.{pid}."), left
    np.testing.assert_array_equal(open_ozx(dest)["0"][...], before)
    after = np.full((64, 64), 7, dtype="uint16")
    write_ozx(dest, after, axes="yx")  # the next save
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ozx"]
    np.testing.assert_array_equal(open_ozx(dest)["0"][...], after)


def test_a_live_saves_temporary_is_left_alone(tmp_path):
    """Another process saving to the same place right now keeps its temporary file."""
    from napari_ozx.zip.destination import remove_stale_temporaries

    dest = tmp_path / "x.ozx"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".x.ozx.{sleeper.pid}.7f00aa.tmp"
        live.write_bytes(b"partial")
        other = tmp_path / ".y.ozx.1.7f00aa.tmp"  # another destination's: not ours
        other.write_bytes(b"partial")
        assert remove_stale_temporaries(dest) == []
        assert live.exists() and other.exists()
    finally:
        sleeper.kill()
        sleeper.wait(10)
    assert remove_stale_temporaries(dest) == [str(live)]
    assert other.exists()
