"""Encoded chunks -> shards -> archive entries (napari_ozx.save.collector.ShardCollector): level-0
shards reach the archive in visit order whatever order their chunks come in, the one whose
turn it is streams into an open entry, the others wait (in a spill file) until it is committed,
and a shard of fill value only is counted but never written."""

from __future__ import annotations

import io

import dask
import dask.array as da
import numpy as np

from napari_ozx import open_ozx, write_ozx
from napari_ozx.save.collector import ShardCollector
from napari_ozx.save.encoder import ShardEncoder


class _Entry(io.BytesIO):
    """An open archive entry: bytes appended at its end, recorded when committed."""

    def __init__(self, writer, name):
        super().__init__()
        self.writer, self.name = writer, name

    def append(self, b):
        at = self.seek(0, io.SEEK_END)
        self.write(b)
        return at

    def commit(self):
        self.writer.events.append(("commit", self.name))
        self.writer.entries[self.name] = self.getvalue()


class _Writer:
    """What the collector asks of the archive writer, recorded in order."""

    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self.entries: dict[str, bytes] = {}

    def open_entry(self, name):
        self.events.append(("open", name))
        return _Entry(self, name)

    def write_stream(self, name, blocks, size):
        data = b"".join(bytes(b) for b in blocks)
        assert len(data) == size
        self.events.append(("write", name))
        self.entries[name] = data


def _encoder():
    # three shards of 2 x 2 inner chunks along y
    return ShardEncoder(shard_shape=(4, 4), chunk_shape=(2, 2), shape=(12, 4), dtype="uint8",
                        fill_value=0, codecs=[], index_crc32c=True, index_at_start=False)


def _chunks_of(encoder, pixels, shard):
    """The encoded chunks of one shard, in zarr's order inside it (then a streamed shard has
    the bytes of a held one)."""
    region = encoder.shard_region(shard)
    by_index = dict(encoder.encode_box(region, pixels[tuple(slice(a, b) for a, b in region)]))
    first = tuple(i * n for i, n in zip(shard, encoder.per_shard, strict=True))
    chunks = [tuple(f + o for f, o in zip(first, local, strict=True)) for local in encoder.order]
    return [(chunk, by_index[chunk]) for chunk in chunks]


def _held_bytes(encoder, chunks):
    builder = encoder.shard(encoder.shard_of(chunks[0][0])[0])
    for chunk, data in chunks:
        builder.put(encoder.shard_of(chunk)[1], data)
    out = builder.finish_held()
    return None if out is None else b"".join(bytes(b) for b in out.blocks)


def test_shards_reach_the_archive_in_visit_order_and_fill_only_ones_not_at_all(tmp_path):
    encoder = _encoder()
    pixels = np.arange(12 * 4, dtype="uint8").reshape(12, 4) + 1
    pixels[8:] = 0  # the third shard: fill value only
    writer, done = _Writer(), []
    collector = ShardCollector(writer, ["a"], [encoder], [(0, 0), (1, 0), (2, 0)],
                               str(tmp_path), lambda: done.append(1))
    with collector:
        collector.add(0, _chunks_of(encoder, pixels, (2, 0)))  # complete, not its turn
        collector.add(0, _chunks_of(encoder, pixels, (1, 0)))  # complete, not its turn
        assert writer.events == []  # both wait for the first
        collector.add(0, _chunks_of(encoder, pixels, (0, 0)))
    assert writer.events == [("open", "a/c/0/0"), ("commit", "a/c/0/0"), ("write", "a/c/1/0")]
    assert len(done) == 3  # every shard counts, the one left out too
    assert collector.unfinished == [0, 0]
    for shard in [(0, 0), (1, 0)]:
        assert writer.entries[f"a/c/{shard[0]}/{shard[1]}"] == _held_bytes(
            encoder, _chunks_of(encoder, pixels, shard))
    assert _held_bytes(encoder, _chunks_of(encoder, pixels, (2, 0))) is None
    assert list(tmp_path.iterdir()) == []  # spilled shards leave no file behind


def test_no_encoded_shard_of_the_written_level_is_held(tmp_path):
    """The shard being written streams into the archive and lower levels wait as encoded
    chunks: Python's peak allocation stays under 4 shards' pixels (incompressible data, so an
    encoded shard is as big as its pixels; the code before held about 6 shards' worth)."""
    import tracemalloc

    shape, shards = (128, 1024, 1024), (128, 256, 256)

    def block(block_info=None):
        loc = block_info[None]["array-location"]
        seed = loc[0][0] * 1000 + loc[1][0] * 10 + loc[2][0]
        return np.random.default_rng(seed).integers(
            0, 4096, size=tuple(b - a for a, b in loc), dtype="uint16")

    src = da.map_blocks(block, chunks=da.core.normalize_chunks((32, 256, 256), shape),
                        dtype="uint16")
    shard_bytes = 2 * int(np.prod(shards))
    # What is measured is the save's working memory, not the first import of zarr's codecs and
    # the caches a first save fills (about 12 MiB: 65 cold, 53 warm): run alone, this test
    # counted those too and failed; after other saves in the suite it passed.
    write_ozx(tmp_path / "warm.ozx", src[:32, :256, :256], axes="zyx", chunks=(32, 64, 64),
              shards=(32, 256, 256), pyramid_levels="full")
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="threads", num_workers=2):
            write_ozx(tmp_path / "m.ozx", src, axes="zyx", chunks=(32, 64, 64), shards=shards,
                      pyramid_levels="full")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * shard_bytes, f"peak {peak / 2**20:.0f} MiB for {shard_bytes >> 20} MiB shards"
    g = open_ozx(tmp_path / "m.ozx")
    np.testing.assert_array_equal(g["0"][40:70, 500:530, 900:1000],
                                  np.asarray(src[40:70, 500:530, 900:1000]))
