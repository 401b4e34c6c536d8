"""Mixup / CutMix for video clips, applied to the raw clip before the sensor (SnapPix; ``docs/methods/snappix.md`` §5).

SnapPix finetunes with timm's ``Mixup`` (mixup alpha 0.8, CutMix alpha 1.0, prob 1.0, switch prob 0.5,
mode ``"batch"``, label smoothing 0.1) on the **raw** video, before the coded-exposure layer. The clip
``(B, C, T, H, W)`` is viewed as ``(B, C*T, H, W)`` so that timm treats frames as channels: a CutMix box
is then one spatial rectangle cut through every frame and channel (a space-time tube), and mixup
blends whole clips.

In snappix the sensor lives inside the model, so "before the sensor" means "on the batch, before the
forward pass": :meth:`VideoMixup.batch_transform` is the hook the training loop calls
(``train_one_epoch(..., batch_transform=...)`` / ``fit(..., batch_transform=...)``); it replaces
``video`` with the mixed clip and adds the soft ``target`` that
:class:`snappix.objectives.classification.ClassificationLoss` uses.

Randomness: timm draws ``lam`` and the box from numpy's global generator, which the engine seeds per
rank (``seed_everything``) and checkpoints with the other RNG states, so resumed runs replay it.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from timm.data import Mixup

__all__ = ["VideoMixup", "build_mixup"]


class VideoMixup:
    """timm ``Mixup`` / CutMix over whole video clips, returning soft targets.

    Args:
        num_classes: ``K``, the width of the soft targets.
        mixup_alpha: Beta(alpha, alpha) for mixup's ``lam`` (0 disables mixup). SnapPix: 0.8.
        cutmix_alpha: Beta(alpha, alpha) for CutMix's ``lam`` (0 disables CutMix). SnapPix: 1.0.
        cutmix_minmax: optional ``(min, max)`` box-size ratios (overrides ``cutmix_alpha``).
        prob: probability of mixing a batch (or element, for ``mode`` ``"pair"``/``"elem"``).
        switch_prob: probability of CutMix instead of mixup when both are enabled.
        mode: ``"batch"`` (one ``lam`` and box per batch, SnapPix), ``"pair"`` or ``"elem"``.
        label_smoothing: smoothing folded into the soft targets (SnapPix ``--smoothing 0.1``).
        correct_lam: recompute CutMix's ``lam`` from the box area after clipping at the borders.

    Call ``mixup(video, label) -> (mixed_video, target)``:
        video: float ``(B, C, T, H, W)``, ``B`` even (timm pairs clip ``b`` with clip ``B-1-b``).
        label: int ``(B,)`` class indices in ``[0, K)``.
        Returns the mixed clip (a new tensor, same shape/dtype/device; the input is not modified) and
        ``target`` float32 ``(B, K)``: ``lam * smooth(onehot(label)) + (1 - lam) * smooth(onehot(flip))``
        with ``smooth(y) = y * (1 - s) + s / K`` -- rows sum to 1.

    Raises:
        ValueError: ``video`` not 5-D, ``label`` not ``(B,)``, or an odd batch size (use an even
            ``--batch_size`` x ``num_sample``; training loaders drop the last partial batch).
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0,
                 cutmix_minmax: tuple[float, float] | None = None, prob: float = 1.0, switch_prob: float = 0.5,
                 mode: str = "batch", label_smoothing: float = 0.1, correct_lam: bool = True):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if mode not in ("batch", "pair", "elem"):
            raise ValueError(f"mode must be 'batch', 'pair' or 'elem', got {mode!r}")
        if mixup_alpha <= 0 and cutmix_alpha <= 0 and cutmix_minmax is None:
            raise ValueError("VideoMixup needs mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax; "
                             "use build_mixup(), which returns None when mixing is off")
        self.num_classes = int(num_classes)
        self.mixup = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, cutmix_minmax=cutmix_minmax,
                           prob=prob, switch_prob=switch_prob, mode=mode, correct_lam=correct_lam,
                           label_smoothing=label_smoothing, num_classes=self.num_classes)

    def __repr__(self) -> str:
        m = self.mixup
        return (f"VideoMixup(num_classes={self.num_classes}, mixup_alpha={m.mixup_alpha}, "
                f"cutmix_alpha={m.cutmix_alpha}, cutmix_minmax={m.cutmix_minmax}, prob={m.mix_prob}, "
                f"switch_prob={m.switch_prob}, mode={m.mode!r}, label_smoothing={m.label_smoothing})")

    def __call__(self, video: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if video.dim() != 5:
            raise ValueError(f"VideoMixup expects video (B, C, T, H, W), got shape {tuple(video.shape)}")
        b, c, t, h, w = video.shape
        label = torch.as_tensor(label, device=video.device).long()
        if label.shape != (b,):
            raise ValueError(f"label must have shape ({b},), got {tuple(label.shape)}")
        if b % 2:
            raise ValueError(f"mixup/cutmix needs an even batch size (timm mixes clip b with clip B-1-b), got {b}; "
                             "use an even --batch_size (x num_sample) and drop the last partial batch")
        # frames as channels: one CutMix box through all C*T planes; a private copy (timm works in place)
        flat = video.reshape(b, c * t, h, w).clone()
        flat, target = self.mixup(flat, label)
        return flat.reshape(b, c, t, h, w), target.float()

    def batch_transform(self, batch: Mapping[str, Any]) -> dict:
        """Engine hook: a new batch dict with ``video`` mixed and soft ``target`` ``(B, K)`` added.

        ``label`` keeps the clips' own hard labels (accuracy under mixup uses the dominant label of
        ``target``, see :mod:`snappix.objectives.classification`); every other key is passed through.

        Raises:
            KeyError: the batch has no ``video`` or ``label``; ValueError: as for ``__call__``.
        """
        if "video" not in batch or "label" not in batch:
            raise KeyError(f"VideoMixup.batch_transform needs 'video' and 'label', got keys {sorted(batch)}")
        video, target = self(batch["video"], batch["label"])
        return {**batch, "video": video, "target": target}


def build_mixup(num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0,
                cutmix_minmax: tuple[float, float] | None = None, prob: float = 1.0, switch_prob: float = 0.5,
                mode: str = "batch", label_smoothing: float = 0.1) -> VideoMixup | None:
    """A :class:`VideoMixup` from the usual flags (``--mixup``, ``--cutmix``, ``--cutmix_minmax``,
    ``--mixup_prob``, ``--mixup_switch_prob``, ``--mixup_mode``, ``--smoothing``, ``--nb_classes``), or
    ``None`` when mixing is off (both alphas 0 and no ``cutmix_minmax``, or ``prob`` 0), as in VideoMAE.
    """
    if (mixup_alpha <= 0 and cutmix_alpha <= 0 and cutmix_minmax is None) or prob <= 0:
        return None
    return VideoMixup(num_classes, mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode,
                      label_smoothing)
