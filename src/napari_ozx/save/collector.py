"""Encoded inner chunks -> whole shards -> archive entries: :class:`ShardCollector`.

The job (:mod:`.job`) hands the collector the encoded chunks each task sends back
(:class:`~.tasks.Encoded`); the collector gathers them into their shards
(:class:`~.encoder.ShardBuilder`) and writes each shard to the archive writer
(:class:`~napari_ozx.zip.writer.OzxWriter`) once it is complete: the level-0 shard whose turn
it is streams into an open entry as its chunks come, the others wait in :class:`~.spill.Spill`
files.  It encodes nothing and runs no task; it decides only when and where a shard is
written, so that the archive holds each shard as one entry, level-0 shards in visit order.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .encoder import HeldShard, ShardBuilder, ShardEncoder
from .spill import Spill

if TYPE_CHECKING:
    from ..zip.writer import EntryStream, OzxWriter

__all__ = ["ShardCollector"]


class _Waiting(NamedTuple):
    """A complete shard waiting for the streamed one to be committed."""

    entry: str
    shard: HeldShard
    builder: ShardBuilder[Any]


class ShardCollector:
    """Encoded inner chunks of level ``k`` and the levels below it (``depth`` 0, 1, ...),
    gathered into their shards and written to the archive ``writer``.

    Level ``k``'s shards are written in the order of ``heads``: the first not yet written
    streams into an open entry of the writer as its chunks come; the others, and the shards
    of the lower levels (which fill over many shards of the level above), wait in
    :class:`Spill` files until they are complete and the open entry is committed.
    ``on_shard`` is called for every shard done (written, or left out as all fill value).
    """

    def __init__(self, writer: OzxWriter, names: Sequence[str],
                 encoders: Sequence[ShardEncoder], heads: Sequence[tuple[int, ...]],
                 spill_dir: str, on_shard: Callable[[], None]):
        self.writer = writer
        self.names = list(names)  # array path of each depth
        self.encoders = list(encoders)
        self.heads = list(heads)
        self.head = 0
        self.spill_dir = spill_dir
        self.on_shard = on_shard
        # depth -> shard index -> builder
        self._open: list[dict[tuple[int, ...], ShardBuilder[EntryStream]]] = [
            {} for _ in self.encoders]
        self._waiting: deque[_Waiting] = deque()

    def __enter__(self) -> ShardCollector:
        self._advance()
        return self

    def __exit__(self, *exc: object) -> None:
        # after a failure or a cancel, the spill files of what was not written
        for builders in self._open:
            for b in builders.values():
                b.close()
        while self._waiting:
            self._waiting.popleft().builder.close()

    @property
    def unfinished(self) -> list[int]:
        """Shards partly filled, per depth, and level ``k``'s shards not written yet."""
        return [len(b) for b in self._open] + [len(self.heads) - self.head]

    def add(self, depth: int, encoded: Iterable[tuple[tuple[int, ...], bytes | None]]) -> None:
        """``[(chunk index, bytes or None)]`` of level ``k + depth``."""
        encoder = self.encoders[depth]
        complete = {}
        for chunk, data in encoded:
            index, local = encoder.shard_of(chunk)
            b = self._builder(depth, index)
            b.put(local, data)
            if b.complete:
                complete[index] = b
        if depth == 0:
            self._advance()
        else:
            for b in complete.values():
                self._write_held(depth, b)

    def _entry(self, depth: int, index: tuple[int, ...]) -> str:
        return f"{self.names[depth]}/{self.encoders[depth].key(index)}"

    def _builder(self, depth: int, index: tuple[int, ...]) -> ShardBuilder[EntryStream]:
        b = self._open[depth].get(index)
        if b is None:
            b = self.encoders[depth].shard(index, Spill(self.spill_dir))
            self._open[depth][index] = b
        return b

    def _open_head(self, index: tuple[int, ...]) -> EntryStream:
        return self.writer.open_entry(self._entry(0, index))

    def _streaming(self) -> bool:
        """Whether level k's head shard holds the archive's end (its entry is open)."""
        if self.head >= len(self.heads):
            return False
        b = self._open[0].get(self.heads[self.head])
        return b is not None and b.sink is not None

    def _write_held(self, depth: int, b: ShardBuilder[EntryStream]) -> None:
        out = b.finish_held()
        del self._open[depth][b.index]
        self.on_shard()
        if out is not None:
            self._waiting.append(_Waiting(self._entry(depth, b.index), out, b))
        if not self._streaming():
            self._flush()

    def _flush(self) -> None:
        while self._waiting:
            held = self._waiting.popleft()
            self.writer.write_stream(held.entry, held.shard.blocks, held.shard.size)

    def _advance(self) -> None:
        """Write level k's shards that are complete, in order; stream the next one."""
        while self.head < len(self.heads):
            index = self.heads[self.head]
            b = self._builder(0, index)
            if not b.complete:
                if not b.streamed:
                    b.stream_to(functools.partial(self._open_head, index))
                return
            self.head += 1
            if not b.streamed:  # complete before its turn (or held whole: index at the start)
                self._write_held(0, b)
                continue
            sink = b.finish_streamed()
            if sink is not None:
                sink.commit()
            del self._open[0][index]
            self.on_shard()
            self._flush()
