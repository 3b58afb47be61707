"""Hypothesis mutates valid archives (bit flips, truncations, zeroed runs, garbage runs) and accepts
only correct data, ``None`` for a name that no longer exists, or an OzxError naming the archive -
never another exception type, never a hang."""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archives
from archives import CountingSource
from napari_ozx import OzxError, OzxStore, OzxWarning
from napari_ozx.zip import ZipArchive


def _bases() -> dict[str, tuple[bytes, dict[str, bytes], tuple[int, int]]]:
    """name -> (archive bytes, {entry: bytes}, (central directory start, end))."""
    out = {}
    tmp = Path(tempfile.mkdtemp(prefix="ozx-fuzz-"))
    entries = list(archives.many_entries(9))
    entries.append(("big/blob", bytes(range(256)) * 40))
    files = dict(entries)

    p = archives.write_raw_zip(tmp / "z64.ozx", entries, zip64=True)  # jsonFirst, ZIP64 always
    out["raw-zip64-jsonfirst"] = p
    p = tmp / "deflated.zip"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in entries:
            zf.writestr(zipfile.ZipInfo(n, (2024, 1, 1, 0, 0, 0)), d, zipfile.ZIP_DEFLATED)
        zf.comment = archives.COMMENT_PLAIN
    out["stdlib-deflated"] = p
    p = tmp / "stored.zip"
    with zipfile.ZipFile(p, "w") as zf:
        for n, d in entries:
            zf.writestr(zipfile.ZipInfo(n, (2024, 1, 1, 0, 0, 0)), d)
    out["stdlib-stored-nocomment"] = p
    res = {}
    for k, p in out.items():
        lay = archives.layout(p)
        res[k] = (p.read_bytes(), files, (lay.cd_offset, lay.size))
    return res


BASES = _bases()


def _mutations(size: int):
    pos = st.integers(0, size - 1)
    return st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("truncate"), st.integers(0, size - 1), st.just(0)),
        # zeroed runs stay at most 8 bytes: 12 zeros over CRC + sizes would make a valid empty
        # entry, indistinguishable from one written that way.
        st.tuples(st.just("zero"), pos, st.integers(1, 8)),
        st.tuples(st.just("ff"), pos, st.integers(1, 64)),
        st.tuples(st.just("tail-flip"), st.integers(1, min(size, 200)), st.integers(0, 7)),
    )


def _apply(raw: bytes, mutation) -> tuple[bytes, int, int]:
    """Mutated bytes and the [start, end) of the bytes that changed."""
    kind, a, b = mutation
    buf = bytearray(raw)
    if kind == "flip":
        buf[a] ^= 1 << b
        return bytes(buf), a, a + 1
    if kind == "tail-flip":
        i = len(buf) - a
        buf[i] ^= 1 << b
        return bytes(buf), i, i + 1
    if kind == "truncate":
        return bytes(buf[:a]), a, len(raw)
    end = min(len(buf), a + b)
    buf[a:end] = (b"\0" if kind == "zero" else b"\xff") * (end - a)
    return bytes(buf), a, end


def _exercise(path: Path, files: dict[str, bytes], touched_directory: bool,
              remote_like: bool = False):
    allowed = set(files.values())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OzxWarning)
            # remote-like: a source that is not cheap to scan (the paths HTTP/S3 take:
            # no raw-byte scans, data offsets inferred from the directory)
            arch = ZipArchive(CountingSource(path, cheap_scan=False) if remote_like else path)
            for name, data in files.items():
                try:
                    got = arch.read(name)
                except OzxError as e:
                    assert str(path) in str(e)
                    continue
                if got is None:
                    continue
                if touched_directory:
                    # a flipped name may now be a duplicate that (last one winning) answers
                    # with another entry's (CRC-valid) bytes
                    assert got in allowed, name
                else:
                    assert got == data, name
            names = list(arch.names())
            for name in names[:20]:
                try:
                    got = arch.read(name)
                    assert isinstance(got, bytes)
                    if not touched_directory:
                        assert got == files[name]
                except OzxError as e:
                    assert str(path) in str(e)
            store = OzxStore(arch)
            for name in names[:5]:
                try:
                    store.get_sync(name)
                except OzxError:
                    pass
    except OzxError as e:
        assert str(path) in str(e)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("source", ["local", "remote-like"])
@pytest.mark.parametrize("base", sorted(BASES))
def test_mutated_archives_give_right_bytes_or_ozx_error(base, source, tmp_path_factory):
    raw, files, (cd_start, end) = BASES[base]
    work = tmp_path_factory.mktemp("fuzz") / "m.ozx"

    @settings(max_examples=200, deadline=2000, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(_mutations(len(raw)))
    def check(mutation):
        runs.append(mutation)
        data, lo, hi = _apply(raw, mutation)
        work.write_bytes(data)
        touched = hi > cd_start  # the directory or the end records changed
        _exercise(work, files, touched, remote_like=source == "remote-like")

    runs = []
    check()
    assert len(runs) >= 150, len(runs)  # the mutations really ran
    assert len({m[0] for m in runs}) == 5  # every kind of mutation
