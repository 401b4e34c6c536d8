"""Decorrelation objective, exact moments, refinement, protocol windows and run_decorrelation_training.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from snappix.sensor import (CodedExposure, CorrelationAccumulator, build_sensor, correlation_matrix,
                            decorrelation_loss, decorrelation_rows, load_pattern, mean_abs_off_diagonal, off_diagonal,
                            tile_rows)
from snappix.sensor.moments import TileMoments
from snappix.sensor.refine import brute_force_flip_losses, greedy_flip_refine

REPO = Path(__file__).resolve().parents[1]
PATTERN_DIR = REPO.parent / "shared" / "data" / "snappix_patterns"
needs_patterns = pytest.mark.skipif(not (PATTERN_DIR / "pattern_4.pth").is_file(),
                                    reason=f"SnapPix pattern files not found in {PATTERN_DIR}")

# Reference figures of the evaluation protocol (docs/decorrelation_protocol.md), tolerance 0.01.
REFERENCE = {"pattern_4": 0.126, "pattern_init": 0.26, "long": 0.39, "short": 0.43}


# ------------------------------------------------------------------------------------------- objective
def test_tile_rows_layout():
    img = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 1, 1, 4, 6)
    rows = tile_rows(img, 2)
    assert rows.shape == (2 * 2 * 3, 4)
    assert rows[0].tolist() == [0, 1, 6, 7] and rows[1].tolist() == [2, 3, 8, 9]
    assert rows[3].tolist() == [12, 13, 18, 19]
    with pytest.raises(ValueError, match="divisible"):
        tile_rows(img, 4)


def test_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    r = correlation_matrix(torch.from_numpy(x), eps=0.0)
    np.testing.assert_allclose(r.numpy(), np.corrcoef(x, rowvar=False), atol=1e-10)
    off = off_diagonal(r)
    assert off.numel() == 30
    mask = ~np.eye(6, dtype=bool)
    assert decorrelation_loss(r).item() == pytest.approx((np.corrcoef(x, rowvar=False)[mask] ** 2).mean())
    assert mean_abs_off_diagonal(r).item() == pytest.approx(np.abs(np.corrcoef(x, rowvar=False)[mask]).mean())


def test_metric_extremes():
    z = torch.randn(20000, 1, dtype=torch.float64)
    assert mean_abs_off_diagonal(correlation_matrix(z.repeat(1, 4))).item() == pytest.approx(1.0, abs=1e-5)
    assert mean_abs_off_diagonal(correlation_matrix(torch.randn(20000, 4, dtype=torch.float64))).item() < 0.03


def test_patch_norm_subtracts_long_exposure_tile_mean():
    clip = torch.rand(2, 1, 4, 4, 4)
    coded = CodedExposure(num_frames=4, tile_size=2, generator=torch.Generator().manual_seed(0))(clip)
    plain = decorrelation_rows(coded, patch_norm=False, tile_size=2)
    normed = decorrelation_rows(coded, clip, tile_size=2, patch_norm=True)
    long = (clip.mean(dim=2) - 0.2277) / 0.2425  # (2, 1, 4, 4)
    tile_means = long.reshape(2, 2, 2, 2, 2).mean(dim=(2, 4)).reshape(-1, 1)
    torch.testing.assert_close(normed, plain - tile_means)
    torch.testing.assert_close(plain, tile_rows((coded - 0.2277) / 0.2425, 2))
    with pytest.raises(ValueError, match="patch_norm needs"):
        decorrelation_rows(coded, None, tile_size=2, patch_norm=True)


def test_accumulator_is_batch_independent():
    rows = torch.randn(1000, 5) @ torch.randn(5, 5) + 3.0
    acc = CorrelationAccumulator()
    for chunk in rows.split(137):
        acc.update(chunk)
    torch.testing.assert_close(acc.correlation(), correlation_matrix(rows.double()), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("patch_norm", [True, False])
@pytest.mark.parametrize("normalize", ["exposed", "frames"])
def test_moments_give_the_exact_pooled_correlation(patch_norm, normalize):
    clips = torch.rand(6, 1, 8, 16, 24) ** 2
    layer = CodedExposure(num_frames=8, tile_size=4, normalize=normalize, generator=torch.Generator().manual_seed(2))
    moments = TileMoments(num_frames=8, tile_size=4, patch_norm=patch_norm)
    moments.update(clips[:2])
    moments.update(clips[2:])
    direct = correlation_matrix(decorrelation_rows(layer(clips), clips, 4, patch_norm).double())
    exact = moments.correlation(layer.mask(), normalize)
    torch.testing.assert_close(exact, direct, atol=2e-6, rtol=0)
    decorrelation_loss(exact).backward()
    assert layer.logits.grad is not None and layer.logits.grad.abs().sum() > 0
    restored = TileMoments(num_frames=8, tile_size=4, patch_norm=patch_norm)
    restored.load_state_dict(moments.state_dict())
    torch.testing.assert_close(restored.correlation(layer.get_pattern(), normalize), exact.detach())


def test_greedy_refinement_descends_and_keeps_exposures():
    target = (torch.rand(4, 2, 2, generator=torch.Generator().manual_seed(0)) > 0.5).float()

    def loss(p):  # distance to a target, plus a penalty so that slot 3 is preferred off
        return float((p - target).abs().sum() + 0.1 * p[3].sum())

    start = torch.ones(4, 2, 2)
    refined, history = greedy_flip_refine(start, brute_force_flip_losses(loss), max_flips=100)
    assert all(b < a for a, b in zip(history, history[1:]))
    assert torch.all(refined.sum(dim=0) >= 1)
    assert torch.equal(start, torch.ones(4, 2, 2))  # input untouched
    expected = target.clone()
    for i in range(2):
        for j in range(2):
            if expected[:, i, j].sum() == 0:  # a pixel must keep one exposure
                assert refined[:, i, j].sum() == 1
                expected[:, i, j] = refined[:, i, j]
    assert torch.equal(refined, expected)
    limited, history = greedy_flip_refine(start, brute_force_flip_losses(loss), max_flips=2)
    assert len(history) == 3 and int((limited != start).sum()) == 2


@pytest.mark.parametrize("patch_norm", [True, False])
@pytest.mark.parametrize("normalize", ["exposed", "frames"])
def test_moment_flip_losses_match_brute_force(patch_norm, normalize):
    moments = TileMoments(num_frames=6, tile_size=3, patch_norm=patch_norm)
    moments.update(torch.rand(4, 1, 6, 9, 12) ** 2)
    pattern = (torch.rand(6, 3, 3, generator=torch.Generator().manual_seed(1)) > 0.6).float()
    pattern[0, 0, 0], pattern[1:, 0, 0] = 1.0, 0.0  # pixel (0, 0) has a single exposure
    for name, fn in (("l1", mean_abs_off_diagonal), ("mse", decorrelation_loss)):
        now, fast = moments.flip_losses(pattern, normalize, name)
        _, slow = brute_force_flip_losses(lambda p: float(fn(moments.correlation(p, normalize))))(pattern)
        assert now == pytest.approx(float(fn(moments.correlation(pattern, normalize))), abs=1e-12)
        assert torch.isinf(fast[0, 0, 0])  # switching off the only exposure is not allowed
        finite = torch.isfinite(fast)
        torch.testing.assert_close(fast[finite], slow[finite], atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------- windows
class _FakeSource:
    def __init__(self, lengths):
        self.lengths = lengths
        self.paths = [f"v{i}.mp4" for i in range(len(lengths))]

    def sampling_rate(self, video, rate, ssv2=None):
        return rate


def test_protocol_windows():
    from snappix.decorrelation.data import protocol_windows, train_windows

    wins = protocol_windows(_FakeSource([280, 57, 32, 164, 300]), 16, 4, 32)
    per_video = np.bincount([v for v, _ in wins])
    assert per_video.tolist() == [7, 1, 1, 4, 8] and len(wins) == 21
    starts = [int(idx[0]) for v, idx in wins if v == 0]
    assert starts == [0, 32, 64, 96, 128, 160, 192]
    assert all(int(idx[-1]) <= 279 for v, idx in wins if v == 0)
    short = [idx for v, idx in wins if v == 1][0]
    assert short.tolist() == [min(4 * k, 56) for k in range(16)]
    one = protocol_windows(_FakeSource([280, 57]), 16, 4, 0)
    assert len(one) == 2 and one[0][1].tolist() == list(range(0, 64, 4))
    tw = train_windows(_FakeSource([280, 57]), 16, 4, 3, np.random.default_rng(0), multiplicity=[2, 1])
    assert [v for v, _ in tw] == [0] * 6 + [1] * 3
    assert all(np.all(np.diff(idx) == 4) for v, idx in tw if v == 0)


# ------------------------------------------------------------------------------------------- real data
@needs_patterns
def test_reference_figures_on_the_real_clips(videos_dir):
    from snappix.decorrelation.evaluate import evaluate
    from snappix.decorrelation.data import GreyClipSource, list_videos, protocol_windows

    source = GreyClipSource(list_videos(videos_dir), preprocess="snappix")
    windows = protocol_windows(source, 16, 4, 32)
    got = {}
    for name in ("pattern_4", "pattern_init"):
        sensor = CodedExposure(init_pattern=load_pattern(PATTERN_DIR / f"{name}.pth"), trainable=False)
        got[name], _ = evaluate(sensor, source, windows, 64, 8, True, torch.device("cpu"))
    for name in ("long", "short"):
        got[name], _ = evaluate(build_sensor(name), source, windows, 64, 8, True, torch.device("cpu"))
    for name, ref in REFERENCE.items():
        assert abs(got[name] - ref) <= 0.01, (name, got[name], ref)


# ------------------------------------------------------------------------------------------- entry point
@pytest.fixture
def tiny_videos(tmp_path):
    from conftest import write_lossless_video

    folder = tmp_path / "videos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, n in enumerate((70, 40)):
        base = rng.integers(0, 256, (n, 32, 40, 1), dtype=np.uint8)
        write_lossless_video(folder / f"v{i}.mp4", np.repeat(base, 3, axis=3))
    return folder


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("objective", ["minibatch", "moments"])
def test_run_script_trains_saves_and_resumes(tiny_videos, tmp_path, objective):
    from snappix.decorrelation.cli import main

    out = tmp_path / "out"
    common = ["--data_path", str(tiny_videos), "--input_size", "32", "--num_frames", "8", "--sampling_rate", "2",
              "--batch_size", "4", "--num_sample", "4", "--patch_norm_coded", "--objective", objective,
              "--moment_steps", "5", "--lr", "0.01", "--output_dir", str(out), "--no_progress", "--val_stride", "16"]
    assert main(common + ["--epochs", "2"]) == 0
    for name in ("pattern_init", "pattern_init_sparse", "pattern_0", "pattern_1"):
        assert (out / f"{name}.pth").is_file() and (out / f"{name}.png").is_file()
    assert (out / "config.yaml").is_file() and any((out / "tb").iterdir())
    state = torch.load(out / "checkpoint-latest.pth", weights_only=True)
    assert state["epoch"] == 1 and state["logits"].shape == (1, 8, 8, 8)
    records = _log(out / "log.txt")
    assert [r["epoch"] for r in records] == [-1, 0, 1]
    assert records[0]["stage"] == "init" and 0 < records[0]["val_mean_abs_r"] < 1
    assert {"train_loss", "val_mean_abs_r", "duty_cycle"} <= set(records[1])
    # resume: a longer run continues after epoch 1 and finishes with a refinement
    assert main(common + ["--epochs", "3", "--refine_max_flips", "20"]) == 0
    records = _log(out / "log.txt")
    assert [r["epoch"] for r in records] == [-1, 0, 1, 2, 3]
    assert records[-1]["stage"] == "refine" and records[-1]["refine_loss_after"] <= records[-1]["refine_loss_before"]
    assert (out / "pattern_2.pth").is_file() and (out / "pattern_refined.pth").is_file()
    assert load_pattern(out / "pattern_refined.pth").sum(dim=1).min() >= 1


def test_run_script_deterministic(tiny_videos, tmp_path):
    from snappix.decorrelation.cli import main

    args = ["--data_path", str(tiny_videos), "--input_size", "32", "--num_frames", "8", "--sampling_rate", "2",
            "--batch_size", "4", "--num_sample", "4", "--epochs", "2", "--lr", "0.01", "--no_progress"]
    assert main(args + ["--output_dir", str(tmp_path / "a")]) == 0
    assert main(args + ["--output_dir", str(tmp_path / "b")]) == 0
    assert torch.equal(load_pattern(tmp_path / "a" / "pattern_1.pth"), load_pattern(tmp_path / "b" / "pattern_1.pth"))


def test_run_script_test_and_baseline_modes(tiny_videos, tmp_path, capsys):
    from snappix.decorrelation.cli import main

    pattern = CodedExposure(num_frames=8, tile_size=8, generator=torch.Generator().manual_seed(0)).get_pattern()
    torch.save(pattern, tmp_path / "p.pth")
    base = ["--data_path", str(tiny_videos), "--input_size", "32", "--num_frames", "8", "--sampling_rate", "2",
            "--patch_norm_coded", "--no_progress"]
    assert main(base + ["--test_pattern", "--pattern", str(tmp_path / "p.pth"),
                        "--output_dir", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "heatmap.png").is_file()
    assert main(base + ["--only_run_two_baselines", "--output_dir", str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "long exposure: val mean |r|" in text and "short exposure: val mean |r|" in text
    with pytest.raises(SystemExit):
        main(base + ["--batch_size", "64", "--epochs", "1", "--output_dir", str(tmp_path / "c")])
