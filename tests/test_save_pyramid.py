"""Lazy pyramids: which axes are halved, area means equal to a plain numpy reference, label
pyramids that never invent a value."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_ozx.save.pyramid import build_pyramid, downsample, downsample_block, plan_factors

SPACE2 = ["space", "space"]
SPACE3 = ["space", "space", "space"]


def reference_mean(a: np.ndarray, factors) -> np.ndarray:
    """Mean over each window, windows cut by the edge averaging what they hold (slow, plain)."""
    out_shape = [-(-s // f) for s, f in zip(a.shape, factors, strict=True)]
    out = np.empty(out_shape, dtype=float)
    for idx in np.ndindex(*out_shape):
        window = a[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factors, strict=True))]
        out[idx] = window.astype(float).mean()
    return out


def test_2d_levels_halve_y_and_x_down_to_one_chunk():
    f = plan_factors((1000, 3000), (256, 256), SPACE2)
    assert f == [(2, 2)] * 4  # 3000 -> 1500 -> 750 -> 375 -> 188 <= 256
    assert plan_factors((200, 200), (256, 256), SPACE2) == []


def test_channel_and_time_axes_are_never_downsampled():
    f = plan_factors((3, 2, 64, 512, 512), (1, 1, 64, 64, 64),
                     ["time", "channel", "space", "space", "space"])
    assert f and all(step[:2] == (1, 1) for step in f)
    assert f[0] == (1, 1, 2, 2, 2)


def test_anisotropic_z_waits_until_xy_spacing_catches_up():
    # z spacing 4x the xy spacing: z is kept until y/x have been halved twice.
    f = plan_factors((64, 4096, 4096), (64, 64, 64), SPACE3, scale=(2.0, 0.5, 0.5))
    assert [s[0] for s in f[:4]] == [1, 1, 2, 2]
    assert f and all(s[1:] == (2, 2) for s in f)


def test_requested_number_of_levels():
    assert len(plan_factors((1000, 1000), (256, 256), SPACE2, levels=1)) == 0
    assert len(plan_factors((1000, 1000), (256, 256), SPACE2, levels=6)) == 5
    # a tiny image cannot give more levels than it has pixels for
    assert len(plan_factors((4, 4), (256, 256), SPACE2, levels=10)) == 2


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32"])
def test_mean_equals_area_average_with_odd_edges_and_unaligned_chunks(dtype):
    rng = np.random.default_rng(1)
    a = (rng.random((37, 51, 23)) * 250).astype(dtype)
    # dask chunks of odd sizes: the downsampler must realign them to whole windows
    d = da.from_array(a, chunks=(9, 13, 7))
    out = downsample(d, (2, 2, 2), "mean").compute()
    ref = reference_mean(a, (2, 2, 2))
    assert out.shape == (19, 26, 12)
    assert out.dtype == a.dtype
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(out, ref, rtol=1e-6)
    else:
        np.testing.assert_array_equal(out, np.rint(ref).astype(dtype))


def test_mean_of_full_range_uint16_does_not_overflow():
    a = np.full((8, 8), 65535, "uint16")
    assert (downsample(da.from_array(a, chunks=4), (2, 2)).compute() == 65535).all()


def _label_image(rng, shape, values):
    return rng.choice(np.asarray(values), size=shape)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 33), st.integers(1, 33)),
    values=st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=6, unique=True),
    chunk=st.integers(1, 16),
    seed=st.integers(0, 1000),
    method=st.sampled_from(["mode", "nearest"]),
)
def test_label_pyramids_only_hold_input_values(shape, values, chunk, seed, method):
    rng = np.random.default_rng(seed)
    a = _label_image(rng, shape, values).astype("uint32")
    levels = build_pyramid(da.from_array(a, chunks=chunk), [(2, 2)] * 3, method)
    present = set(np.unique(a).tolist())
    assert len(levels) > 1
    for lvl in levels[1:]:
        assert set(np.unique(lvl.compute()).tolist()) <= present


def test_mode_picks_the_majority_of_each_window():
    a = np.array([[1, 1, 2, 2],
                  [1, 3, 2, 5],
                  [7, 7, 9, 8],
                  [7, 4, 6, 6]], "uint8")
    out = downsample(da.from_array(a, chunks=2), (2, 2), "mode").compute()
    np.testing.assert_array_equal(out, [[1, 2], [7, 6]])
    # where the mean of labels would invent a value, the mode does not
    b = np.array([[1, 10], [1, 10]], "uint8")
    assert downsample(da.from_array(b), (2, 2), "mean").compute()[0, 0] not in (1, 10)
    assert downsample(da.from_array(b), (2, 2), "mode").compute()[0, 0] in (1, 10)


def test_nearest_takes_the_first_pixel_of_each_window():
    a = np.arange(36, dtype="uint16").reshape(6, 6)
    out = downsample(da.from_array(a, chunks=(4, 3)), (2, 2), "nearest").compute()
    np.testing.assert_array_equal(out, a[::2, ::2])


def test_downsampling_is_lazy_and_blockwise():
    calls = []

    def source(block):
        calls.append(block.shape)
        return block

    base = da.zeros((512, 512), chunks=128, dtype="uint16").map_blocks(source)
    level = downsample(base, (2, 2), "mean")
    assert calls == [] or all(s == (0, 0) or 0 in s or s == (1, 1) for s in calls)
    part = level[:64, :64].compute()  # one output block needs one input block
    assert part.shape == (64, 64)
    assert len([c for c in calls if c == (128, 128)]) == 1


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown downsampling method"):
        downsample(da.zeros((4, 4), chunks=2), (2, 2), "median")


def _mode_by_hand(b, f):
    """The mode of each window, the slow way: counts, ties to the first value in C order."""
    import itertools

    out_shape = [-(-s // k) for s, k in zip(b.shape, f, strict=True)]
    pad = np.pad(b, [(0, (-s) % k) for s, k in zip(b.shape, f, strict=True)], mode="edge")
    out = np.empty(out_shape, b.dtype)
    for idx in itertools.product(*map(range, out_shape)):
        w = pad[tuple(slice(i * k, (i + 1) * k) for i, k in zip(idx, f, strict=True))].reshape(-1)
        counts = [(w == v).sum() for v in w]
        out[idx] = w[int(np.argmax(counts))]
    return out


@pytest.mark.parametrize("shape,factors", [((5, 7, 9), (2, 2, 2)), ((6, 10), (2, 2)),
                                           ((3, 8, 8), (1, 2, 2)), ((7, 7), (3, 3)),
                                           ((4, 5, 6), (2, 1, 3))])
@pytest.mark.parametrize("values", [2, 4, 50])
def test_mode_equals_counting_by_hand(shape, factors, values):
    b = np.random.default_rng(values).integers(0, values, shape).astype("uint16")
    np.testing.assert_array_equal(downsample_block(b, factors, "mode"), _mode_by_hand(b, factors))
