"""One factory for the encoder masks of masked pretraining, keyed by ``--mask_type``.

    mask = encoder_mask_from_flags(vars(args), grid, tube=model.needs_tube_mask)
    check_mask_inputs(vars(args), [e.rel_path for e in dataset.entries], list_path)

Mask types and the modules that implement them:

* ``tube``, ``random``, ``run_cell``, ``none``: :mod:`~snappix.masking.generators` (VideoMAE / VideoMAEv2);
* ``savi``, ``attention``: :mod:`~snappix.masking.saliency` (SaViMAE saliency-aware masking; a per-frame
  draw weighted by saliency), which need the sampled clip or precomputed saliency files;
* ``kcenter``: :mod:`~snappix.masking.kcenter_masking` (the encoder sees the tokens greedy k-center
  picks, K-centered patch sampling, https://arxiv.org/abs/2207.07564);
* ``teacher_attention``, ``frame_random``: drawn on the device by a method's batch transform from per-token
  scores (:data:`DEVICE_MASKS`, :func:`device_mask`): UMT / VideoMamba's mask from a frozen teacher's CLS
  attention (:mod:`~snappix.masking.attention`), and the same per-frame draw with flat scores (its ablation).
  The data layer cannot make them: :func:`encoder_mask_from_flags` refuses them.

A new mask type adds one builder to :data:`ENCODER_MASKS` (data side) or :data:`DEVICE_MASKS` (device side);
nothing else asks which type runs.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

import torch

from .attention import attention_guided_mask
from .generators import MASK_TYPES, build_mask_generator
from .kcenter_masking import KCenterMaskGenerator
from .saliency import SALIENCY_MASK_TYPES, MissingSaliencyError, build_saliency_mask_generator, saliency_path


def _plain(flags: Mapping[str, Any], grid: Sequence[int], tube: bool):
    return build_mask_generator(flags["mask_type"], grid, flags.get("mask_ratio", 0.9))


def _kcenter(flags: Mapping[str, Any], grid: Sequence[int], tube: bool):
    first = flags.get("kcenter_first_center", "auto")
    return KCenterMaskGenerator(grid, flags.get("mask_ratio", 0.9), flags.get("kcenter_time_division", 1),
                                flags.get("kcenter_space_division", 1), flags.get("kcenter_temporal_coef", 1.0),
                                flags.get("kcenter_spatial_coef", 1.0),
                                "random" if first == "auto" else first, tube=tube)  # a training mask: auto = random


def _saliency(flags: Mapping[str, Any], grid: Sequence[int], tube: bool):
    return build_saliency_mask_generator(
        flags["mask_type"], grid, flags["patch_size"], flags.get("tubelet_size", 2),
        flags.get("saliency", "precomputed"), flags.get("saliency_root"), flags.get("mask_ratio", 0.9),
        flags.get("salient_mask_ratio", 0.85), flags.get("nonsalient_mask_ratio", 0.95),
        flags.get("savi_semantics", "per_group"), flags.get("saliency_threshold", 0.5),
        flags.get("saliency_pool", "max"))


#: ``--mask_type`` -> ``builder(flags, grid, tube)``: masks the data layer draws per clip
ENCODER_MASKS: dict[str, Callable] = {**{t: _plain for t in MASK_TYPES}, **{t: _saliency for t in SALIENCY_MASK_TYPES},
                                      "kcenter": _kcenter}


def _teacher_attention(scores: torch.Tensor, mask_ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    return attention_guided_mask(scores, mask_ratio, generator)


def _frame_random(scores: torch.Tensor, mask_ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    return attention_guided_mask(torch.ones_like(scores, dtype=torch.float32), mask_ratio, generator)


#: ``--mask_type`` -> ``draw(scores (B, T', H'W'), mask_ratio, generator) -> bool (B, T'H'W')``: masks a method's
#: batch transform draws on the device from per-token scores (a frozen teacher's CLS attention)
DEVICE_MASKS: dict[str, Callable] = {"teacher_attention": _teacher_attention, "frame_random": _frame_random}
#: every ``--mask_type`` of the encoder (data side, then device side)
ENCODER_MASK_TYPES = tuple(ENCODER_MASKS) + tuple(DEVICE_MASKS)


def encoder_mask_from_flags(flags: Mapping[str, Any], grid: Sequence[int], tube: bool = False):
    """The encoder mask generator ``flags`` describe (``vars(args)`` of ``run_pretraining.py``).

    Uses ``mask_type`` and ``mask_ratio``; ``kcenter_*`` for ``kcenter`` (``kcenter_first_center auto`` means
    ``random``: a pretraining mask is a training-time draw); ``patch_size``, ``tubelet_size``, ``saliency``,
    ``saliency_root``, ``salient_mask_ratio``, ``nonsalient_mask_ratio``, ``savi_semantics``,
    ``saliency_threshold``, ``saliency_pool`` for ``savi`` / ``attention``.

    Args:
        grid: token grid ``(T', H', W')`` of the model.
        tube: the model needs the same spatial positions hidden in every token slot (coded MAE: one coded
            image); ``kcenter`` then selects whole tubes.

    Returns:
        a callable mask generator (see the implementing module for its call signature); its masks are
        boolean, ``True`` = hidden.

    Raises:
        ValueError: an unknown ``mask_type`` (the valid ones listed) or bad ratios (from the generator).
    """
    mask_type = flags["mask_type"]
    if mask_type in DEVICE_MASKS:
        raise ValueError(f"--mask_type {mask_type} is drawn from a frozen teacher's attention on the device, which "
                         f"only masked distillation has (run_pretraining.py --task distill --teacher ...)")
    if mask_type not in ENCODER_MASKS:
        raise ValueError(f"unknown --mask_type {mask_type!r}; valid: {list(ENCODER_MASK_TYPES)}")
    return ENCODER_MASKS[mask_type](flags, grid, tube)


def device_mask(mask_type: str, scores: torch.Tensor, mask_ratio: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A device-side encoder mask (:data:`DEVICE_MASKS`) from per-token scores, on the scores' device.

    ``teacher_attention``: per token slot (frame), ``N_vis = H'W' - int(mask_ratio * H'W')`` visible tokens drawn
    without replacement with probability proportional to the scores (UMT / VideoMamba; at 224 px, 196 tokens
    and ratio 0.8: 40 visible per frame). ``frame_random``: the same count drawn uniformly (the scores only give
    the shape). The CLS token is not in the mask: a student always keeps it.

    Args:
        scores: float ``(B, T', H'W')`` non-negative (e.g. :class:`snappix.teachers.TeacherOutput` ``attention``).
        mask_ratio: hidden share per slot, in [0, 1).
        generator: ``torch.Generator`` on the scores' device (reproducible draws), or None.

    Returns:
        bool ``(B, T'H'W')``, True = hidden, exactly ``N_vis`` visible per slot.

    Raises:
        ValueError: an unknown device mask type, bad scores or ratio.
    """
    if mask_type not in DEVICE_MASKS:
        raise ValueError(f"--mask_type {mask_type!r} is not drawn on the device; device mask types: "
                         f"{list(DEVICE_MASKS)}")
    return DEVICE_MASKS[mask_type](scores, mask_ratio, generator)


def decoder_mask_from_flags(flags: Mapping[str, Any], grid: Sequence[int]):
    """The decoder's mask (VideoMAEv2 dual masking): ``decoder_mask_type`` / ``decoder_mask_ratio``."""
    return build_mask_generator(flags.get("decoder_mask_type", "none"), grid, flags.get("decoder_mask_ratio", 0.0))


def check_mask_inputs(flags: Mapping[str, Any], rel_paths: Sequence[str], list_path: str) -> None:
    """Before training: every input the mask type reads from disk exists.

    ``savi`` / ``attention`` with ``saliency precomputed`` need one array per list row under
    ``saliency_root`` (:func:`~snappix.masking.saliency.saliency_path`); other types need nothing.

    Raises:
        MissingSaliencyError: files are missing (how many, three examples, and the command that makes them).
    """
    if flags.get("mask_type") not in SALIENCY_MASK_TYPES or flags.get("saliency", "precomputed") != "precomputed":
        return
    root = flags.get("saliency_root")
    if not root:
        raise MissingSaliencyError(f"--mask_type {flags['mask_type']} with --saliency precomputed needs "
                                   f"--saliency_root (arrays from python -m snappix.tools.saliency)")
    missing = [saliency_path(root, p) for p in rel_paths if not os.path.isfile(saliency_path(root, p))]
    if missing:
        raise MissingSaliencyError(f"{list_path}: {len(missing)} of {len(rel_paths)} saliency files missing under "
                                   f"--saliency_root, e.g. {missing[:3]}; run python -m snappix.tools.saliency")
