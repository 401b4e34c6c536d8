"""One factory for the encoder masks of masked pretraining, keyed by ``--mask_type``.

    mask = encoder_mask_from_flags(vars(args), grid, tube=model.needs_tube_mask)
    check_mask_inputs(vars(args), [e.rel_path for e in dataset.entries], list_path)

Mask types and the modules that implement them:

* ``tube``, ``random``, ``run_cell``, ``none``: :mod:`~snappix.masking.generators` (VideoMAE / VideoMAEv2);
* ``savi``, ``attention``: :mod:`~snappix.masking.saliency` (SaViMAE saliency-aware masking; a per-frame
  draw weighted by saliency), which need the sampled clip or precomputed saliency files;
* ``kcenter``: :mod:`~snappix.masking.kcenter_masking` (the encoder sees the tokens greedy k-center
  picks, K-centered patch sampling, https://arxiv.org/abs/2207.07564).

A new mask type adds one builder to :data:`ENCODER_MASKS`; nothing else asks which type runs.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

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


#: ``--mask_type`` -> ``builder(flags, grid, tube)``
ENCODER_MASKS: dict[str, Callable] = {**{t: _plain for t in MASK_TYPES}, **{t: _saliency for t in SALIENCY_MASK_TYPES},
                                      "kcenter": _kcenter}
#: every ``--mask_type`` of the encoder
ENCODER_MASK_TYPES = tuple(ENCODER_MASKS)


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
    if mask_type not in ENCODER_MASKS:
        raise ValueError(f"unknown --mask_type {mask_type!r}; valid: {list(ENCODER_MASK_TYPES)}")
    return ENCODER_MASKS[mask_type](flags, grid, tube)


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
