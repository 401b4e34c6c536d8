"""Attention-guided masking (UMT / VideoMamba): exact visible count per frame, score-weighted, seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snappix.masking import AttentionGuidedMasking, attention_guided_mask


def test_torch_exact_visible_per_frame_and_weighting():
    scores = torch.rand(3, 4, 196)
    scores[:, :, :40] += 100.0  # 40 dominant tokens per frame
    mask = attention_guided_mask(scores, 0.8, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 4 * 196) and mask.dtype == torch.bool
    vis = (~mask).reshape(3, 4, 196)
    assert (vis.sum(-1) == 196 - int(0.8 * 196)).all()  # 40 visible per frame (VideoMamba)
    assert vis[..., :40].float().mean() > 0.9  # high-attention tokens stay visible


def test_torch_zero_scores_and_seed():
    scores = torch.zeros(2, 2, 16)
    scores[0, 0, 3] = 1.0  # a single positive weight still yields the exact count
    a = attention_guided_mask(scores, 0.5, generator=torch.Generator().manual_seed(1))
    b = attention_guided_mask(scores, 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert ((~a).reshape(2, 2, 16).sum(-1) == 8).all()
    assert not bool(a[0, 3])
    with pytest.raises(ValueError):
        attention_guided_mask(-scores - 1, 0.5)
    with pytest.raises(ValueError):
        attention_guided_mask(scores, 1.0)


def test_numpy_generator_exact_counts():
    gen = AttentionGuidedMasking((8, 14, 14), 0.9)
    rng = np.random.default_rng(0)
    for scores in (np.zeros((8, 14, 14)), rng.random((8, 14, 14)), (rng.random((8, 14, 14)) > 0.95) * 1.0):
        mask = gen(scores, rng)
        assert mask.shape == (1568,) and int(mask.sum()) == gen.num_masked
        assert ((~mask).reshape(8, 196).sum(1) == 196 - int(0.9 * 196)).all()
    peaked = np.zeros((8, 14, 14))
    peaked[:, 0, :10] = 1.0  # 10 salient tokens per frame, 20 visible: all 10 salient visible
    mask = gen(peaked, np.random.default_rng(1)).reshape(8, 196)
    assert (~mask[:, :10]).all()
