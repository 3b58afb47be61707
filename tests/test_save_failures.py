"""Every failure names what failed (issue 13, item 4): a full disk, a read-only or missing
directory, a directory in the way - for a save, ``unpack`` and ``demo`` - as our error type,
with the destination in the message, the destination as it was and nothing beside it.

A full disk is a real one: a 2 MiB tmpfs mounted for the test (CI runs as root).  Where mount
is not allowed, the same tests run against a pwrite/write that fails with ENOSPC once the same
2 MiB are written (the failure the kernel gives), so they hold either way.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid

import pytest

from helpers import random_pixels, run_cli
from napari_ozx import write_ozx
from napari_ozx.errors import OzxError, WriteError

CAPACITY = 2 << 20


def _mount(path, *options) -> bool:
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@pytest.fixture()
def full_disk(tmp_path, monkeypatch):
    """A directory on a file system that holds only CAPACITY bytes."""
    d = tmp_path / "small"
    d.mkdir()
    if _mount(d, f"size={CAPACITY}"):
        yield d
        subprocess.run(["umount", "-l", str(d)], check=False)
        return
    budget = [CAPACITY]  # no mount here: the kernel's ENOSPC, by hand
    real_pwrite, real_write = os.pwrite, os.write

    def charge(fd, n):
        try:
            inside = os.path.realpath(f"/proc/self/fd/{fd}").startswith(str(d))
        except OSError:
            inside = False
        if inside:
            if budget[0] < n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget[0] -= n

    monkeypatch.setattr(os, "pwrite", lambda fd, b, pos: (charge(fd, len(b)),
                                                          real_pwrite(fd, b, pos))[1])
    monkeypatch.setattr(os, "write", lambda fd, b: (charge(fd, len(memoryview(b))),
                                                    real_write(fd, b))[1])
    yield d


def _noise(shape, seed=0):  # incompressible: the archive is as big as the pixels
    return random_pixels(shape, seed=seed, high=65535)


def test_a_save_onto_a_full_disk_names_the_destination_and_the_size(full_disk):
    dest = full_disk / "x.ozx"
    write_ozx(dest, _noise((64, 64)), axes="yx")  # a small archive already there
    before = dest.read_bytes()
    with pytest.raises(WriteError) as info:
        write_ozx(dest, _noise((1024, 1024), 1), axes="yx", chunks=(256, 256))
    e = info.value
    assert isinstance(e, OzxError) and isinstance(e, OSError) and e.errno == errno.ENOSPC
    msg = str(e)
    assert str(dest) in msg and "no space left on the device" in msg
    assert "MiB" in msg or "bytes" in msg  # how much was being written, and where
    assert dest.read_bytes() == before
    assert sorted(p.name for p in full_disk.iterdir()) == ["x.ozx"]


def test_a_save_into_a_missing_directory_or_onto_a_directory_says_so(tmp_path):
    with pytest.raises(WriteError, match="the directory does not exist") as info:
        write_ozx(tmp_path / "nowhere" / "x.ozx", _noise((32, 32)), axes="yx")
    assert str(tmp_path / "nowhere" / "x.ozx") in str(info.value)
    (tmp_path / "x.ozx").mkdir()
    with pytest.raises(WriteError, match="a directory is in the way") as info:
        write_ozx(tmp_path / "x.ozx", _noise((32, 32)), axes="yx")
    assert str(tmp_path / "x.ozx") in str(info.value) and ".tmp" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ozx"]
    assert os.listdir(tmp_path / "x.ozx") == []


@pytest.fixture()
def read_only_dir(tmp_path, monkeypatch):
    """A directory on a read-only mount; where mount is not allowed, the kernel's EROFS for
    anything created inside it, by hand (root ignores permission bits)."""
    d = tmp_path / "ro"
    d.mkdir()
    if _mount(d, "size=1m", "ro"):
        yield d
        subprocess.run(["umount", "-l", str(d)], check=False)
        return
    real_open, real_mkdir = os.open, os.mkdir

    def inside(path) -> bool:
        return os.path.abspath(os.fspath(path)).startswith(str(d))

    def fake_open(path, flags, *a, **kw):
        if inside(path) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *a, **kw)

    def fake_mkdir(path, *a, **kw):
        if inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_mkdir(path, *a, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    yield d


def test_a_save_into_a_read_only_directory_says_so(read_only_dir):
    dest = read_only_dir / "x.ozx"
    with pytest.raises(WriteError, match="read-only|permission denied") as info:
        write_ozx(dest, _noise((32, 32)), axes="yx")
    assert str(dest) in str(info.value)
    assert os.listdir(read_only_dir) == []


def test_unpack_onto_a_full_disk_leaves_no_partial_tree(full_disk, tmp_path, capsys):
    src = tmp_path / "big.ozx"
    write_ozx(src, _noise((1024, 1024), 2), axes="yx", chunks=(128, 128), shards=(256, 256))
    assert src.stat().st_size > CAPACITY
    code, out, err = run_cli(capsys, "unpack", "--no-progress", src, full_disk / "out")
    assert code != 0
    assert "Traceback" not in err and str(full_disk / "out") in err
    assert "no space left on the device" in err
    assert os.listdir(full_disk) == []  # no partial tree, no temporary
    # into an existing non-empty directory (--force): what it created is removed again
    keep = full_disk / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    code, out, err = run_cli(capsys, "unpack", "--no-progress", "--force", src, keep)
    assert code != 0 and "no space left on the device" in err
    assert sorted(os.listdir(keep)) == ["notes.txt"]
    assert (keep / "notes.txt").read_text() == "mine"


def test_unpack_that_fits_is_complete(tmp_path, capsys):
    src = tmp_path / "a.ozx"
    write_ozx(src, _noise((128, 128)), axes="yx")
    out = tmp_path / "out"
    out.mkdir()  # an empty directory is replaced by the complete tree
    code, _, err = run_cli(capsys, "unpack", "--no-progress", src, out)
    assert code == 0, err
    assert (out / "zarr.json").is_file() and (out / "0" / "zarr.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ozx", "out"]


def test_demo_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "x.ozx"
    out.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "demo", "--no-gui", "-o", out)
    assert code == 2 and "exists; use --force" in err and "Traceback" not in err
    assert out.read_bytes() == b"precious"
    code, stdout, err = run_cli(capsys, "demo", "--no-gui", "--force", "-o", out)
    assert code == 0, err
    assert out.read_bytes()[:2] == b"PK"


def test_demo_into_a_read_only_directory_is_a_message_not_a_traceback(read_only_dir, capsys):
    out = read_only_dir / f"{uuid.uuid4().hex}.ozx"
    for target in (out, read_only_dir / "sub" / "x.ozx"):
        code, _, err = run_cli(capsys, "demo", "--no-gui", "-o", target)
        assert code == 2, err
        assert "Traceback" not in err
        assert str(target) in err and ("read-only" in err or "permission denied" in err)
    assert os.listdir(read_only_dir) == []
