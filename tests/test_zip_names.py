"""zip/names.py: one unsafe-name rule for the reader and the writer.

The reader decodes names many at once with numpy (zip/central.py); the writer checks one name at
a time.  Both must follow the scalar rule in zip/names.py, or an archive we write could hold an
entry our reader hides.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_ozx.errors import UnsafeNameError
from napari_ozx.zip import ZipArchive, records
from napari_ozx.zip.central import parse_central_block
from napari_ozx.zip.names import (
    check_writable_name,
    is_directory_name,
    is_metadata_name,
    is_unsafe_name,
)
from napari_ozx.zip.writer import OzxWriter

# Names built mostly from the characters the rules are about, so the edge cases come up often.
_TRICKY = st.lists(st.sampled_from(list("ab./\\:\0é") + ["zarr.json", ".."]), max_size=10).map(
    "".join)
NAMES = st.one_of(_TRICKY, st.text(max_size=20))


def _central_directory(names: list[bytes]) -> bytes:
    return b"".join(
        records.pack_central_header(n, method=records.METHOD_STORED, crc32=0, compressed_size=0,
                                    uncompressed_size=0, local_header_offset=0)
        for n in names
    )


def _listed(block) -> list[bytes]:
    return [block.names[int(s): int(s) + int(n)]
            for s, n in zip(block.name_start, block.name_length, strict=True)]


@pytest.mark.parametrize("name, unsafe", [
    (b"", True), (b"/abs", True), (b"C:/x", True), (b"c:", True), (b"a\\b", True),
    (b"a\0b", True), (b"..", True), (b"a/../b", True), (b"a/..", True),
    (b"a/b", False), (b"a..b/c", False), (b"...", False), (b"a/.b", False), (b"ab:c", False),
])
def test_the_rule_on_named_cases(name, unsafe):
    assert is_unsafe_name(name) is unsafe


def test_a_dot_pair_across_two_names_is_no_dot_dot_segment():
    # Names lie back to back in the decoder's buffer: "a/." then "./b" is no "a/../b".
    block = parse_central_block(_central_directory([b"a/.", b"./b", b"."]), first_ordinal=0,
                                final=True)
    assert _listed(block) == [b"a/.", b"./b", b"."] and block.n_unsafe == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(NAMES.map(lambda s: s.encode("utf-8")), st.binary(max_size=10)),
                min_size=1, max_size=30))
def test_central_directory_decoder_follows_the_scalar_rule(names):
    block = parse_central_block(_central_directory(names), first_ordinal=0, final=True)
    expected = [n for n in names if not is_unsafe_name(n) and not is_directory_name(n)]
    assert _listed(block) == expected
    assert block.n_unsafe == sum(map(is_unsafe_name, names))


def test_writer_refuses_a_drive_letter_name_with_our_error(tmp_path):
    # The reader hides "C:..." (absolute on Windows): the writer must not write it.
    path = tmp_path / "a.ozx"
    with OzxWriter(path, require_root=False) as w:
        with pytest.raises(UnsafeNameError) as e:
            w.write("C:evil", b"x")
    assert e.value.archive == str(path) and e.value.entry == "C:evil"
    assert "C:evil" in str(e.value) and str(path) in str(e.value)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES)
def test_what_the_writer_accepts_the_reader_lists(tmp_path_factory, name):
    key = name.encode("utf-8")
    hidden = is_unsafe_name(key) or is_directory_name(key)
    path = tmp_path_factory.mktemp("n") / "a.ozx"
    accepted = True
    with OzxWriter(path, require_root=False) as w:
        try:
            w.write(name, b"{}")
        except UnsafeNameError:
            accepted = False
    if hidden:
        assert not accepted, f"writer wrote {name!r}, which the reader hides"
    if accepted:
        with ZipArchive(path, warn=False) as a:
            assert list(a.names()) == [name]
            assert a.read(name) == b"{}"


def test_writer_check_is_the_reader_rule_plus_canonical_spelling():
    for name in ("a/b", "zarr.json", "0/c/0/0", "a..b"):
        check_writable_name(name, "x.ozx")
    for name in ("C:x", "/a", "a/../b", "a\\b", "a/", "a//b", "a/./b", "", "x" * 70000):
        with pytest.raises(UnsafeNameError):
            check_writable_name(name, "x.ozx")


def test_metadata_names():
    assert is_metadata_name("zarr.json") and is_metadata_name("0/1/.zattrs")
    assert not is_metadata_name("0/c/zarr.json.bak") and not is_metadata_name("xzarr.json")
