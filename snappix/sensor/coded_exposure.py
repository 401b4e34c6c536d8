"""Coded-exposure sensor layer: a clip of T frames -> one coded image (SnapPix, DAC'25; ``docs/methods/snappix.md`` §1).

A coded-exposure (CE) pixel opens its shutter only in some of the T time slots of a frame period.
The binary exposure pattern ``M`` has shape ``(P, T, sh, sw)`` (``P`` = 1 for a grey pattern shared
by all colour channels, or ``P = C`` for one pattern per channel) and is **tiled periodically** over
the image: pixel ``(y, x)`` uses tile entry ``(y mod sh, x mod sw)``. The coded image is

    Y[b, c, 0, y, x] = sum_t M[p, t, y mod sh, x mod sw] * X[b, c, t, y, x] / D[p, y mod sh, x mod sw]

with ``D = max(1, sum_t M)`` (per-pixel mean over the exposed slots, SnapPix's default) or ``D = T``
(the ``normalize="frames"`` ablation; what the TPAMI'23 baseline does).

``M`` is the binarisation of real-valued latent logits ``w`` (SnapPix ``Normal_BinarizeF``):
``M = 1[w > 0]``, then for every pixel the slot with the largest ``w`` is forced to 1, so every
pixel is exposed at least once. The backward pass is the straight-through estimator with identity
gradient, ``dL/dw = dL/dM`` (Bengio et al. 2013). Nothing in here depends on 112x112 inputs or
8x8 tiles: any ``H, W`` divisible by the tile size works, and a tile as large as the frame gives
an untiled ("global") pattern.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from timm.layers import to_2tuple
from torch import nn

from snappix.sensor.noise import SensorNoise

__all__ = ["NORMALIZATIONS", "binarize_ste", "sign_binarize_ste", "CodedExposure", "as_pattern_tensor"]

NORMALIZATIONS = ("exposed", "frames")


class _ForcedBinarize(torch.autograd.Function):
    """``1[w > 0]`` with the argmax slot along ``dim`` forced on; identity gradient (STE)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, dim: int) -> torch.Tensor:  # type: ignore[override]
        mask = (logits > 0).to(logits.dtype)
        mask.scatter_(dim, logits.argmax(dim=dim, keepdim=True), 1.0)
        return mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


class _SignBinarize(torch.autograd.Function):
    """``1[w >= 0]`` (the {0,1} image of ``sign`` with ``sign(0) = +1``); identity gradient (STE)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return (logits >= 0).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad


def binarize_ste(logits: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    """SnapPix binarisation with a straight-through estimator (``docs/methods/snappix.md`` §1).

    Args:
        logits: real-valued latent pattern, any shape with a time axis ``time_dim``
            (the layer uses ``(P, T, sh, sw)``), floating dtype.
        time_dim: the axis along which the largest logit is forced on.

    Returns:
        Tensor of the same shape and dtype with values in {0, 1}: ``1[w > 0]`` and, for every position
        of the other axes, the slot with the largest logit set to 1 (ties: the first). Its gradient with
        respect to ``logits`` is the identity (STE).
    """
    return _ForcedBinarize.apply(logits, time_dim % logits.dim())


def sign_binarize_ste(logits: torch.Tensor) -> torch.Tensor:
    """TPAMI'23 (Kumawat et al.) binarisation: ``(sign(w) + 1) / 2`` with ``sign(0) = +1``; identity STE.

    Unlike :func:`binarize_ste` no slot is forced on, so a pixel may stay unexposed.
    """
    return _SignBinarize.apply(logits)


def as_pattern_tensor(pattern: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Binary pattern in any accepted layout -> float32 CPU tensor ``(P, T, sh, sw)``.

    Accepts ``(T, sh, sw)`` (one grey pattern) or ``(P, T, sh, sw)``, as a torch tensor or numpy array
    with values exactly 0 or 1 (any numeric or bool dtype). The result may share memory with a float32
    CPU input; clone it before modifying it in place.

    Raises:
        ValueError: wrong number of dimensions, an empty axis, or a value other than 0/1.
    """
    t = torch.as_tensor(np.asarray(pattern) if not isinstance(pattern, torch.Tensor) else pattern)
    t = t.detach().to("cpu", torch.float32)
    shape = tuple(t.shape)
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4 or min(t.shape) < 1:
        raise ValueError(f"an exposure pattern must be (T, sh, sw) or (P, T, sh, sw), got shape {shape}")
    if not bool(((t == 0) | (t == 1)).all()):
        bad = t[(t != 0) & (t != 1)].unique()[:5].tolist()
        raise ValueError(f"an exposure pattern must be binary (0/1), found values {bad}")
    return t.contiguous()


