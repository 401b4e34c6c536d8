"""The embedded dataset: deterministic, balanced, and its label is the direction of motion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snappix.data.lists import read_list
from snappix.data.synthetic import DIRECTIONS, clip_rng, make_dataset, render_clip
from snappix.data.video import open_video


def global_flow(frames: np.ndarray) -> tuple[float, float]:
    """Least-squares (Lucas-Kanade) translation of grey frames ``(T, H, W)``; returns (vx, vy) in px/frame."""
    x = frames.astype(np.float64)
    it = x[1:] - x[:-1]
    iy, ix = np.gradient(x[:-1], axis=(1, 2))
    a = np.array([[(ix * ix).sum(), (ix * iy).sum()], [(ix * iy).sum(), (iy * iy).sum()]])
    b = -np.array([(ix * it).sum(), (iy * it).sum()])
    vx, vy = np.linalg.solve(a, b)
    return vx, vy


def direction_of(frames: np.ndarray) -> int:
    vx, vy = global_flow(frames)
    angle = math.degrees(math.atan2(-vy, vx)) % 360  # image y points down; N = up
    return int(round(angle / 45)) % 8


def test_render_is_deterministic_and_seed_dependent():
    a = render_clip(3, 8, 48, 64, rng=clip_rng(0, 5))
    b = render_clip(3, 8, 48, 64, rng=clip_rng(0, 5))
    c = render_clip(3, 8, 48, 64, rng=clip_rng(1, 5))
    assert a.shape == (8, 48, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_label_is_the_direction_of_motion():
    """A generic optical-flow estimate recovers the label from the frames; a single frame carries
    no such signal, and reversing time turns a clip into the opposite class."""
    hits, reversed_hits = 0, 0
    n = 32
    for i in range(n):
        label = i % 8
        grey = render_clip(label, 16, 96, 128, rng=clip_rng(7, i)).mean(-1)
        hits += direction_of(grey) == label
        reversed_hits += direction_of(grey[::-1]) == (label + 4) % 8
    assert hits >= 0.85 * n, hits
    assert reversed_hits >= 0.85 * n, reversed_hits


def test_long_exposure_cannot_tell_opposite_directions():
    """The mean over time is symmetric in time: a clip and its time reversal give the same image."""
    frames = render_clip(0, 16, 48, 64, rng=clip_rng(0, 0)).astype(np.float64)
    assert np.allclose(frames.mean(0), frames[::-1].mean(0))
    assert not np.allclose(frames[0], frames[-1])  # but the frames themselves differ


def test_bad_arguments():
    with pytest.raises(ValueError, match="label"):
        render_clip(8, 4, 48, 64)
    with pytest.raises(ValueError, match="24 px"):
        render_clip(0, 4, 16, 64)
    with pytest.raises(ValueError, match="at least 8"):
        make_dataset("/nonexistent", num_videos=4)


@pytest.mark.parametrize("workers", [1, 2])
def test_make_dataset_lists_and_videos(tmp_path, workers):
    lists = make_dataset(str(tmp_path), num_videos=16, seed=3, num_frames=10, val_fraction=0.25,
                         height=48, width=64, workers=workers)
    train = read_list(lists["train"], "cls", str(tmp_path))
    val = read_list(lists["val"], "cls", str(tmp_path))
    pretrain = read_list(lists["pretrain"], "pretrain", str(tmp_path))
    pretrain_val = read_list(lists["pretrain_val"], "pretrain", str(tmp_path))
    assert len(train) == 8 and len(val) == 8  # 2 clips per class: 1 train, 1 val
    assert sorted(e.label for e in val) == list(range(8))
    assert [e.rel_path for e in pretrain] == [e.rel_path for e in train]
    assert [e.rel_path for e in pretrain_val] == [e.rel_path for e in val]
    assert open(lists["classes"]).read().split() == list(DIRECTIONS)
    assert not list(tmp_path.glob("videos/*.part*"))
    for e in train + val:
        assert e.rel_path.endswith(f"_{DIRECTIONS[e.label]}.mp4")
        with open_video(e.path) as reader:
            assert reader.num_frames == 10
            assert reader.get_frames([0]).shape == (1, 48, 64, 3)
