"""run_finetuning.py --task regression (LVU like / view): ``reg`` lists, MSE loss, MSE and Pearson r over
the whole validation / test set, and a tiny run end to end whose reported r is numpy's corrcoef of the
saved predictions."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO
from snappix.data.lists import ListFormatError, read_list, write_list
from snappix.data.synthetic import render_clip
from snappix.data.video_writer import write_video
from snappix.objectives.regression import RegressionLoss, regression_metrics

sys.path.insert(0, str(REPO))
import run_finetuning  # noqa: E402

TARGETS = [0.25, -1.5, 2.0]
TINY = ["--model", "coded_vit_super_tiny_patch8_112", "--coded_type", "naive_learned", "--input_size", "32",
        "--short_side_size", "32", "--num_frames", "4", "--sampling_rate", "2", "--num_workers", "0",
        "--no_progress", "--device", "cpu", "--seed", "1", "--precision", "fp32"]


@pytest.fixture(scope="module")
def reg_lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg")
    rng = np.random.default_rng(0)
    rows = []
    for i, target in enumerate(TARGETS):
        write_video(str(root / f"v{i}.mp4"), render_clip(i, 12, 40, 64, rng=rng))
        rows.append((f"v{i}.mp4", target))
    for split in ("train", "val", "test"):
        write_list(root / f"{split}.csv", rows, "reg")
    return root


def test_reg_lists_parse_floats_and_name_bad_rows(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("a b.mp4 0.5\nc.mp4 -2e-1\n")
    entries = read_list(path, "reg")
    assert [(e.rel_path, e.target, e.label) for e in entries] == [("a b.mp4", 0.5, None), ("c.mp4", -0.2, None)]
    path.write_text("a.mp4 0.5\nb.mp4 high\n")
    with pytest.raises(ListFormatError, match=r"l.csv:2: field 'target' must be float"):
        read_list(path, "reg")
    path.write_text("a.mp4 nan\n")
    with pytest.raises(ListFormatError, match=r"l.csv:1: numeric fields must be finite"):
        read_list(path, "reg")
    path.write_text("a.mp4 1.0\na.mp4 2.0\n")
    with pytest.raises(ListFormatError, match=r"l.csv:2: 'a.mp4' has target 2.0, but target 1.0 at line 1"):
        read_list(path, "reg")


def test_metrics_over_the_whole_set_and_loss():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=50), rng.normal(size=50)
    m = regression_metrics(pred, target)
    assert m["r"] == pytest.approx(np.corrcoef(pred, target)[0, 1], abs=1e-12)
    assert m["mse"] == pytest.approx(np.mean((pred - target) ** 2))
    halves = [regression_metrics(pred[s], target[s])["r"] for s in (slice(0, 25), slice(25, 50))]
    assert m["r"] != pytest.approx(np.mean(halves))  # not a mean of per-batch r
    assert np.isnan(regression_metrics(np.ones(3), target[:3])["r"])
    loss, metrics = RegressionLoss()(torch.tensor([[1.0], [3.0]]), {"target": torch.tensor([0.0, 1.0])})
    assert loss.item() == pytest.approx(2.5) and metrics["mse"] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="--nb_classes 1"):
        RegressionLoss()(torch.zeros(2, 3), {"target": torch.zeros(2)})


def test_regression_needs_one_output(reg_lists):
    parser = run_finetuning.build_parser()
    args = parser.parse_args([*TINY, "--task", "regression", "--data_path", str(reg_lists), "--nb_classes", "3"])
    from snappix.methods import FINETUNING
    with pytest.raises(ValueError, match="--nb_classes must be 1"):
        FINETUNING["regression"].check(args)


def test_tiny_regression_run_end_to_end(reg_lists, tmp_path):
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, str(REPO / "run_finetuning.py"), *TINY, "--task", "regression",
                           "--nb_classes", "1", "--data_path", str(reg_lists), "--data_root", str(reg_lists),
                           "--output_dir", str(out), "--batch_size", "3", "--epochs", "1", "--warmup_epochs", "0",
                           "--lr", "0.01", "--test_num_segment", "2", "--test_num_crop", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    rows = [json.loads(line) for line in (out / "log.txt").read_text().splitlines()]
    val = [r for r in rows if "val_r" in r]
    assert val and "val_mse" in val[-1]
    summary = json.loads((out / "test" / "multiview_summary.json").read_text())
    assert summary["num_videos"] == 3 and summary["num_views"] == 12 and "mse" in summary
    with open(out / "test" / "video_predictions.csv") as f:
        table = list(csv.DictReader(f))
    pred = np.array([float(r["pred"]) for r in table])
    target = np.array([float(r["target"]) for r in table])
    assert target.tolist() == TARGETS and [int(r["views"]) for r in table] == [4, 4, 4]
    assert summary["r"] == pytest.approx(np.corrcoef(pred, target)[0, 1], abs=1e-9)
    assert summary["mse"] == pytest.approx(np.mean((pred - target) ** 2), rel=1e-9)


def test_validation_r_over_all_windows_of_all_videos(tmp_path):
    from conftest import write_lossless_video
    from snappix.data.windowed import WindowedVideoDataset
    from snappix.methods.regression import score_views

    rows = []
    for i, (n, target) in enumerate(((40, 1.0), (30, -0.5), (40, 3.0))):
        frames = np.repeat((5 * np.arange(n) + 3 * i).astype(np.uint8)[:, None, None, None], 16 * 16 * 3)
        write_lossless_video(tmp_path / f"v{i}.mp4", frames.reshape(n, 16, 16, 3), fps=10)
        rows.append((f"v{i}.mp4", target))
    write_list(tmp_path / "val.csv", rows, "reg")
    ds = WindowedVideoDataset(str(tmp_path / "val.csv"), str(tmp_path), trimmed=2.0, time_stride=2.0,
                              mode="validation", num_frames=4, sampling="segment", input_size=16, short_side_size=16,
                              video_backend="pyav", list_format="reg")
    assert ds.windows_per_row == [2, 2, 2] and float(ds[0]["target"]) == 1.0

    class Mean(torch.nn.Module):
        def forward(self, video):
            return video.mean(dim=(1, 2, 3, 4))[:, None]

    metrics = score_views(Mean(), torch.utils.data.DataLoader(ds, batch_size=4), ds, "cpu", "fp32")
    per_item = [(ds[k]["index"], float(ds[k]["video"].mean())) for k in range(len(ds))]
    pred = np.array([np.mean([v for r, v in per_item if r == row]) for row in range(3)])
    target = np.array([t for _, t in rows])
    assert metrics["num_videos"] == 3
    assert metrics["r"] == pytest.approx(np.corrcoef(pred, target)[0, 1], abs=1e-6)
    assert metrics["mse"] == pytest.approx(np.mean((pred - target) ** 2), rel=1e-5)
