"""Encoded chunks -> shards -> archive entries (napari_ozx.save.collector.ShardCollector): level-0
shards reach the archive in visit order whatever order their chunks come in, the one whose
turn it is streams into an open entry, the others wait (in a spill file) until it is committed,
and a shard of fill value only is counted but never written."""

from __future__ import annotations

import io

import numpy as np

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
