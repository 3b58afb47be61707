"""zarr's own Store test-suite (``zarr.testing.store.StoreTests``) run against OzxStore.

OzxStore is read-only, so the suite's ``set`` helper puts a key by rewriting the archive (our raw
writer, RFC-9 style) and reopening it under the same store object; the suite's tests that write
through the store itself are replaced by read-only equivalents below.  (test_read_store_contract.py
checks the same surface against LocalStore over the same files.)
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import types

import pytest
from zarr.core.buffer import Buffer, cpu, default_buffer_prototype
from zarr.core.sync import _collect_aiterator
from zarr.testing.store import StoreTests

import archives
from napari_ozx import OzxStore
from napari_ozx.zip import ZipArchive

_READ_ONLY = "store was opened in read-only mode and does not support writing"


def _contents(store: OzxStore) -> dict[str, bytes]:
    arch = store.archive
    return {n: arch.read(n) for n in arch.names()}


def _rewrite(store: OzxStore, items: dict[str, bytes]) -> None:
    """Rewrite the store's archive with ``items`` added, then reopen it in place."""
    path = store.archive.name
    merged = {**_contents(store), **items}
    meta = sorted(k for k in merged if k.rsplit("/", 1)[-1] == "zarr.json")
    rest = sorted(k for k in merged if k not in meta)
    archives.write_raw_zip(path, [(k, merged[k]) for k in meta + rest], zip64=True)
    store.archive.close()
    store.archive = ZipArchive(path)


