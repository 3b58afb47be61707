"""Benchmark data sets, made once under a cache directory and reused."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np

from napari_ozx.zip import records

CACHE = Path(os.environ.get("OZX_BENCH_DIR", "/tmp/napari-ozx-bench"))

JSON_FIRST_COMMENT = json.dumps(
    {"ome": {"version": "0.5", "zipFile": {"centralDirectory": {"jsonFirst": True}}}},
    separators=(",", ":"),
).encode()


def _root_meta(n_rows: int) -> dict:
    return {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {
            "ome": {
                "version": "0.5",
                "multiscales": [
                    {
                        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
                        "datasets": [
                            {
                                "path": "0",
                                "coordinateTransformations": [
                                    {"type": "scale", "scale": [1.0, 1.0]}
                                ],
                            }
                        ],
                    }
                ],
            }
        },
    }


def _array_meta(n_rows: int) -> dict:
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [n_rows, 16],
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 16]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "dimension_names": ["y", "x"],
    }


def many_entries_archive(n_entries: int) -> Path:
    """A jsonFirst, STORED archive: root ``zarr.json``, ``0/zarr.json`` and chunk entries.

    Written record by record (the stdlib would take minutes for a million entries).
    """
    path = CACHE / f"entries-{n_entries}.ozx"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    n_rows = n_entries - 2
    tmp = path.with_suffix(".tmp")
    central = []
    with open(tmp, "wb") as f:
        def add(name: str, data: bytes):
            nb = name.encode()
            crc = zlib.crc32(data)
            off = f.tell()
            f.write(
                records.pack_local_header(
                    nb, method=0, crc32=crc, compressed_size=len(data),
                    uncompressed_size=len(data), version_needed=20,
                )
            )
            f.write(data)
            central.append(
                records.pack_central_header(
                    nb, method=0, crc32=crc, compressed_size=len(data),
                    uncompressed_size=len(data), local_header_offset=off,
                    version_made_by=(3 << 8) | 20, version_needed=20,
                )
            )

        add("zarr.json", json.dumps(_root_meta(n_rows)).encode())
        add("0/zarr.json", json.dumps(_array_meta(n_rows)).encode())
        row = np.arange(16, dtype="<u2")
        for i in range(n_rows):
            add(f"0/c/{i}/0", (row + (i & 0xFF)).tobytes())
        cd_offset = f.tell()
        cd = b"".join(central)
        f.write(cd)
        zip64 = n_entries > 0xFFFF or cd_offset > 0xFFFFFFFF
        f.write(
            records.pack_end_records(
                entries=n_entries, cd_offset=cd_offset, cd_size=len(cd),
                comment=JSON_FIRST_COMMENT, zip64=zip64,
            )
        )
    os.replace(tmp, path)
    return path


def many_entries_directory(n_entries: int) -> Path:
    """The same hierarchy as :func:`many_entries_archive`, as a directory."""
    path = CACHE / f"entries-{n_entries}.zarr"
    if (path / ".done").exists():
        return path
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    n_rows = n_entries - 2
    (path / "0" / "c").mkdir(parents=True)
    (path / "zarr.json").write_text(json.dumps(_root_meta(n_rows)))
    (path / "0" / "zarr.json").write_text(json.dumps(_array_meta(n_rows)))
    row = np.arange(16, dtype="<u2")
    for i in range(n_rows):
        d = path / "0" / "c" / str(i)
        d.mkdir()
        (d / "0").write_bytes((row + (i & 0xFF)).tobytes())
    (path / ".done").write_text("")
    return path


def image_volume(shape=(32, 2048, 2048)) -> np.ndarray:
    """A smooth uint16 volume with noise: compresses like a microscope image (about 2-3x)."""
    rng = np.random.default_rng(0)
    z, y, x = shape
    yy = np.linspace(0, 8 * np.pi, y, dtype=np.float32)[:, None]
    xx = np.linspace(0, 8 * np.pi, x, dtype=np.float32)[None, :]
    out = np.empty(shape, dtype=np.uint16)
    for k in range(z):
        base = 1000 + 800 * np.sin(yy + k / 5) * np.cos(xx - k / 7)
        out[k] = (base + rng.normal(0, 40, (y, x))).clip(0, 65535).astype(np.uint16)
    return out


def sharded_dataset(sharded: bool, shape=(32, 2048, 2048)) -> tuple[Path, Path]:
    """(directory, stored zip) of one zstd uint16 array, sharded or not."""
    import zipfile

    import zarr
    from zarr.codecs import ZstdCodec

    tag = "sharded" if sharded else "unsharded"
    tag += "-" + "x".join(map(str, shape))
    d = CACHE / f"{tag}.zarr"
    z = CACHE / f"{tag}.zip"
    if not (d / ".done").exists():
        import shutil

        shutil.rmtree(d, ignore_errors=True)
        arr = zarr.create_array(
            str(d),
            shape=shape,
            chunks=(1, 512, 512),
            shards=(8, 2048, 2048) if sharded else None,
            dtype="uint16",
            compressors=ZstdCodec(level=3),
            zarr_format=3,
        )
        arr[:] = image_volume(shape)
        (d / ".done").write_text("")
    if not z.exists():
        tmp = z.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            files = sorted(
                (os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs),
                key=lambda n: (not n.endswith("zarr.json"), n.count("/"), n),
            )
            for name in files:
                if name == ".done":
                    continue
                zf.write(d / name, name)
        os.replace(tmp, z)
    return d, z
