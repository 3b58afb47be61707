"""Regular grids over an array (napari_ozx.save.grid): cells clipped at the far edges, the cell
that holds a point, the cells as dask chunks."""

from __future__ import annotations

from napari_ozx.save.grid import Grid, n_shards


def test_cells_at_the_far_edges_are_clipped_to_the_array():
    grid = Grid((5, 7), (2, 4))
    assert grid.counts == (3, 2)
    assert grid.regions == [((0, 2), (0, 4)), ((0, 2), (4, 7)),
                            ((2, 4), (0, 4)), ((2, 4), (4, 7)),
                            ((4, 5), (0, 4)), ((4, 5), (4, 7))]
    assert grid.dask_chunks == ((2, 2, 1), (4, 3))


def test_the_cell_that_holds_a_point():
    grid = Grid((5, 7), (2, 4))
    assert grid.index_at((0, 0)) == (0, 0)
    assert grid.index_at((3, 4)) == (1, 1)
    assert grid.index_at((4, 6)) == (2, 1)
    assert grid.region(grid.index_at((4, 6))) == ((4, 5), (4, 7))


def test_shard_count_for_progress_counts_an_empty_axis_once():
    assert n_shards((5, 7), (2, 4)) == 6
    assert n_shards((0, 7), (2, 4)) == 2  # an empty axis: one (empty) shard along it
