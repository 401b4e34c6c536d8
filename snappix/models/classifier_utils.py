"""Helpers shared by every classifier: input normalisation, clip checks, parameter counts, sensor groups.

Used by the ViT classifiers (:mod:`~snappix.models.classifiers`), the CNNs (:mod:`~snappix.models.cnn3d`,
:mod:`~snappix.models.svc2d`), the k-center ViT and VideoMamba; kept apart so that none of them imports
another classifier's module for them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from timm.layers import to_2tuple
from torch import nn

from snappix.data.constants import K710_SSV2_MEAN, K710_SSV2_STD

__all__ = ["InputNorm", "check_clip", "count_parameters", "sensor_param_names", "sensor_lr_scales"]


class InputNorm(nn.Module):
    """Per-channel input normalisation ``(x - mean) / std`` on ``(B, C, ...)`` tensors.

    Args:
        channels: C.
        mean, std: a float or C floats (SnapPix's linear-grey K710+SSV2 statistics 0.2277 / 0.2425 by
            default); ``None`` for both makes the module the identity (the data pipeline normalised).

    The statistics are non-persistent buffers: they are not in the state dict, so checkpoints do not
    depend on them.

    Raises:
        ValueError: only one of ``mean`` / ``std`` given, a wrong number of values, or ``std <= 0``.
    """

    def __init__(self, channels: int, mean: float | Sequence[float] | None = K710_SSV2_MEAN,
                 std: float | Sequence[float] | None = K710_SSV2_STD) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both norm_mean and norm_std, or neither")
        self.channels = channels
        self.register_buffer("mean", self._stat(mean, "norm_mean"), persistent=False)
        self.register_buffer("std", self._stat(std, "norm_std"), persistent=False)
        if self.std is not None and bool((self.std <= 0).any()):
            raise ValueError(f"norm_std must be > 0, got {std}")

    def _stat(self, value, name: str) -> torch.Tensor | None:
        if value is None:
            return None
        t = torch.as_tensor(value, dtype=torch.float32).flatten()
        if t.numel() not in (1, self.channels):
            raise ValueError(f"{name} must be a float or {self.channels} floats (one per channel), got {value}")
        return t.expand(self.channels).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: float ``(B, C, ...)`` -> same shape and dtype."""
        if self.mean is None:
            return x
        shape = (1, self.channels) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape).to(x.dtype)) / self.std.view(shape).to(x.dtype)

    def extra_repr(self) -> str:
        if self.mean is None:
            return "identity"
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"


def check_clip(video: torch.Tensor, in_chans: int, num_frames: int, img_size: int | Sequence[int],
               owner: str) -> None:
    """Raise ``ValueError`` unless ``video`` is a floating ``(B, in_chans, num_frames, H, W)`` clip of the built
    size (``img_size``: an int or ``(H, W)``); ``owner`` (the model's name) starts the message."""
    h, w = to_2tuple(img_size)
    expected = (in_chans, num_frames, h, w)
    if video.dim() != 5 or tuple(video.shape[1:]) != expected:
        raise ValueError(f"{owner} expects a clip (B, C, T, H, W) = (B, {', '.join(map(str, expected))}) in linear "
                         f"[0, 1], got shape {tuple(video.shape)}; build the model for other sizes "
                         f"(num_frames=..., img_size=...)")
    if not video.is_floating_point():
        raise ValueError(f"{owner} expects a floating-point clip in [0, 1], got dtype {video.dtype}")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model``.

    ``trainable_only=False`` (default) counts every parameter, including a frozen sensor's pattern logits:
    that is what SnapPix's "number of params" reports, because its ``coded_weight`` keeps
    ``requires_grad=True`` even when the pattern is frozen (``decor_fix``) and its count is
    ``sum(p.numel() for p in model.parameters() if p.requires_grad)``. Works on meta-device models.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def sensor_param_names(sensor: nn.Module | None, prefix: str = "sensor") -> set[str]:
    """Full names (``prefix.<name>``) of the sensor's parameters (exempt from weight decay; SnapPix
    ``coded_layer.*``)."""
    if sensor is None:
        return set()
    return {f"{prefix}.{n}" for n, _ in sensor.named_parameters()}


def sensor_lr_scales(sensor: nn.Module | None, prefix: str = "sensor") -> dict[str, float]:
    """``{param name: lr scale}`` for a sensor with its own learning-rate scale.

    The TPAMI'23 layer (:class:`~snappix.sensor.PamiExposure`) carries ``lr_scale = 1 / sigma`` (about 366;
    SnapPix's ``pami_fix`` optimiser group, docs/methods/snappix.md §1); other sensors return ``{}``. The
    optimiser factory multiplies the group's schedule by this scale.
    """
    scale = getattr(sensor, "lr_scale", None) if sensor is not None else None
    if scale is None:
        return {}
    return {name: float(scale) for name in sensor_param_names(sensor, prefix)}
