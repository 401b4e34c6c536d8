"""Mask generators: exact counts, tube identical over time, running-cell pattern, seeded determinism."""

import numpy as np
import pytest

from snappix.masking import RandomMasking, RunningCellMasking, TubeMasking, build_mask_generator


def test_tube_mask_exact_count_and_identical_over_time():
    gen = TubeMasking((8, 14, 14), 0.85)
    m = gen(np.random.default_rng(0))
    assert m.dtype == bool and m.shape == (1568,)
    frames = m.reshape(8, 196)
    assert (frames.sum(1) == 166).all() and (frames == frames[0]).all()
    assert gen.num_masked == 166 * 8 and (~m).sum() == 30 * 8  # 30 visible tokens per frame


def test_random_mask_exact_count():
    m = RandomMasking((8, 14, 14), 0.9)(np.random.default_rng(1))
    assert m.sum() == int(0.9 * 1568)
    assert not (m.reshape(8, 196) == m.reshape(8, 196)[0]).all()  # not a tube


def test_running_cell_pattern():
    gen = RunningCellMasking((8, 14, 14), 0.5)
    m = gen(np.random.default_rng(0)).reshape(8, 14, 14)
    assert m.sum() == 784 == gen.num_masked
    cells = m.reshape(8, 7, 2, 7, 2).transpose(0, 1, 3, 2, 4).reshape(8, 49, 4)
    assert (cells.sum(-1) == 2).all()  # 2 of 4 per 2x2 cell in every frame
    assert (cells == cells[:, :1]).all()  # the same cell pattern tiled over the frame
    seq = cells[:, 0]
    for t in range(1, 8):  # the queue runs by one position per frame
        assert (seq[t] == np.roll(seq[t - 1], -1)).all()
    phases = {tuple(gen(np.random.default_rng(s)).tolist()) for s in range(50)}
    assert len(phases) == 4
    assert RunningCellMasking((2, 2, 2), 0.75)(np.random.default_rng(0)).reshape(2, 4).sum(1).tolist() == [3, 3]


def test_seeded_determinism_and_errors():
    for kind in ("tube", "random", "run_cell"):
        gen = build_mask_generator(kind, (8, 14, 14), 0.5)
        assert (gen(np.random.default_rng(3)) == gen(np.random.default_rng(3))).all()
    assert not build_mask_generator("none", (2, 4, 4), 0.0)(None).any()
    with pytest.raises(ValueError, match="valid"):
        build_mask_generator("block", (8, 14, 14), 0.5)
    with pytest.raises(ValueError, match="even"):
        RunningCellMasking((8, 7, 7), 0.5)
    with pytest.raises(ValueError):
        TubeMasking((8, 14, 14), 1.0)
