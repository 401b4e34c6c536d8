"""K-centered patch sampling: greedy k-center against a brute-force reference, constraints, determinism,
and the k-center ViT classifier."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import snappix.models  # noqa: F401
from conftest import brute_force_kcenter
from snappix.masking.kcenter import (hybrid_frame_indices, indices_to_mask, kcenter_greedy_pairwise, kcenter_select,
                                     patch_coordinates, patch_points)


@pytest.mark.parametrize("td,sd", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_matches_brute_force(td, sd):
    rng = np.random.default_rng(td * 10 + sd)
    t, h, w, d = 4, 4, 4, 6
    pts = rng.normal(size=(2, t, h, w, d))
    k = 4 * td if sd > 1 else 10 * td
    ours = {m: kcenter_select(torch.from_numpy(pts), k, td, sd, first="center", method=m) for m in ("dense", "bounded")}
    pair = kcenter_greedy_pairwise(torch.from_numpy(pts), k, td, sd, first="center")
    first = (t // td // 2) * h * w + (h // 2) * w + w // 2
    for b in range(2):
        ref = brute_force_kcenter(pts[b].reshape(-1, d), (t, h, w), k, [first] * td, td, sd)
        assert ours["dense"][b].tolist() == ref
        assert ours["bounded"][b].tolist() == ref
        assert pair[b].tolist() == ref


def test_never_repeats_and_respects_divisions():
    pts = torch.randn(3, 8, 6, 6, 5)
    idx = kcenter_select(pts, 36, time_division=2, space_division=1, first="random",
                         generator=torch.Generator().manual_seed(0))
    assert idx.shape == (3, 36)
    n_chunk = 4 * 36
    for row in idx:
        assert len(set(row.tolist())) == 36
        for c in range(2):  # each chunk's 18 picks lie inside its own frames
            part = row[c * 18:(c + 1) * 18]
            assert bool(((part >= c * n_chunk) & (part < (c + 1) * n_chunk)).all())
    idx = kcenter_select(pts, 18, time_division=2, space_division=3, first="center")
    for row in idx:
        for c in range(2):
            part = row[c * 9:(c + 1) * 9] % 36
            cells = ((part // 6) * 3 // 6) * 3 + (part % 6) * 3 // 6
            assert sorted(cells.tolist()) == list(range(9))  # exactly one patch per spatial cell per chunk
    with pytest.raises(ValueError, match="one per cell"):
        kcenter_select(pts, 20, time_division=1, space_division=3)


def test_fixed_first_centre_is_deterministic_and_random_is_seeded():
    pts = torch.randn(2, 4, 5, 5, 7)
    a = kcenter_select(pts, 30, first="center")
    b = kcenter_select(pts.clone(), 30, first="center")
    assert torch.equal(a, b)
    r1 = kcenter_select(pts, 30, first="random", generator=torch.Generator().manual_seed(3))
    r2 = kcenter_select(pts, 30, first="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(r1, r2)
    explicit = kcenter_select(pts, 30, first=torch.tensor([7, 11]))
    assert explicit[:, 0].tolist() == [7, 11]


def test_large_batch_matches_pairwise_on_exact_values():
    """Values on a 1/64 grid make every distance exact in float32: both formulations agree bit for bit."""
    g = torch.Generator().manual_seed(0)
    pts = torch.randint(-64, 64, (4, 6, 7, 7, 48), generator=g).float() / 64
    a = kcenter_select(pts, 60, first="center")
    b = kcenter_greedy_pairwise(pts, 60, first="center")
    assert torch.equal(a, b)


@pytest.mark.parametrize("sd", [1, 4])
def test_bounded_skips_work_but_selects_like_dense(sd, monkeypatch):
    """The projection bound must never skip a point whose minimum would change: on smooth, low-rank
    "video" (where it skips most points) and on white noise (where it can skip almost none), with and
    without spatial cells, the bounded loop returns exactly the dense selection."""
    g = torch.Generator().manual_seed(1)
    t, h, w = 6, 8, 8
    basis = torch.randn(6, 48, generator=g)
    smooth = torch.randn(3, t, h, w, 6, generator=g).cumsum(1).cumsum(2) @ basis / 8  # low rank, correlated
    smooth = (smooth * 64).round() / 64  # exact distances: a tie is a tie in both loops
    noise = torch.randint(-64, 64, (3, t, h, w, 48), generator=g).float() / 64
    import snappix.masking.kcenter as kc
    calls = []
    real = kc._greedy_bounded

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(kc, "_greedy_bounded", spy)
    k = 16 if sd > 1 else 120
    for pts in (smooth, noise):
        dense = kcenter_select(pts, k, space_division=sd, first="center", method="dense")
        bounded = kcenter_select(pts, k, space_division=sd, first="center", method="bounded")
        assert torch.equal(dense, bounded)
    assert len(calls) == 2
    monkeypatch.setattr(kc, "BOUNDED_MIN_VALUES", 1)  # auto takes the bounded loop on CPU above the size
    assert torch.equal(kcenter_select(noise, k, space_division=sd, first="center"), dense)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="method"):
        kcenter_select(smooth, k, method="fast")


def test_coordinates_and_points():
    c = patch_coordinates(32, 14, 14, patch_size=16, rgb_range=2.0)
    assert c.shape == (32, 14, 14, 3)
    assert c[..., 0].min().item() == pytest.approx(-4.0) and c[..., 0].max().item() == pytest.approx(4.0)
    assert c[..., 1].max().item() == pytest.approx(np.sqrt(8) * 2 / 2, rel=1e-5)
    p = patch_points(torch.zeros(2, 4, 3, 3, 10), 16)
    assert p.shape == (2, 4, 3, 3, 13)
    assert hybrid_frame_indices(32, 3).tolist() == [0, 15, 31]
    m = indices_to_mask(torch.tensor([[0, 2]]), 5)
    assert m.tolist() == [[False, True, False, True, True]]


def test_kcenter_vit_tokens_hybrid_frames_and_eval_determinism():
    model = timm.create_model("kcenter_vit_super_tiny_patch8_112", num_classes=3, num_frames=8,
                              num_sample_patches=3 * 196, num_hybrid_frames=2, depth=2)
    video = torch.rand(2, 1, 8, 112, 112)
    model.eval()
    idx = model.select(model.patchify(model.input_norm(video)))
    assert idx.shape == (2, 588)
    hybrid = model.hybrid_frames.tolist()
    assert hybrid == [0, 7]
    for row in idx:
        assert len(set(row.tolist())) == 588
        frames = (row // 196).tolist()
        assert frames[:392] == [0] * 196 + [7] * 196  # hybrid frames whole
        assert not set(frames[392:]) & set(hybrid)  # k-center picks only from the other frames
    with torch.no_grad():
        assert torch.equal(model(video), model(video))
    model.train()
    out = model(video)
    assert out.shape == (2, 3)
    out.sum().backward()
    assert model.patch_embed.proj.weight.grad is not None
    mask = model.token_mask(video)
    assert mask.sum(1).tolist() == [8 * 196 - 588] * 2