class TestOzxStoreAgainstZarrSuite(StoreTests[OzxStore, cpu.Buffer]):
    store_cls = OzxStore
    buffer_cls = cpu.Buffer

    async def set(self, store: OzxStore, key: str, value: Buffer) -> None:
        _rewrite(store, {key: value.to_bytes()})

    async def get(self, store: OzxStore, key: str) -> Buffer:
        return self.buffer_cls.from_bytes(ZipArchive(store.archive.name).read(key))

    @pytest.fixture
    def store_kwargs(self, tmp_path) -> dict:
        path = archives.write_raw_zip(tmp_path / "store.ozx", [], zip64=True)
        return {"archive": str(path)}

    # (sync fixtures: the suite's are async ones that need pytest-asyncio's auto mode)
    @pytest.fixture
    def store(self, open_kwargs) -> OzxStore:
        return asyncio.run(self.store_cls.open(**open_kwargs))

    @pytest.fixture
    def store_not_open(self, store_kwargs) -> OzxStore:
        return self.store_cls(**store_kwargs)

    def test_store_repr(self, store: OzxStore) -> None:
        assert repr(store) == f"OzxStore({store.archive.name!r})"
        assert str(store) == f"ozx://{store.archive.name}"

    def test_store_supports_writes(self, store: OzxStore) -> None:
        assert not store.supports_writes
        assert not store.supports_deletes

    def test_store_supports_listing(self, store: OzxStore) -> None:
        assert store.supports_listing

    # ---- the suite's tests that need a writable store, in their read-only form

    def test_store_read_only(self, store: OzxStore) -> None:
        assert store.read_only
        with pytest.raises(AttributeError):
            store.read_only = False

    @pytest.mark.parametrize("read_only", [True, False])
    async def test_store_open_read_only(self, open_kwargs, read_only: bool) -> None:
        open_kwargs["read_only"] = read_only
        if not read_only:
            with pytest.raises(ValueError, match="read-only"):
                await self.store_cls.open(**open_kwargs)
            return
        store = await self.store_cls.open(**open_kwargs)
        assert store._is_open
        assert store.read_only

    async def test_with_read_only_store(self, open_kwargs) -> None:
        store = await self.store_cls.open(**open_kwargs)
        with pytest.raises(ValueError, match=_READ_ONLY):
            await store.set("foo", self.buffer_cls.from_bytes(b"bar"))
        with pytest.raises(ValueError):
            store.with_read_only(read_only=False)
        assert store.with_read_only(read_only=True).read_only

    async def test_serializable_store(self, store: OzxStore) -> None:
        await self.set(store, "foo", self.buffer_cls.from_bytes(b"\x01\x02\x03\x04"))
        new_store = pickle.loads(pickle.dumps(store))
        assert new_store == store
        assert new_store.read_only == store.read_only
        observed = await new_store.get("foo", prototype=default_buffer_prototype())
        assert observed.to_bytes() == b"\x01\x02\x03\x04"

    async def _put_many(self, store, items):
        _rewrite(store, {k: v.to_bytes() for k, v in dict(items).items()})

    async def test_getsize_prefix(self, store: OzxStore) -> None:
        data = b"\x01\x02\x03\x04"
        keys = ["c/0/0", "c/0/1", "c/1/0", "c/1/1"]
        _rewrite(store, {k: data for k in keys})
        assert await store.getsize_prefix("c") == len(data) * len(keys)

    async def test_set(self, store: OzxStore) -> None:
        with pytest.raises(ValueError, match=_READ_ONLY):
            await store.set("c/0", self.buffer_cls.from_bytes(b"x"))

    async def test_set_not_open(self, store_not_open: OzxStore) -> None:
        with pytest.raises(ValueError, match=_READ_ONLY):
            await store_not_open.set("c/0", self.buffer_cls.from_bytes(b"x"))

    async def test_set_many(self, store: OzxStore) -> None:
        with pytest.raises(ValueError, match=_READ_ONLY):
            await store._set_many([("a", self.buffer_cls.from_bytes(b"x"))])

    async def test_set_if_not_exists(self, store: OzxStore) -> None:
        await self.set(store, "k", self.buffer_cls.from_bytes(b"0000"))
        with pytest.raises(ValueError, match=_READ_ONLY):
            await store.set_if_not_exists("k2", self.buffer_cls.from_bytes(b"1111"))
        assert (await store.get("k", default_buffer_prototype())).to_bytes() == b"0000"

    async def test_exists(self, store: OzxStore) -> None:
        assert not await store.exists("foo")
        await self.set(store, "foo/zarr.json", self.buffer_cls.from_bytes(b"bar"))
        assert await store.exists("foo/zarr.json")

    async def test_clear(self, store: OzxStore) -> None:
        await self.set(store, "key", self.buffer_cls.from_bytes(b"something"))
        with pytest.raises((ValueError, NotImplementedError)):  # zarr's base: no deletes
            await store.clear()
        assert await store.exists("key")

    async def test_list(self, store: OzxStore) -> None:
        assert await _collect_aiterator(store.list()) == ()
        items = {"foo/zarr.json": b"", **{f"foo/c/{i}": b"" for i in range(10)}}
        _rewrite(store, items)
        assert sorted(await _collect_aiterator(store.list())) == sorted(items)

    async def test_list_prefix(self, store: OzxStore) -> None:
        prefixes = ("", "a/", "a/b/", "a/b/c/")
        items = {p + "zarr.json": b"" for p in prefixes}
        _rewrite(store, items)
        for prefix in prefixes:
            observed = sorted(await _collect_aiterator(store.list_prefix(prefix)))
            assert observed == sorted(k for k in items if k.startswith(prefix))

    async def test_list_empty_path(self, store: OzxStore) -> None:
        items = {"foo/bar/zarr.json": b"", "foo/bar/c/1": b"", "foo/baz/c/0": b""}
        _rewrite(store, items)
        assert sorted(await _collect_aiterator(store.list())) == sorted(items)
        assert sorted(await _collect_aiterator(store.list_prefix(""))) == sorted(items)
        assert sorted(await _collect_aiterator(store.list_prefix("foo/bar/"))) == sorted(
            k for k in items if k.startswith("foo/bar/")
        )

    async def test_list_dir(self, store: OzxStore) -> None:
        roots_and_keys = [
            ("foo", {"foo/zarr.json": b"bar", "foo/c/1": b"\x01"}),
            ("foo/bar", {"foo/bar/foobar_first_child": b"1",
                         "foo/bar/foobar_second_child/zarr.json": b"2"}),
        ]
        assert await _collect_aiterator(store.list_dir("")) == ()
        for root, items in roots_and_keys:
            assert await _collect_aiterator(store.list_dir(root)) == ()
            _rewrite(store, items)
            expected = {k.removeprefix(root + "/").split("/")[0] for k in items}
            assert sorted(await _collect_aiterator(store.list_dir(root))) == sorted(expected)
            assert sorted(await _collect_aiterator(store.list_dir(root + "/"))) == sorted(expected)

    def test_set_sync(self, store: OzxStore) -> None:
        if hasattr(store, "set_sync"):
            with pytest.raises(ValueError, match=_READ_ONLY):
                store.set_sync("k", self.buffer_cls.from_bytes(b"x"))


def _marked_copy(fn):
    """``fn`` with the asyncio mark, leaving zarr's own function object untouched."""
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                             fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__dict__.update({k: (list(v) if k == "pytestmark" else v) for k, v in fn.__dict__.items()})
    return pytest.mark.asyncio(new)


# The suite's coroutine tests run under pytest-asyncio (strict mode: marked one by one here).
for _name in dir(TestOzxStoreAgainstZarrSuite):
    _fn = getattr(TestOzxStoreAgainstZarrSuite, _name)
    if _name.startswith("test_") and inspect.iscoroutinefunction(_fn):
        setattr(TestOzxStoreAgainstZarrSuite, _name, _marked_copy(_fn))
