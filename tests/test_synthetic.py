"""The embedded dataset: deterministic, balanced, and its label is the direction of motion (or, with
``classes="shape"``, the objects' shape)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snappix.data.lists import read_list
from snappix.data.synthetic import DIRECTIONS, SHAPES, _shape_mask, clip_rng, make_dataset, render_clip
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
    with pytest.raises(ValueError, match="at least 5"):
        make_dataset("/nonexistent", num_videos=4, classes="shape")
    with pytest.raises(ValueError, match="unknown classes"):
        make_dataset("/nonexistent", num_videos=16, classes="colour")
    with pytest.raises(ValueError, match="unknown shape"):
        render_clip(0, 4, 48, 64, shape="star")


def test_forced_shape_changes_only_the_outlines():
    """``shape=`` keeps every other draw: the clip equals its random-shape twin wherever neither's objects are,
    and a clip of one object shows that object's outline (its alpha) where it was placed."""
    free = render_clip(2, 4, 48, 64, rng=clip_rng(0, 3)).astype(np.int16)
    forced = render_clip(2, 4, 48, 64, rng=clip_rng(0, 3), shape="ring").astype(np.int16)
    differs = np.abs(free - forced).max(-1) > 0
    assert 0.005 < differs.mean() < 0.6  # only object pixels move (noise is drawn identically)
    # one static object: against the same clip with a square, another shape differs inside the object's box only
    square = render_clip(0, 1, 48, 48, rng=clip_rng(1, 0), speed=(0.0, 0.0), num_objects=(1, 1), shape="square")
    for name in SHAPES[:1] + SHAPES[2:]:
        other = render_clip(0, 1, 48, 48, rng=clip_rng(1, 0), speed=(0.0, 0.0), num_objects=(1, 1), shape=name)
        ys, xs = np.nonzero(np.abs(other.astype(int) - square.astype(int)).max(-1)[0])
        assert len(ys) > 0, name
        assert ys.max() - ys.min() < 0.30 * 48 + 1 and xs.max() - xs.min() < 0.30 * 48 + 1, name
    assert _shape_mask(15, "ring")[7, 7] == 0 and _shape_mask(15, "disc")[7, 7] == 1


def test_plain_removes_texture():
    """plain=True: the background is one grey level (4 x 4 block means, which average the sensor noise away, are
    near constant), while the textured twin's background varies; objects are flat too."""
    spreads = {}
    for plain in (False, True):
        frame = render_clip(0, 1, 96, 96, rng=clip_rng(0, 1), num_objects=(0, 0), plain=plain)[0].astype(float)
        spreads[plain] = frame.mean(-1).reshape(24, 4, 24, 4).mean((1, 3)).std()
    assert spreads[True] < 0.3 * spreads[False], spreads
    one = render_clip(0, 1, 96, 96, rng=clip_rng(0, 2), num_objects=(1, 1), speed=(0.0, 0.0), plain=True)[0]
    blocks = one.mean(-1).reshape(24, 4, 24, 4).mean((1, 3))
    assert len(np.unique(np.round(blocks / 8))) <= 4  # background level, object level and the edges between


def test_make_dataset_shape_classes(tmp_path):
    """5 balanced shape classes named in the files and classes.txt; the direction of motion is drawn apart
    from the class (not constant within a class)."""
    lists = make_dataset(str(tmp_path), num_videos=20, seed=0, num_frames=12, val_fraction=0.2, height=48,
                         width=64, classes="shape")
    train = read_list(lists["train"], "cls", str(tmp_path))
    val = read_list(lists["val"], "cls", str(tmp_path))
    assert open(lists["classes"]).read().split() == list(SHAPES)
    assert sorted(e.label for e in val) == list(range(5)) and len(train) == 15
    for e in train + val:
        assert e.rel_path.endswith(f"_{SHAPES[e.label]}.mp4")
    dirs = {}
    for e in train + val:
        with open_video(e.path) as reader:
            grey = reader.get_frames(list(range(12))).mean(-1)
        dirs.setdefault(e.label, set()).add(direction_of(grey))
    assert sum(len(d) > 1 for d in dirs.values()) >= 4, dirs


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
