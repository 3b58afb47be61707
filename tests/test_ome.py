"""napari_ozx.ome: OME-Zarr metadata to napari layer keywords, on in-memory zarr groups."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import zarr

from napari_ozx.errors import NotOmeZarrError, OzxWarning
from napari_ozx.ome import OmeMetadataError, ome_attrs, read_layers
from napari_ozx.ome.arrays import aligned_chunks
from napari_ozx.ome.channels import channel_settings, colormap_for
from napari_ozx.ome.transforms import compose


def image_group(*, shapes=((3, 64, 64), (3, 32, 32)), axes=None, omero=None, ms_extra=None,
                chunks=(1, 16, 16), shards=None, version="0.5", dtype="uint8"):
    g = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    datasets = []
    for i, shape in enumerate(shapes):
        a = g.create_array(str(i), shape=shape, chunks=chunks, shards=shards, dtype=dtype)
        a[:] = i + 1
        datasets.append({"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0] + [0.5 * 2**i] * (len(shape) - 1)}]})
    ms = {"axes": axes or [{"name": "c", "type": "channel"},
                           {"name": "y", "type": "space", "unit": "micrometer"},
                           {"name": "x", "type": "space", "unit": "micrometer"}],
          "datasets": datasets, **(ms_extra or {})}
    attrs = {"version": version, "multiscales": [ms]}
    if omero is not None:
        attrs["omero"] = omero
    g.attrs["ome"] = attrs
    return g


def test_compose_applies_dataset_then_multiscale():
    scale, translate = compose(
        [{"type": "scale", "scale": [2.0, 3.0]}, {"type": "translation", "translation": [1, 1]}],
        [{"type": "sequence", "transformations": [{"type": "scale", "scale": [10, 1]}]},
         {"type": "translation", "translation": [0, 5]}, {"type": "identity"}],
        ndim=2,
    )
    # x' = 10 * (2x + 1) ; y' = 1 * (3y + 1) + 5
    np.testing.assert_allclose(scale, [20, 3])
    np.testing.assert_allclose(translate, [10, 6])


def test_compose_warns_and_skips_what_napari_cannot_take():
    with pytest.warns(OzxWarning, match="mapAxis"):
        scale, _ = compose([{"type": "mapAxis", "mapAxis": [1, 0]},
                            {"type": "scale", "scale": [2, 2]}], ndim=2, where="x/zarr.json")
    np.testing.assert_allclose(scale, [2, 2])
    with pytest.warns(OzxWarning, match="3 values for 2 axes"):
        compose([{"type": "scale", "scale": [1, 2, 3]}], ndim=2)


@pytest.mark.parametrize(("color", "want"), [
    ("FF0000", "red"), ("00ff00", "green"), ("#0000FF", "blue"), ("FFFFFF", "gray"),
    ("FF00FFFF", "magenta"), ("zzz", None), (None, None),
])
def test_colormap_named_where_napari_has_one(color, want):
    assert colormap_for(color) == want


def test_colormap_other_colours_black_to_colour():
    cm = colormap_for("804020")
    assert cm["name"] == "#804020"
    np.testing.assert_allclose(cm["colors"][-1], [128 / 255, 64 / 255, 32 / 255, 1.0])


def test_channel_settings_windows_and_fallbacks():
    omero = {"channels": [
        {"label": "a", "color": "FF0000", "window": {"start": 5, "end": 50}, "active": False},
        {"label": "b", "color": "00FF00", "window": {"start": 9, "end": 9, "min": 0, "max": 7}},
    ]}
    s = channel_settings(omero, 2, np.dtype("uint16"))
    assert s["name"] == ["a", "b"] and s["colormap"] == ["red", "green"]
    # an empty window falls back to min/max
    assert s["contrast_limits"] == [[5, 50], [0, 7]]
    assert s["visible"] == [False, True]
    # wrong channel count: omero is ignored, limits are the dtype range
    s = channel_settings(omero, 3, np.dtype("uint8"))
    assert s["contrast_limits"] == [[0, 255]] * 3 and "name" not in s


def test_greyscale_model():
    omero = {"rdefs": {"model": "greyscale"}, "channels": [{"color": "FF0000"}]}
    assert channel_settings(omero, 1, np.dtype("u1"))["colormap"] == ["gray"]


def test_dask_chunks_are_the_zarr_chunks():
    assert aligned_chunks((100, 200), (10, 20)) == (10, 20)
    # many chunks, but not tiny ones (512 KiB): kept, reading more than shown costs more
    assert aligned_chunks((1000, 50_000, 50_000), (1, 512, 512), 2) == (1, 512, 512)


def test_only_tiny_chunks_are_merged_by_whole_multiples():
    # a million 32-byte chunks (one million archive entries): merged until <= 10k chunks
    grown = aligned_chunks((1_000_000, 16), (1, 16), 2)
    assert grown[1] == 16 and grown[0] % 1 == 0 and grown[0] > 1
    assert -(-1_000_000 // grown[0]) <= 10_000
    # until the chunk reaches 64 KiB, even if that leaves many chunks
    grown = aligned_chunks((2**20, 2**20), (64, 64), 1)
    assert all(c % 64 == 0 for c in grown) and grown[0] * grown[1] == 64 << 10


def test_image_layer_kwargs_and_inner_chunks():
    g = image_group(shards=(1, 32, 32), omero={"channels": [
        {"label": n, "color": "FF0000", "window": {"start": 0, "end": 9}} for n in "xyz"]})
    (data, kw, kind), = read_layers(g, name="img")
    assert kind == "image" and kw["channel_axis"] == 0 and kw["name"] == ["x", "y", "z"]
    assert kw["scale"] == (0.5, 0.5) and kw["units"] == ("micrometer", "micrometer")
    assert kw["axis_labels"] == ("y", "x") and kw["multiscale"]
    # dask chunk = zarr inner chunk (16), not the shard (32)
    assert data[0].chunksize == (1, 16, 16)
    assert int(data[1][0, 0, 0].compute()) == 2
    assert kw["metadata"][0]["ome"]["version"] == "0.5"


def test_single_level_is_not_a_list():
    g = image_group(shapes=((2, 16, 16),))
    (data, kw, _), = read_layers(g, name="img")
    assert not isinstance(data, list) and kw["multiscale"] is False
    assert kw["name"] == ["img [0]", "img [1]"] and kw["contrast_limits"] == [[0, 255]] * 2


def test_axes_count_mismatch_is_an_error_naming_the_document():
    g = image_group(axes=[{"name": "y", "type": "space"}, {"name": "x", "type": "space"}])
    with pytest.raises(OmeMetadataError, match="2 axes") as info:
        read_layers(g)
    assert info.value.entry == "zarr.json"


def test_not_ome_is_not_ome_zarr():
    g = zarr.open_group(zarr.storage.MemoryStore(), mode="w")
    g.attrs["something"] = 1
    with pytest.raises(NotOmeZarrError):
        read_layers(g)


def test_legacy_attributes_are_found_and_flagged():
    oa = ome_attrs({"multiscales": [{"version": "0.4", "datasets": []}], "omero": {}}, 2)
    assert oa.version == "0.4" and oa.legacy and "omero" in oa
    oa = ome_attrs({"ome": {"version": "0.5", "multiscales": []}}, 3)
    assert oa.version == "0.5" and not oa.legacy


def test_legacy_image_warns():
    g = image_group(version="0.4")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_layers(g)
    assert any("RFC-9" in str(w.message) for w in caught if issubclass(w.category, OzxWarning))


def test_unknown_unit_becomes_pixel_with_warning():
    g = image_group(axes=[{"name": "c", "type": "channel"},
                          {"name": "y", "type": "space", "unit": "parsec-ish"},
                          {"name": "x", "type": "space", "unit": "micrometer"}])
    with pytest.warns(OzxWarning, match="parsec-ish"):
        (_, kw, _), = read_layers(g)
    assert kw["units"] == ("pixel", "micrometer")


def test_float_without_window_small_enough_left_to_napari():
    g = image_group(shapes=((1, 32, 32),), dtype="float32")
    (_, kw, _), = read_layers(g)
    assert "contrast_limits" not in kw  # napari computes them from 1024 values


def test_float_without_window_too_big_to_scan_gets_fixed_limits(monkeypatch):
    import napari_ozx.ome.image as image

    monkeypatch.setattr(image, "MAX_SCANNED", 100)
    g = image_group(shapes=((2, 32, 32),), dtype="float32")
    with pytest.warns(OzxWarning, match=r"contrast limits set to \[0, 1\]"):
        (_, kw, _), = read_layers(g)
    assert kw["contrast_limits"] == [[0.0, 1.0], [0.0, 1.0]]
