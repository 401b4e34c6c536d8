"""Decorrelation building blocks of the claims studies: clip groups, exact moments, fitting, protocol scoring,
and the fixed patterns every study compares with (:data:`FIXED`, :func:`fixed_pattern`).

The score of a pattern is always the documented protocol (``docs/decorrelation_protocol.md``): SnapPix
preprocessing, centre crop 112, 16-frame windows at rate 4 starting every 32 frames (plus the clamped
window of a too-short clip), patch norm, one pooled 64 x 64 correlation, mean |off-diagonal r| -- the
number ``run_decorrelation_training.py --test_pattern --preprocess snappix --patch_norm_coded`` prints for the
same videos (:func:`score_pattern`, via :func:`snappix.decorrelation.evaluate.evaluate`).

Fitting (:func:`fit_pattern`) is the ``--objective moments`` recipe of that script (AdamW on the pattern
logits through the straight-through estimator, each step on the exact pooled correlation of
:class:`snappix.sensor.moments.TileMoments`, then greedy single-bit refinement), run on moments that are
computed once per group of clips and mixed with weights (:meth:`TileMoments.add`), so that several
training sets can be formed without reading the clips again. SnapPix: https://arxiv.org/abs/2504.04535.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from snappix.decorrelation.data import GreyClipSource, protocol_windows
from snappix.decorrelation.evaluate import batches, evaluate
from snappix.decorrelation.train import LOSSES
from snappix.sensor import (CodedExposure, greedy_flip_refine, load_shipped_pattern, long_exposure_pattern,
                            short_exposure_pattern)
from snappix.sensor.moments import TileMoments

__all__ = ["Geometry", "FIXED", "fixed_pattern", "SCENES", "scene_of", "group_by_scene", "clip_moments",
           "save_moments", "load_moments", "mix", "fit_pattern", "score_pattern"]

#: the mmaction2 test clips of the protocol that show the same scene (they must fall into the same fold):
#: ``demo_spatiotemporal_det.mp4`` is ``demo.mp4`` with detection boxes drawn in, and
#: ``rawvideo_dataset_part_0.mp4`` shows the same swimming-pool shot as ``test.mp4``
SCENES = {"demo.mp4": "arm-wrestling", "demo_spatiotemporal_det.mp4": "arm-wrestling",
          "rawvideo_dataset_part_0.mp4": "pool", "test.mp4": "pool", "test.avi": "make-up"}


@dataclass(frozen=True)
class Geometry:
    """Clip geometry of the protocol: T frames, frame step, crop side, tile side, window stride for scoring."""

    num_frames: int = 16
    sampling_rate: int = 4
    input_size: int = 112
    tile_size: int = 8
    val_stride: int = 32


def scene_of(path: str | os.PathLike) -> str:
    """Scene name of a clip: :data:`SCENES` for the known protocol clips, else the file name itself."""
    name = Path(path).name
    return SCENES.get(name, name)


def group_by_scene(paths: list[str]) -> dict[str, list[int]]:
    """``{scene: [indices into paths]}`` in order of first appearance (see :func:`scene_of`)."""
    out: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        out.setdefault(scene_of(p), []).append(i)
    return out


@torch.no_grad()
def clip_moments(source: GreyClipSource, videos: list[int], stride: int, geometry: Geometry = Geometry(),
                 batch_size: int = 32, sampling_rate: int | None = None) -> TileMoments:
    """Exact second moments (patch norm on) of the training windows of some videos of ``source``.

    Windows: every start ``0, stride, 2 * stride, ...`` that fits (one clamped window for a too-short video),
    as :func:`snappix.decorrelation.data.protocol_windows`; every window counts once.

    Args:
        source: decoded clips; ``videos``: indices into it; ``stride``: window start step in frames (>= 1).
        sampling_rate: frame step inside a window (default ``geometry.sampling_rate``); a smaller step shows
            the same clips with slower motion (temporal-scale augmentation).

    Returns:
        A :class:`TileMoments` (float64 sums, ``symmetry="none"``).
    """
    g = geometry
    sub = source.subset(videos)
    moments = TileMoments(g.num_frames, g.tile_size, patch_norm=True)
    windows = protocol_windows(sub, g.num_frames, sampling_rate or g.sampling_rate, stride)
    for chunk in batches(windows, batch_size, drop_last=False):
        moments.update(sub.batch(chunk))
    return moments


def save_moments(moments: TileMoments, path: str | os.PathLike) -> None:
    """Write :meth:`TileMoments.state_dict` atomically (temporary file, then ``os.replace``)."""
    from snappix.engine.checkpoint import atomic_save

    atomic_save(moments.state_dict(), str(path))


def load_moments(path: str | os.PathLike, symmetry: str = "none") -> TileMoments:
    """Read moments written by :func:`save_moments` (``weights_only`` loading).

    Raises:
        ValueError: the file cannot be read (the message names it).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read the moments ({exc}); delete it to recompute") from exc
    moments = TileMoments(int(state["num_frames"]), tuple(state["tile_size"]), bool(state["patch_norm"]),
                          symmetry=symmetry)
    moments.load_state_dict(state)
    return moments


