"""Long videos as trimmed sliding windows (VideoMamba LVU), the per-dataset sampling defaults of
run_finetuning.py, and the multi-view merge that averages every window of a video (never collapsing
distinct windows, unlike the reference's merge)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO, write_lossless_video
from snappix.data import sampling as S
from snappix.data.lists import write_list
from snappix.data.windowed import WindowedVideoDataset
from snappix.engine.multiview import MissingViewsError, collect_view_scores, merge_views, multiview_test
from snappix.methods.classification import default_sampling

sys.path.insert(0, str(REPO))
import run_finetuning  # noqa: E402

FPS = 10
NUM_FRAMES = 4
# (file, frames): 4.0 s -> windows [0, 2] and [2, 4]; 3.0 s -> [0, 2] and [2, 3] (1 s = half a window, kept)
VIDEOS = [("a.mp4", 40), ("b.mp4", 30)]


def _frames(n: int) -> np.ndarray:
    """Uniform frames, frame t of grey level 5 t, so a decoded, resized, cropped frame still says its t."""
    return np.repeat((5 * np.arange(n, dtype=np.uint8))[:, None, None, None], 32 * 32 * 3).reshape(n, 32, 32, 3)


@pytest.fixture(scope="module")
def long_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    for name, n in VIDEOS:
        write_lossless_video(root / name, _frames(n), fps=FPS)
    write_lossless_video(root / "short.mp4", _frames(15), fps=FPS)
    write_list(root / "test.csv", [(name, i) for i, (name, _) in enumerate(VIDEOS)], "cls")
    write_list(root / "all.csv", [(name, i) for i, (name, _) in enumerate(VIDEOS)] + [("short.mp4", 2)], "cls")
    return root


def _dataset(root, name="test.csv", mode="test", segments=2, crops=1, **kw):
    return WindowedVideoDataset(str(root / name), str(root), trimmed=2.0, time_stride=2.0, mode=mode,
                                num_frames=NUM_FRAMES, sampling="segment", input_size=32, short_side_size=32,
                                test_num_segment=segments, test_num_crop=crops, video_backend="pyav", **kw)


def _frame_ids(video: torch.Tensor) -> list[int]:
    """The frame index each of the clip's frames shows (``video`` (1, T, H, W) in [0, 1])."""
    return [int(round(float(v) * 255 / 5)) for v in video.mean(dim=(0, 2, 3))]


def test_window_seconds_edges():
    assert S.window_seconds(4.0, 2.0, 2.0) == [(0.0, 2.0), (2.0, 4.0)]
    assert S.window_seconds(3.0, 2.0, 2.0) == [(0.0, 2.0), (2.0, 3.0)]      # exactly half a window: kept
    assert S.window_seconds(2.9, 2.0, 2.0) == [(0.0, 2.0)]                  # 0.9 s < half: dropped
    assert S.window_seconds(1.5, 2.0, 2.0) == [(0.0, 1.5)]                  # shorter than a window: one
    assert S.window_seconds(100, 60, 16) == [(0, 60), (16, 76), (32, 92), (48, 100), (64, 100)]
    assert S.window_frames((2.0, 4.0), 10.0, 40) == (20, 40) and S.window_frames((2.0, 4.0), 10.0, 35) == (20, 35)
    with pytest.raises(ValueError):
        S.window_seconds(0, 2, 2)
    with pytest.raises(ValueError):
        S.window_frames((0, 1), 0.0, 10)


def test_windows_per_row_and_frame_indices_inside_each_window(long_list):
    ds = _dataset(long_list)
    assert ds.row_windows == [[(0.0, 2.0), (2.0, 4.0)], [(0.0, 2.0), (2.0, 3.0)]]  # durations from the decoder
    assert ds.windows_per_row == [2, 2] and len(ds) == 4 * 2  # 4 windows x 2 segments x 1 crop
    frame_ranges = {(0, 0): (0, 20), (0, 1): (20, 40), (1, 0): (0, 20), (1, 1): (20, 30)}  # int(sec * fps)
    seen = set()
    for item in range(len(ds)):
        s = ds[item]
        row, window, segment = s["index"], s["window"], s["segment"]
        a, b = frame_ranges[(row, window)]
        expected = S.segment_indices(b - a, NUM_FRAMES, train=False, view=segment, num_views=2) + a
        assert _frame_ids(s["video"]) == expected.tolist(), (row, window, segment)
        assert s["label"] == row and not s["substituted"]
        seen.add((row, window, segment))
    assert len(seen) == 8
    # a video shorter than a window is one window over the whole video
    short = _dataset(long_list, "all.csv", mode="validation")
    assert short.windows_per_row == [2, 2, 1] and len(short) == 5
    last = short[4]
    assert (last["index"], last["window"]) == (2, 0)
    assert _frame_ids(last["video"]) == S.segment_indices(15, NUM_FRAMES, train=False).tolist()