class CodedExposure(nn.Module):
    """Coded-exposure sensor: linear clip ``(B, C, T, H, W)`` -> coded image ``(B, C, 1, H, W)``.

    Implements SnapPix's ``CodedLayer`` (DAC'25; ``docs/methods/snappix.md`` §1) without its 112x112 / 8x8 limits, plus
    the ablations of ``CodedAblatLayer`` (``normalize="frames"``; untiled pattern = ``tile_size=(H, W)``)
    and an optional sensor noise model (off by default; SnapPix simulates an ideal sensor).

    Args:
        num_frames: T, time slots per coded frame (SnapPix: 16).
        tile_size: ``s`` or ``(sh, sw)``, spatial period of the pattern in pixels (SnapPix: 8).
        pattern_channels: P, 1 for a grey pattern applied to every input channel (SnapPix), or the number
            of input channels C for one pattern per channel.
        init_pattern: optional binary pattern ``(T, sh, sw)`` or ``(P, T, sh, sw)``; the logits start at
            ``(2 * pattern - 1) * init_value`` (SnapPix's ``init_pattern_path`` branch). Without it the
            logits are drawn from ``U(-init_value, +init_value)`` (about 50 % duty) using ``generator``.
        init_value: magnitude of the initial logits (SnapPix: 0.03).
        trainable: True -> the logits are an ``nn.Parameter`` updated through the STE (``decor_learn``,
            ``naive_learned``, decorrelation training); False -> ``requires_grad=False`` and the mask is
            built under ``no_grad`` (``decor_fix`` and every frozen baseline).
        normalize: ``"exposed"`` (divide each pixel by its exposure count, SnapPix) or ``"frames"``
            (divide by T, the ``no_norm`` ablation).
        noise: optional :class:`~snappix.sensor.noise.SensorNoise` applied to the integrated charge before
            normalisation (so pixels with fewer exposures get the lower SNR a real sensor gives them).
        generator: RNG for the random initialisation (seeded construction is reproducible).
        source: free text recorded in ``extra_repr`` (e.g. the pattern file it came from).

    Input:
        ``x``: float tensor ``(B, C, T, H, W)``, linear intensity in [0, 1] (not normalised); ``T`` must
        equal ``num_frames``; ``H % sh == 0`` and ``W % sw == 0``; ``C`` equal to P, or any C if P == 1.

    Output:
        ``(B, C, 1, H, W)``, same dtype/device as ``x``, in [0, 1] for inputs in [0, 1] (the time axis is
        kept with size 1, as in SnapPix). Models normalise it afterwards, e.g. with
        ``(Y - 0.2277) / 0.2425`` (:data:`snappix.sensor.K710_SSV2_MEAN` / ``K710_SSV2_STD``).

    Raises:
        ValueError: bad constructor arguments, or an input of the wrong rank / T / size / channels.
    """

    def __init__(
        self,
        num_frames: int = 16,
        tile_size: int | Sequence[int] = 8,
        pattern_channels: int = 1,
        init_pattern: torch.Tensor | np.ndarray | None = None,
        init_value: float = 0.03,
        trainable: bool = True,
        normalize: str = "exposed",
        noise: SensorNoise | None = None,
        generator: torch.Generator | None = None,
        source: str = "",
    ) -> None:
        super().__init__()
        sh, sw = to_2tuple(tile_size)
        if num_frames < 1 or sh < 1 or sw < 1 or pattern_channels < 1:
            raise ValueError(
                "num_frames, tile_size and pattern_channels must be >= 1, "
                f"got {num_frames}, {(sh, sw)}, {pattern_channels}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if init_value <= 0:
            raise ValueError(f"init_value must be > 0, got {init_value}")
        self.num_frames, self.tile_size, self.pattern_channels = num_frames, (sh, sw), pattern_channels
        self.normalize, self.init_value, self.trainable, self.source = normalize, float(init_value), trainable, source
        shape = (pattern_channels, num_frames, sh, sw)
        if init_pattern is None:
            logits = (torch.rand(shape, generator=generator) * 2.0 - 1.0) * init_value
        else:
            logits = self._logits_from_pattern(init_pattern, shape)
        self.logits = nn.Parameter(logits, requires_grad=trainable)
        self.noise = noise

    # ------------------------------------------------------------------ pattern
    def _logits_from_pattern(self, pattern: torch.Tensor | np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        p = as_pattern_tensor(pattern)
        if p.shape[0] == 1 and shape[0] > 1:
            p = p.expand(shape[0], -1, -1, -1)
        if tuple(p.shape) != shape:
            raise ValueError(f"pattern shape {tuple(p.shape)} does not match the layer's (P, T, sh, sw) = {shape}")
        return (2.0 * p - 1.0) * self.init_value

    @torch.no_grad()
    def set_pattern(self, pattern: torch.Tensor | np.ndarray) -> None:
        """Reset the logits to ``(2 * pattern - 1) * init_value`` for a binary ``(T, sh, sw)`` / ``(P, T, sh, sw)``.

        Raises:
            ValueError: non-binary pattern or a shape other than the layer's.
        """
        self.logits.copy_(self._logits_from_pattern(pattern, tuple(self.logits.shape)).to(self.logits))

    def binarize(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``(P, T, sh, sw)`` -> binary mask of the same shape (SnapPix rule, STE; see :func:`binarize_ste`)."""
        return binarize_ste(logits, time_dim=1)

    def effective_logits(self) -> torch.Tensor:
        """The logits fed to :meth:`binarize` in this forward pass (a hook for noisy/annealed variants)."""
        return self.logits

    def mask(self) -> torch.Tensor:
        """Current binary exposure mask ``(P, T, sh, sw)`` in {0, 1}, float, on the logits' device.

        Differentiable (STE) when ``trainable``; computed under ``no_grad`` otherwise.
        """
        if self.trainable and torch.is_grad_enabled():
            return self.binarize(self.effective_logits())
        with torch.no_grad():
            return self.binarize(self.effective_logits())

    @torch.no_grad()
    def get_pattern(self) -> torch.Tensor:
        """The binary pattern as a float32 CPU tensor ``(P, T, sh, sw)``, values in {0, 1}.

        Deterministic: uses the logits themselves, never the annealing noise of a subclass.
        """
        return self.binarize(self.logits.detach()).to("cpu", torch.float32)

    @torch.no_grad()
    def duty_cycle(self) -> float:
        """Fraction of exposed (slot, pixel) entries, ``mean(M)`` in (0, 1]; SnapPix logs ``1 - duty`` ("sparsity")."""
        return float(self.get_pattern().mean())

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay (timm convention): the pattern logits."""
        return {"logits"}

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"CodedExposure expects (B, C, T, H, W), got shape {tuple(x.shape)}")
        _, c, t, h, w = x.shape
        sh, sw = self.tile_size
        if t != self.num_frames:
            raise ValueError(f"CodedExposure built for T={self.num_frames} frames, got T={t} (shape {tuple(x.shape)})")
        if h % sh or w % sw:
            raise ValueError(f"input size {h}x{w} is not divisible by the tile size {sh}x{sw}")
        if self.pattern_channels != 1 and c != self.pattern_channels:
            raise ValueError(f"pattern has {self.pattern_channels} channels but the input has C={c}")
        if not x.is_floating_point():
            raise ValueError(f"CodedExposure expects a floating-point clip in [0, 1], got dtype {x.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        _, _, t, h, w = x.shape
        sh, sw = self.tile_size
        reps = (1, 1, h // sh, w // sw)
        m = self.mask().to(x.dtype)  # (P, T, sh, sw)
        if self.normalize == "exposed":
            denom = m.sum(dim=1, keepdim=True).clamp(min=1.0)  # (P, 1, sh, sw)
        else:
            denom = torch.full_like(m[:, :1], float(t))
        if self.noise is None:
            # fold the normalisation into the weights, tile them to (P, T, H, W) (200 K entries for
            # 16 x 112 x 112) and reduce over T; (P, T, H, W) broadcasts against (B, C, T, H, W)
            weights = (m / denom).repeat(reps)
            return (x * weights).sum(dim=2, keepdim=True)
        integrated = (x * m.repeat(reps)).sum(dim=2, keepdim=True)  # (B, C, 1, H, W), in units of one slot
        integrated = self.noise(integrated / t) * t
        return integrated / denom.repeat(reps)

    def extra_repr(self) -> str:
        text = (f"num_frames={self.num_frames}, tile_size={self.tile_size}, pattern_channels={self.pattern_channels}, "
                f"normalize={self.normalize!r}, trainable={self.trainable}")
        return text + (f", source={self.source!r}" if self.source else "")
