"""The ``napari-ozx`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the back ends are imported by the command that runs (import cost)
    from .tools.pack import Copied


def _demo(args: argparse.Namespace) -> int:
    """Write the sample ``.ozx`` and open it in napari (under Xvfb when there is no display)."""
    from ._demo import run
    from .errors import OzxError

    try:
        return run(args.output, screenshot=args.screenshot, no_gui=args.no_gui,
                   force=args.force)
    except (OzxError, OSError) as e:  # a user's error (where to write): a message, no traceback
        return _fail(e)


class _Progress:
    """A tqdm byte progress bar (shown on a terminal only, unless ``--progress``)."""

    def __init__(self, desc: str, enabled: bool | None):
        self.desc = desc
        self.enabled = enabled
        self.bar = None

    def start(self, files: int, total: int) -> None:
        from tqdm import tqdm

        disable = (not sys.stderr.isatty()) if self.enabled is None else not self.enabled
        self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=f"{self.desc} {files} files", disable=disable, file=sys.stderr)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fail(e: Exception) -> int:
    print(f"napari-ozx: error: {e}", file=sys.stderr)
    return 2


def _info(args: argparse.Namespace) -> int:
    import json

    from .errors import OzxError
    from .tools.info import describe, format_description

    status = 0
    docs = []
    for path in args.archives:
        try:
            d = describe(path)
        except OzxError as e:
            status = _fail(e)
            continue
        docs.append(d)
        if not args.json:
            print(format_description(d))
    if args.json:
        print(json.dumps(docs[0] if len(args.archives) == 1 and docs else docs, indent=2))
    return status


def _validate(args: argparse.Namespace) -> int:
    import json

    from .tools.validate import validate

    reports = []
    status = 0
    for path in args.archives:
        bar = _Progress("checking CRC-32 of", args.progress) if args.crc else None
        if bar is not None:
            import os

            bar.start(1, os.path.getsize(path) if os.path.isfile(path) else 0)
        try:
            report = validate(path, crc=args.crc, many_chunks=args.many_chunks, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        reports.append(report)
        ok = report.ok(strict=args.strict)
        status = status or (0 if ok else 1)
        if not args.json:
            verdict = "OK" if ok else "FAILED"
            print(f"{path}: {verdict} ({len(report.errors)} errors, "
                  f"{len(report.warnings)} warnings)")
            for f in report.findings:
                print(f"  {f}")
    if args.json:
        docs = []
        for r in reports:
            d = r.to_dict()
            d["ok"] = r.ok(strict=args.strict)
            docs.append(d)
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
    return status


def _copy(args: argparse.Namespace, desc: str, run: Callable[[_Progress], Copied],
          done: Callable[[Copied], str]) -> int:
    """Run a pack or an unpack with a progress bar; print ``done(result)``."""
    from .errors import OzxError

    bar = _Progress(desc, args.progress)
    try:
        result = run(bar)
    except (OzxError, OSError) as e:  # a user's error (where to write): a message, no traceback
        return _fail(e)
    finally:
        bar.close()
    print(done(result))
    return 0


def _pack(args: argparse.Namespace) -> int:
    from .tools.pack import pack

    return _copy(args, "packing",
                 lambda bar: pack(args.directory, args.archive, overwrite=args.force,
                                  progress=bar),
                 lambda r: f"wrote {args.archive}: {r.entries} entries, {r.nbytes} bytes of data")


def _unpack(args: argparse.Namespace) -> int:
    from .tools.pack import unpack

    return _copy(args, "unpacking",
                 lambda bar: unpack(args.archive, args.directory, force=args.force, progress=bar),
                 lambda r: f"unpacked {r.entries} entries ({r.nbytes} bytes) into {args.directory}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="napari-ozx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="write a sample archive and show it in napari")
    p.add_argument("-o", "--output", help="where to write the sample archive")
    p.add_argument("--force", action="store_true", help="replace an existing OUTPUT")
    p.add_argument("--screenshot", metavar="PATH",
                   help="save a PNG of the viewer (default without a display: beside the archive)")
    p.add_argument("--no-gui", action="store_true",
                   help="only write the archive and print the layers napari would get")
    p.set_defaults(func=_demo)

    progress = argparse.ArgumentParser(add_help=False)
    g = progress.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show a progress bar even when stderr is not a terminal")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="never show a progress bar")

    p = sub.add_parser("info", help="what an archive holds (reads only its metadata)")
    p.add_argument("archives", nargs="+", metavar="ARCHIVE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_info)

    p = sub.add_parser("validate", parents=[progress],
                       help="RFC-9 conformance report; exit 1 when an archive has errors")
    p.add_argument("archives", nargs="+", metavar="ARCHIVE")
    p.add_argument("--crc", action="store_true", help="re-read all data and check CRC-32")
    p.add_argument("--strict", action="store_true", help="warnings count as errors")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--many-chunks", type=int, default=1024, metavar="N",
                   help="warn about unsharded arrays of more than N chunks (default 1024)")
    p.set_defaults(func=_validate)

    p = sub.add_parser("pack", parents=[progress],
                       help="an OME-Zarr 0.5 directory to an .ozx archive (no re-encoding)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("archive", metavar="ARCHIVE")
    p.add_argument("--force", action="store_true", help="replace an existing ARCHIVE")
    p.set_defaults(func=_pack)

    p = sub.add_parser("unpack", parents=[progress], help="an archive to a directory")
    p.add_argument("archive", metavar="ARCHIVE")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--force", action="store_true", help="unpack into a non-empty DIR")
    p.set_defaults(func=_unpack)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `napari-ozx info x.ozx | head`: the reader left, nothing is wrong
        # Python would report the pipe again when it flushes stdout at exit: point it elsewhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
