"""Objectives: the pixel MAE loss counts only hidden-and-predicted tokens; reconstruction MSE and PSNR."""

import math

import pytest
import torch

from snappix.models.patchify import patchify
from snappix.objectives import CodedReconstructionLoss, PixelMAELoss, build_objective, psnr


def setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(2, 1, 4, 8, 8, generator=g)  # tubelet 2, patch 4 -> grid (2, 2, 2), N = 8, P = 32
    return video, g


def test_targets_are_per_tubelet_normalised_at_the_query_positions():
    video, _ = setup()
    query = torch.zeros(2, 8, dtype=torch.bool)
    query[:, [1, 5, 6]] = True
    loss = PixelMAELoss(2, 4, normalize_target=True)
    t = loss.targets(video, query)
    tokens = patchify(video, 2, 4)
    expected = (tokens[:, [1, 5, 6]] - tokens[:, [1, 5, 6]].mean(-1, keepdim=True)) / (
        tokens[:, [1, 5, 6]].std(-1, keepdim=True) + 1e-6)
    assert torch.allclose(t, expected, atol=1e-6)
    assert torch.allclose(PixelMAELoss(2, 4, normalize_target=False).targets(video, query), tokens[:, [1, 5, 6]])


def test_loss_only_over_tokens_hidden_and_predicted():
    video, g = setup()
    loss_fn = PixelMAELoss(2, 4)
    query = torch.zeros(2, 8, dtype=torch.bool)
    query[:, :4] = True  # decoder predicts tokens 0-3
    hidden = torch.zeros(2, 8, dtype=torch.bool)
    hidden[:, [2, 3, 4, 5]] = True  # encoder hides 2-5 -> loss over tokens 2 and 3 only
    target = loss_fn.targets(video, query)
    pred = target.clone()
    pred[:, :2] += 100.0  # errors on predicted-but-visible tokens must not count
    loss, metrics = loss_fn({"pred": pred, "query_mask": query}, {"video": video, "encoder_mask": hidden})
    assert loss.item() == pytest.approx(0.0, abs=1e-10) and metrics["tokens_in_loss"] == 2
    pred[:, 3] += 2.0  # one counted token off by 2 everywhere -> per-token MSE 4, mean over 2 tokens
    loss, _ = loss_fn({"pred": pred, "query_mask": query}, {"video": video, "encoder_mask": hidden})
    assert loss.item() == pytest.approx(2.0, rel=1e-5)


def test_loss_errors():
    video, _ = setup()
    query = torch.ones(2, 8, dtype=torch.bool)
    loss_fn = PixelMAELoss(2, 4)
    with pytest.raises(ValueError, match="no token"):
        loss_fn({"pred": torch.zeros(2, 8, 32), "query_mask": query},
                {"video": video, "encoder_mask": torch.zeros(2, 8, dtype=torch.bool)})
    with pytest.raises(ValueError, match="does not match"):
        loss_fn({"pred": torch.zeros(2, 7, 32), "query_mask": query},
                {"video": video, "encoder_mask": torch.ones(2, 8, dtype=torch.bool)})
    with pytest.raises(ValueError, match="unknown task"):
        build_objective("contrastive", 2, 4)


def test_reconstruction_loss_and_psnr():
    video, _ = setup()
    rec = CodedReconstructionLoss(2, 4)
    tokens = patchify(video, 2, 4)
    perfect = (tokens - rec.mean) / rec.std
    query = torch.ones(2, 8, dtype=torch.bool)
    loss, m = rec({"pred": perfect, "query_mask": query}, {"video": video})
    assert loss.item() == pytest.approx(0.0, abs=1e-10) and m["psnr"] > 100
    off = perfect + 0.1 / rec.std  # +0.1 in [0, 1] units: MSE 0.01 where no clamping -> PSNR 20 dB
    clip = torch.full_like(video, 0.5)
    loss, m = rec({"pred": (patchify(clip, 2, 4) - rec.mean) / rec.std + 0.1 / rec.std, "query_mask": query},
                  {"video": clip})
    assert m["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert loss.item() == pytest.approx((0.1 / rec.std) ** 2, rel=1e-4)
    assert psnr(torch.zeros(1, 4), torch.full((1, 4), 0.5)).item() == pytest.approx(10 * math.log10(4), rel=1e-6)
    with pytest.raises(ValueError, match="every tubelet"):
        rec({"pred": off, "query_mask": ~query}, {"video": video})
