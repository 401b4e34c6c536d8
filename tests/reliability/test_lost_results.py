"""Results that must not be lost or silently wrong (issue 15, "results lost or wrong").

* an unreadable video in the test list: the multi-view test names it, leaves it out of the scores (or
  counts it wrong with ``--test_unreadable wrong``), lists it in ``test/unreadable_videos.csv`` and still
  writes every result;
* ``bad_videos.txt`` names as the substitute of an unreadable video a row that did load.
"""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from snappix.data.datasets import BAD_VIDEOS_FILE, VideoClsDataset
from snappix.engine.multiview import multiview_test

from .conftest import NUM_FRAMES

UNREADABLE_CSV = "unreadable_videos.csv"


class _MeanClassifier(nn.Module):
    """``(B, C, T, H, W) -> (B, 2)`` logits from the clip's mean brightness (deterministic, no training)."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        m = video.float().mean(dim=(1, 2, 3, 4))
        return torch.stack([m, 1.0 - m], dim=1) * 10.0


def _test_set(bad_root, tmp_path, rows: list[str]) -> VideoClsDataset:
    lst = tmp_path / "test.csv"
    lst.write_text("".join(f"{r}\n" for r in rows))
    return VideoClsDataset(str(lst), str(bad_root), mode="test", num_frames=NUM_FRAMES, sampling_rate=1,
                           input_size=32, short_side_size=32, test_num_segment=2, test_num_crop=2,
                           max_bad_fraction=1.0, log_dir=str(tmp_path / "out"))


@pytest.mark.bad_input
@pytest.mark.parametrize("bad", ["truncated.mp4", "text_file.mp4"])
def test_unreadable_test_video_is_named_left_out_and_every_result_written(bad_root, tmp_path, bad):
    rows = ["good.mp4 0", f"{bad} 1", "odd_113x75.mp4 1", "vertical_48x96.mp4 0"]
    ds = _test_set(bad_root, tmp_path, rows)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False)
    out = tmp_path / "out" / "test"
    summary = multiview_test(_MeanClassifier(), loader, "cpu", "fp32", output_dir=str(out))
    assert summary["num_videos"] == 3 and summary["num_listed"] == 4
    assert summary["unreadable_videos"] == 1 and summary["unreadable_rows"] == [1]
    assert summary["missing_views"] == 0 and summary["num_views"] == 3 * 4
    for name in ("per_class_accuracy.csv", "confusion_matrix.csv", "confusion_matrix.png", "video_predictions.csv",
                 "multiview_summary.json", "multiview_summary.txt", UNREADABLE_CSV):
        assert (out / name).is_file(), name
    with open(out / UNREADABLE_CSV, newline="") as f:
        listed = list(csv.DictReader(f))
    assert [(r["index"], r["path"]) for r in listed] == [("1", bad)]
    assert listed[0]["source"] == f"{bad_root / bad} ({tmp_path / 'test.csv'}:2)"
    with open(out / "video_predictions.csv", newline="") as f:
        assert [r["index"] for r in csv.DictReader(f)] == ["0", "2", "3"]
    text = (out / "multiview_summary.txt").read_text()
    assert "1 unreadable test video(s) left out" in text and str(bad_root / bad) in text
    assert (tmp_path / "out" / BAD_VIDEOS_FILE).read_text().startswith(str(bad_root / bad) + "\t")

    wrong = multiview_test(_MeanClassifier(), loader, "cpu", "fp32", unreadable="wrong")
    assert wrong["unreadable_policy"] == "wrong"
    assert wrong["video_top1"] == pytest.approx(summary["video_top1"] * 3 / 4)
    assert wrong["clip_top1"] == pytest.approx(summary["clip_top1"] * 3 / 4)


@pytest.mark.bad_input
def test_substitute_named_in_bad_videos_txt_is_a_row_that_loaded(bad_root, tmp_path):
    lst = tmp_path / "val.csv"
    lst.write_text("zero_byte.mp4 0\ntext_file.mp4 1\ngood.mp4 1\n")
    ds = VideoClsDataset(str(lst), str(bad_root), mode="validation", num_frames=NUM_FRAMES, sampling_rate=2,
                         input_size=32, short_side_size=32, max_bad_fraction=1.0, log_dir=str(tmp_path / "log"))
    sample = ds[0]
    assert sample["index"] == 2 and bool(sample["substituted"])
    lines = (tmp_path / "log" / BAD_VIDEOS_FILE).read_text().splitlines()
    assert sorted(ln.split("\t")[0] for ln in lines) == [str(bad_root / "text_file.mp4"),
                                                         str(bad_root / "zero_byte.mp4")]
    assert all(ln.endswith(f"\tsubstitute={bad_root / 'good.mp4'}") for ln in lines), lines
    assert sample["requested"] == 0  # the row asked for travels with the sample (multi-view test)
