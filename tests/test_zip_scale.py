"""Scale: the index of a 2-million-entry archive stays small and linear in memory, and lookups
work.  Each measurement runs in a fresh interpreter (psutil / getrusage), so the test process's own
memory does not blur it.  (10 million entries were measured by hand: see the lead's report.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

_WRITE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import archives
    archives.many_entry_archive({path!r}, {n})
    """
)

_MEASURE = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, {tests!r})
    import psutil
    import archives
    from napari_ozx.zip import ZipArchive
    n = {n}
    proc = psutil.Process()

    def hwm():
        # The high-water mark of this process image: VmHWM (ru_maxrss would also count the
        # parent's memory when the child was forked from a big test process).
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    base = proc.memory_info().rss
    t = time.perf_counter()
    arch = ZipArchive({path!r})
    t_open = time.perf_counter() - t
    rss_open = proc.memory_info().rss - base
    t = time.perf_counter()
    index = arch.full_index()
    t_full = time.perf_counter() - t
    peak = hwm() - base
    rows = [0, 1, n // 3, n // 2, n - 3]
    ok = all(arch.read(f"a/c/{{i}}/0") == archives.many_row(i).tobytes() for i in rows)
    ok = ok and arch.read("a/c/{{}}/0".format(n)) is None and arch.read("zarr.json") is not None
    print(json.dumps(dict(entries=len(index), t_open=t_open, t_full=t_full, rss_open=rss_open,
                          peak=peak, ok=ok)))
    """
)


def _run(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _measure(tmp: Path, n: int) -> dict:
    path = str(tmp / f"entries-{n}.ozx")
    _run(_WRITE.format(tests=str(HERE), path=path, n=n))
    out = json.loads(_run(_MEASURE.format(tests=str(HERE), path=path, n=n)).splitlines()[-1])
    Path(path).unlink()
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_million_entries_index_is_small_and_linear(tmp_path):
    small = _measure(tmp_path, 200_000)
    big = _measure(tmp_path, 2_000_000)
    for m, n in ((small, 200_000), (big, 2_000_000)):
        assert m["ok"], m
        assert m["entries"] == n
        # jsonFirst: opening decodes only the metadata prefix
        assert m["rss_open"] < 20 * 2**20, m
        assert m["t_open"] < 0.5, m
    # The whole index: columns + packed names, well under 130 bytes an entry at its peak
    per_entry = big["peak"] / 2_000_000
    assert per_entry < 130, big
    # and linear: ten times the entries costs about ten times the memory, not more
    assert big["peak"] < 12 * max(small["peak"], 1), (small, big)
    print(f"2M entries: full index {big['t_full']:.2f} s, peak +{big['peak'] / 2**20:.0f} MiB "
          f"({per_entry:.0f} B/entry); open {big['t_open'] * 1e3:.1f} ms")