def test_training_draws_stay_inside_their_window(long_list):
    ds = _dataset(long_list, mode="train", aa=None, reprob=0.0, flip=False, crop_scale=(1.0, 1.0),
                  crop_ratio=(1.0, 1.0))
    for epoch in range(3):
        ds.set_epoch(epoch, seed=1)
        for item, (row, window) in enumerate(ds.items):
            ids = _frame_ids(ds[item]["video"])
            a, b = ((0, 20), (20, 40))[window] if row == 0 else ((0, 20), (20, 30))[window]
            assert all(a <= t < b for t in ids) and ids == sorted(ids)


class _MeanFrame(nn.Module):
    """Logits [mean grey level, 0]: each window's score differs, so an average is checkable."""

    def forward(self, video):
        m = video.float().mean(dim=(1, 2, 3, 4))
        return torch.stack([m * 10, torch.zeros_like(m)], dim=1)


def test_multiview_test_averages_every_window(long_list, tmp_path):
    ds = _dataset(long_list, crops=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    records = collect_view_scores(_MeanFrame(), loader, "cpu", "fp32")
    assert sorted(set(zip(records["index"], records["window"]))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    merged = merge_views(records, 2, (2, 2), windows=ds.windows_per_row)
    assert merged.num_views.tolist() == [8, 8]  # 2 windows x 2 segments x 2 crops, none collapsed
    for row in range(2):
        per_window = [records["scores"][(records["index"] == row) & (records["window"] == w)].astype(np.float64)
                      .mean(0) for w in range(2)]
        assert not np.allclose(per_window[0], per_window[1])  # the windows really differ
        np.testing.assert_allclose(merged.scores[row], (per_window[0] + per_window[1]) / 2, atol=1e-12)
    summary = multiview_test(_MeanFrame(), loader, "cpu", "fp32", output_dir=str(tmp_path / "t"))
    assert summary["num_videos"] == 2 and summary["num_views"] == 16 and summary["missing_views"] == 0
    assert summary["num_windows"] == 4 and summary["single_view_videos"] == 4  # one centre view per window
    assert "2 videos, 4 windows x 4 views" in (tmp_path / "t" / "multiview_summary.txt").read_text()


def test_merge_reports_a_missing_window():
    rows = [(v, w) for v in range(2) for w in range(2)]
    records = {"index": np.array([r[0] for r in rows]), "window": np.array([r[1] for r in rows]),
               "segment": np.zeros(4, np.int64), "crop": np.zeros(4, np.int64), "label": np.zeros(4, np.int64),
               "scores": np.array([[1.0], [3.0], [5.0], [9.0]], np.float32)}
    merged = merge_views(records, 2, (1, 1), windows=[2, 2])
    assert merged.scores[:, 0].tolist() == [2.0, 7.0]
    keep = np.array([True, True, True, False])
    with pytest.raises(MissingViewsError) as err:
        merge_views({k: v[keep] for k, v in records.items()}, 2, (1, 1), windows=[2, 2])
    assert err.value.missing == [(1, 1, 0, 0)]
    with pytest.raises(ValueError, match="window outside"):
        merge_views(records, 2, (1, 1), windows=[2, 1])


@pytest.mark.parametrize("data_set,model,expected", [
    ("Kinetics_sparse", "videomamba_tiny", "segment"), ("Breakfast", "videomamba_tiny", "segment"),
    ("COIN", "videomamba_tiny", "segment"), ("LVU", "videomamba_tiny", "segment"),
    ("SSV2", "videomamba_tiny", "segment"), ("SSV2", "coded_vit_small_patch8_112", "dense"),
    ("Kinetics-400", "videomamba_tiny", "dense"), ("UCF101", "c3d", "dense")])
def test_sampling_default_per_data_set(data_set, model, expected):
    parser = run_finetuning.build_parser()
    args = parser.parse_args(["--model", model, "--data_path", "x", "--data_set", data_set])
    assert default_sampling(args) == expected
    args = parser.parse_args(["--model", model, "--data_path", "x", "--data_set", data_set, "--sampling", "dense"])
    assert default_sampling(args) == "dense"  # an explicit --sampling wins
    args = parser.parse_args(["--model", "c3d", "--data_path", "x", "--trimmed", "60"])
    assert default_sampling(args) == "segment"