def mix(parts: list[tuple[TileMoments, float]], symmetry: str = "none") -> TileMoments:
    """Weighted sum of moments (each tile of part ``k`` counted ``w_k`` times) with the given symmetry.

    Raises:
        ValueError: no part, a weight <= 0, or parts of different geometry.
    """
    if not parts:
        raise ValueError("mix needs at least one part")
    first = parts[0][0]
    out = TileMoments(first.num_frames, first.tile_size, first.patch_norm, symmetry=symmetry)
    for moments, weight in parts:
        out.add(moments, weight)
    return out


def fit_pattern(moments: TileMoments, seed: int = 0, steps: int = 2000, lr: float = 1e-3, max_flips: int = 1000,
                loss: str = "mse", refine_loss: str = "l1") -> tuple[torch.Tensor, dict]:
    """Learn a binary pattern on exact moments: ``steps`` AdamW steps (STE, wd 0), then greedy bit flips.

    Same objective, initialisation (SnapPix's U(+-0.03) logits from ``seed``) and optimiser as
    ``run_decorrelation_training.py --objective moments --lr LR --wd 0 --refine_max_flips N --seed SEED``.

    Args:
        moments: the training clips' moments (with their symmetry); ``steps`` >= 0; ``max_flips`` >= 0.
        loss, refine_loss: ``"mse"`` or ``"l1"`` of the off-diagonal correlations.

    Returns:
        ``(pattern, stats)``: float32 ``(1, T, s, s)`` in {0, 1} with every pixel exposed, and
        ``{"train_loss", "refine_before", "refine_after", "flips", "duty_cycle"}``.
    """
    t, (sh, sw) = moments.num_frames, moments.tile_size
    torch.manual_seed(seed)
    sensor = CodedExposure(t, (sh, sw), trainable=True, generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(sensor.parameters(), lr=lr, weight_decay=0.0)
    loss_fn, last = LOSSES[loss], float("nan")
    for _ in range(steps):
        value = loss_fn(moments.correlation(sensor.mask()))
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        last = float(value.detach())
    pattern = sensor.get_pattern().detach().float()
    history = [float("nan")]
    if max_flips > 0:
        pattern, history = greedy_flip_refine(pattern, lambda p: moments.flip_losses(p, "exposed", refine_loss),
                                              max_flips)
    stats = {"train_loss": last, "refine_before": history[0], "refine_after": history[-1],
             "flips": len(history) - 1, "duty_cycle": float(pattern.mean())}
    return pattern, stats


def score_pattern(pattern: torch.Tensor | np.ndarray, source: GreyClipSource, videos: list[int],
                  geometry: Geometry = Geometry(), batch_size: int = 64) -> float:
    """The protocol's mean |off-diagonal r| of a pattern on some videos of ``source`` (module docstring).

    Args:
        pattern: binary ``(1, T, s, s)`` or ``(T, s, s)``; ``videos``: indices into ``source`` (at least one).

    Returns:
        The metric in [0, 1] over the protocol windows (stride ``geometry.val_stride``) of those videos.
    """
    g = geometry
    sub = source.subset(videos)
    pattern = torch.as_tensor(np.asarray(pattern), dtype=torch.float32)
    sensor = CodedExposure(g.num_frames, g.tile_size, init_pattern=pattern, trainable=False)
    windows = protocol_windows(sub, g.num_frames, g.sampling_rate, g.val_stride)
    metric, _ = evaluate(sensor, sub, windows, batch_size, g.tile_size, True, torch.device("cpu"))
    return metric


FIXED = {"pattern_4": "SnapPix pattern_4 (released, learned on K710 + SSV2)", "long": "long exposure",
         "short": "short exposure", "naive": "naive (SnapPix pattern_init, 50 % random)",
         "sparse": "sparse (SnapPix pattern_init_sparse)"}


def fixed_pattern(name: str) -> torch.Tensor:
    """The ``(1, 16, 8, 8)`` float32 pattern of a :data:`FIXED` entry."""
    if name == "long":
        return long_exposure_pattern()
    if name == "short":
        return short_exposure_pattern()
    return load_shipped_pattern({"naive": "pattern_init", "sparse": "pattern_init_sparse"}.get(name, name))
