"""Finetuning loss and mixup: timm Mixup/CutMix over whole clips (one box through all frames), soft
targets, ClassificationLoss values against hand computation, and the engine's ``batch_transform`` hook."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from snappix.data.mixup import VideoMixup, build_mixup
from snappix.engine import args as A
from snappix.engine import distributed as D
from snappix.engine import loop as L
from snappix.engine import runner as R
from snappix.engine.method import Method
from snappix.objectives import ClassificationLoss, topk_accuracy

K = 4
S = 0.1  # label smoothing


def _clips(b=4, c=2, t=4, h=16, w=16, seed=0):
    return torch.rand(b, c, t, h, w, generator=torch.Generator().manual_seed(seed))


def _lam_of(target, label, b):
    """lam from a smoothed soft target row: target[label] = lam * (1 - S) + S / K (labels distinct)."""
    return (target[b, label[b]].item() - S / K) / (1 - S)


# ---------------------------------------------------------------------------------------------------
# mixup / cutmix
# ---------------------------------------------------------------------------------------------------
def test_cutmix_box_is_one_rectangle_through_all_frames_and_channels():
    video = _clips()
    label = torch.tensor([0, 1, 2, 3])
    mix = VideoMixup(K, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=S)
    boxes = 0
    for seed in range(8):
        np.random.seed(seed)
        original = video.clone()
        mixed, target = mix(video, label)
        assert torch.equal(video, original)  # the caller's clip is not modified
        assert mixed.shape == video.shape and target.shape == (4, K)
        for b in range(4):
            partner = 3 - b  # timm "batch" mode mixes clip b with clip B-1-b
            from_partner = (mixed[b] == video[partner]) & (mixed[b] != video[b])
            from_self = mixed[b] == video[b]
            assert bool((from_partner | from_self).all())
            mask = from_partner[0, 0]
            assert bool((from_partner == mask).all())  # the same box in every channel and every frame
            rows, cols = mask.any(1), mask.any(0)
            assert torch.equal(mask, rows[:, None] & cols[None, :])  # a rectangle
            lam = _lam_of(target, label, b)
            assert mask.float().mean().item() == pytest.approx(1 - lam, abs=1e-6)  # lam = kept area
            assert target[b, label[partner]].item() == pytest.approx((1 - lam) * (1 - S) + S / K, abs=1e-6)
            boxes += int(mask.any())
    assert boxes > 0


def test_mixup_blends_whole_clips_with_the_targets_lam():
    video = _clips(seed=1)
    label = torch.tensor([3, 2, 1, 0])
    np.random.seed(0)
    mixed, target = VideoMixup(K, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=S)(video, label)
    for b in range(4):
        lam = _lam_of(target, label, b)
        assert 0 < lam < 1
        torch.testing.assert_close(mixed[b], lam * video[b] + (1 - lam) * video[3 - b], atol=1e-6, rtol=0)


def test_soft_targets_sum_to_one_and_default_recipe():
    mix = build_mixup(num_classes=10)  # SnapPix defaults: 0.8 / 1.0 / prob 1 / switch 0.5 / batch / 0.1
    assert isinstance(mix, VideoMixup)
    m = mix.mixup
    assert (m.mixup_alpha, m.cutmix_alpha, m.mix_prob, m.switch_prob, m.mode, m.label_smoothing) == \
        (0.8, 1.0, 1.0, 0.5, "batch", 0.1)
    np.random.seed(3)
    label = torch.tensor([0, 9, 4, 4, 7, 1])
    for _ in range(10):
        _, target = mix(_clips(b=6), label)
        assert target.dtype == torch.float32
        torch.testing.assert_close(target.sum(1), torch.ones(6))
        assert bool((target >= S / 10 - 1e-7).all())
    assert build_mixup(10, mixup_alpha=0, cutmix_alpha=0) is None
    assert build_mixup(10, prob=0.0) is None


def test_mixup_errors_odd_batch_and_shapes():
    mix = VideoMixup(K)
    with pytest.raises(ValueError, match="even batch size"):
        mix(_clips(b=3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        mix(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="label must have shape"):
        mix(_clips(), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="mixup_alpha > 0"):
        VideoMixup(K, mixup_alpha=0, cutmix_alpha=0)


def test_batch_transform_adds_target_keeps_label_and_other_keys():
    video = _clips()
    batch = {"video": video, "label": torch.tensor([0, 1, 2, 3]), "index": torch.arange(4)}
    np.random.seed(0)
    out = VideoMixup(K).batch_transform(batch)
    assert set(out) == {"video", "label", "index", "target"}
    assert out["label"] is batch["label"] and out["index"] is batch["index"]
    assert batch["video"] is video and "target" not in batch  # the input batch is untouched
    assert not torch.equal(out["video"], video)
    with pytest.raises(KeyError, match="label"):
        VideoMixup(K).batch_transform({"video": video})


# ---------------------------------------------------------------------------------------------------
# ClassificationLoss
# ---------------------------------------------------------------------------------------------------
LOGITS = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0, 0.3],
                       [0.1, 0.2, 3.0, 0.0, -2.0, 1.0],
                       [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]])
LABELS = torch.tensor([0, 5, 5])  # row 0: rank 1; row 1: rank 2; row 2: rank 6 (last)


def _log_softmax(x):
    return x - torch.log(torch.exp(x).sum(1, keepdim=True))


def test_label_smoothed_and_plain_ce_match_hand_computation():
    logp = _log_softmax(LOGITS.double())
    nll = -logp[torch.arange(3), LABELS]
    loss, metrics = ClassificationLoss(smoothing=0.1)(LOGITS, {"label": LABELS})
    expected = (0.9 * nll + 0.1 * (-logp).mean(1)).mean().item()
    assert loss.item() == pytest.approx(expected, rel=1e-6) and metrics["loss"] == pytest.approx(expected, rel=1e-6)
    assert metrics["acc1"] == pytest.approx(100 / 3) and metrics["acc5"] == pytest.approx(200 / 3)
    loss0, _ = ClassificationLoss(smoothing=0)(LOGITS.to(torch.bfloat16).float(), {"label": LABELS})
    ref0 = -_log_softmax(LOGITS.to(torch.bfloat16).double())[torch.arange(3), LABELS]
    assert loss0.item() == pytest.approx(ref0.mean().item(), rel=1e-6)


def test_soft_target_loss_and_dominant_label_accuracy():
    target = torch.tensor([[0.7, 0.3, 0, 0, 0, 0],
                           [0, 0.4, 0, 0, 0, 0.6],
                           [0, 0, 0, 0, 0.45, 0.55]])
    batch = {"label": torch.tensor([1, 1, 4]), "target": target}  # hard labels are ignored under mixup
    loss, metrics = ClassificationLoss(smoothing=0.1, mixup_active=True)(LOGITS, batch)
    expected = (-(target.double() * _log_softmax(LOGITS.double())).sum(1)).mean().item()
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # dominant labels: 0 (rank 1), 5 (rank 2), 5 (rank 6)
    assert metrics["acc1"] == pytest.approx(100 / 3) and metrics["acc5"] == pytest.approx(200 / 3)
    with pytest.raises(KeyError, match="batch_transform"):
        ClassificationLoss(mixup_active=True)(LOGITS, {"label": LABELS})
    with pytest.raises(ValueError, match="logits"):
        ClassificationLoss()(LOGITS[0], {"label": LABELS})
    with pytest.raises(ValueError, match="smoothing"):
        ClassificationLoss(smoothing=1.0)


def test_topk_accuracy_clamps_k():
    assert topk_accuracy(LOGITS[:, :3], torch.tensor([2, 0, 2]), (1, 5)) == [0.0, 100.0]


# ---------------------------------------------------------------------------------------------------
# the engine hook: mixup on the raw clip before the model (which holds the sensor)
# ---------------------------------------------------------------------------------------------------
class Clips(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return {"video": torch.rand(1, 2, 4, 4, generator=torch.Generator().manual_seed(i)), "label": i % K,
                "index": i}


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []
        self.head = nn.Linear(32, K)

    def forward(self, video):
        self.seen.append(video.detach().clone())
        return self.head(video.flatten(1))


def test_train_one_epoch_applies_batch_transform_before_the_model():
    torch.manual_seed(0)
    model = Classifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(Clips(), batch_size=4, drop_last=True)
    mix = VideoMixup(K)
    calls = []

    def transform(batch):
        out = mix.batch_transform(batch)
        calls.append(out["video"])
        return out

    np.random.seed(0)
    stats = L.train_one_epoch(model, ClassificationLoss(mixup_active=True), loader, opt, "cpu", 0, [0.1] * 3,
                              precision="fp32", batch_transform=transform)
    assert len(calls) == 3 and stats["steps"] == 3 and {"loss", "acc1", "acc5"} <= set(stats)
    assert all(torch.equal(seen, mixed) for seen, mixed in zip(model.seen, calls))  # the model saw the mixed clip
    with pytest.raises(KeyError, match="batch_transform"):  # without the hook the mixup objective refuses
        L.train_one_epoch(model, ClassificationLoss(mixup_active=True), loader, opt, "cpu", 0, [0.1] * 3,
                          precision="fp32")


def test_fit_passes_batch_transform(tmp_path):
    args = A.parse_args(A.build_parser(), ["--device", "cpu", "--epochs", "1", "--batch_size", "4", "--num_workers",
                                           "0", "--output_dir", str(tmp_path), "--no_progress", "--lr", "1e-3",
                                           "--warmup_epochs", "0"])
    info = D.DistInfo()
    seen = []

    def transform(batch, model):
        assert isinstance(model, Classifier) and not torch.is_grad_enabled()  # the plug's hook: no_grad, model
        seen.append(batch["video"].shape[0])
        return VideoMixup(K).batch_transform(batch)

    method = Method(model=Classifier(), objective=ClassificationLoss(mixup_active=True), train_set=Clips(),
                    model_inputs=(), batch_transform=transform)
    history = R.fit(args, info, method)
    assert seen == [4, 4, 4] and math.isfinite(history["train"][0]["loss"])
