"""Run the benchmarks, each printing its table of ratios against the peers measured in the same run.

    python benchmarks/run.py                 # all of them (long: tens of minutes, GBs under /tmp)
    python benchmarks/run.py read pack       # some of them
    python benchmarks/run.py --small         # quick sizes

Data sets are cached under $OZX_BENCH_DIR (default /tmp/napari-ozx-bench).
"""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ALL = ["read", "pack", "napari", "remote", "write"]


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")] or ALL
    status = 0
    for name in names:
        script = os.path.join(HERE, f"bench_{name}.py")
        if not os.path.exists(script):
            print(f"## {name}: no benchmark yet ({script})\n", flush=True)
            continue
        print(f"## {name}\n", flush=True)
        rc = subprocess.call([sys.executable, script, *flags])
        status = status or rc
        print(flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
