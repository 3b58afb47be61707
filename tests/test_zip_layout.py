"""Inferring entry data offsets from the central directory (zip/layout.py): used only where the
layout shown by real local headers makes it safe; everything else falls back to the header."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from napari_ozx.zip import records
from napari_ozx.zip.layout import DataOffsetGuesser

NAME = 10  # every name 10 bytes


def _index(entries):
    """entries: (local extra, data size, gap after the data, flags) -> index, real offsets, cd."""
    hoff, sizes, flags, real = [], [], [], []
    pos = 0
    for extra, size, gap, flag in entries:
        hoff.append(pos)
        sizes.append(size)
        flags.append(flag)
        real.append(pos + records.LOCAL.size + NAME + extra)
        pos = real[-1] + size + gap
    index = SimpleNamespace(
        header_offset=np.array(hoff, dtype=np.int64),
        compressed_size=np.array(sizes, dtype=np.int64),
        name_length=np.full(len(entries), NAME, dtype=np.int32),
        flags=np.array(flags, dtype=np.uint16),
        data_offset=np.zeros(len(entries), dtype=np.int64),
        is_metadata=np.zeros(len(entries), dtype=bool),
    )
    return index, real, pos


def test_packed_archive_is_inferred_after_two_agreeing_headers():
    index, real, cd = _index([(20, 100 + i, 0, 0) for i in range(6)])
    g = DataOffsetGuesser(index, cd, index_is_whole_directory=True)
    assert g.guess(3) is None  # nothing learnt yet: no guessing
    g.learn(0, real[0])
    assert g.guess(3) is None  # one header could be the odd one out
    g.learn(1, real[1])
    assert [g.guess(i) for i in range(6)] == real


def test_stray_bytes_that_mimic_an_extra_field_are_not_guessed():
    """A: a 20-byte local extra; B: no extra but 20 stray bytes after its data.  From the
    directory both look alike; one header is not enough evidence, and B's own header then
    contradicts the inference, which switches it off."""
    index, real, cd = _index([(20, 100, 0, 0), (0, 100, 20, 0), (0, 100, 0, 0)])
    g = DataOffsetGuesser(index, cd, index_is_whole_directory=True)
    g.learn(0, real[0])
    assert g.guess(1) is None
    g.learn(1, real[1])  # the header read instead
    assert not g.enabled and g.guess(2) is None


def test_mixed_extra_lengths_are_not_guessed():
    index, real, cd = _index([(0, 50, 0, 0), (20, 60, 0, 0), (0, 70, 0, 0)])
    g = DataOffsetGuesser(index, cd, index_is_whole_directory=True)
    g.learn(0, real[0])
    g.learn(1, real[1])
    assert g.enabled and g.guess(2) is None  # which of 0 and 20 would the next one use?


def test_gaps_data_descriptors_and_skipped_entries_are_not_guessed():
    index, real, cd = _index([(0, 50, 0, 0), (0, 60, 7, 0),
                              (0, 70, 0, records.FLAG_DATA_DESCRIPTOR), (0, 80, 0, 0)])
    g = DataOffsetGuesser(index, cd, index_is_whole_directory=True)
    g.learn(0, real[0])
    g.learn(3, real[3])
    assert g.guess(1) is None  # 7 junk bytes after its data: implied extra 7, never seen
    assert g.guess(2) is None  # data descriptor follows its data
    assert g.guess(3) == real[3]
    skipped = DataOffsetGuesser(index, cd, index_is_whole_directory=False)
    skipped.learn(0, real[0])
    skipped.learn(3, real[3])
    assert skipped.guess(3) is None  # a dropped directory entry could hide a local header


def test_one_contradiction_switches_inference_off():
    index, real, cd = _index([(0, 50, 0, 0), (0, 60, 0, 0), (0, 70, 0, 0)])
    g = DataOffsetGuesser(index, cd, index_is_whole_directory=True)
    g.learn(0, real[0])
    g.learn(1, real[1] + 4)  # a header that disagrees with the inference
    assert not g.enabled
    assert g.guess(2) is None


def test_aligned_payloads_with_padding_extra():
    """Our writer / zipalign: padding in the local extra field puts every payload on 4096."""
    entries, pos = [(20, 700, 0, 0)], records.LOCAL.size + NAME + 20 + 700  # metadata: not padded
    for size in (300, 5000, 123, 9000, 4096):
        base = pos + records.LOCAL.size + NAME + 20
        pad = (-base) % 4096
        entries.append((20 + pad, size, 0, 0))
        pos = base + pad + size
    index, real, cd = _index(entries)
    index.is_metadata[0] = True
    assert len(real) > 1 and all(r % 4096 == 0 for r in real[1:])
    g = DataOffsetGuesser(index, cd, index_is_whole_directory=True)
    g.learn(0, real[0])  # the metadata entry and the first data entry after it (prefetched)
    g.learn(1, real[1])
    assert g.alignment == 4096
    assert [g.guess(i) for i in range(1, 6)] == real[1:]  # the data entries
    # a gap that breaks the alignment is not guessed
    index.compressed_size[3] -= 8
    assert g.guess(3) is None


def test_peek_learns_from_bytes_already_at_hand():
    index, real, cd = _index([(0, 40, 0, 0), (0, 40, 0, 0), (0, 40, 0, 0)])
    blob = bytearray(cd)
    for h in index.header_offset:
        blob[h:h + records.LOCAL.size] = records.LOCAL.pack(records.SIG_LOCAL, 20, 0, 0, 0, 0, 0,
                                                            40, 40, NAME, 0)

    def peek(offset, length):
        return bytes(blob[offset:offset + length]) if offset < 150 else None  # rows 0 and 1

    g = DataOffsetGuesser(index, cd, index_is_whole_directory=True, peek=peek)
    assert index.data_offset[0] == real[0] + 1 and index.data_offset[1] == real[1] + 1
    assert g.guess(2) == real[2]
