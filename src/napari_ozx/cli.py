"""The ``napari-ozx`` command line."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    """Write a small sample archive and print its hierarchy read back through ``open_ozx``."""
    import tempfile
    import os
    import zipfile

    import numpy as np
    import zarr

    from . import open_ozx

    out = args.output or os.path.join(tempfile.mkdtemp(prefix="napari-ozx-"), "sample.zip")
    with tempfile.TemporaryDirectory() as d:
        g = zarr.open_group(d, mode="w")
        a = g.create_array("0", shape=(256, 256), chunks=(64, 64), shards=(128, 128), dtype="uint16")
        a[:] = np.arange(256 * 256, dtype="uint16").reshape(256, 256)
        with zipfile.ZipFile(out, "w") as z:
            for root, _, files in os.walk(d):
                for f in sorted(files):
                    p = os.path.join(root, f)
                    z.write(p, os.path.relpath(p, d))
    grp = open_ozx(out)
    print(f"wrote {out}")
    print(grp.tree())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="napari-ozx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="write a sample archive and show it")
    p.add_argument("-o", "--output", help="where to write the sample archive")
    p.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
