"""Build a finetuning classifier from its flags: the one mapping from ``run_finetuning.py`` flag names
(or the ``config.yaml`` a run writes) to ``timm.create_model`` keywords."""

from __future__ import annotations

from typing import Any, Mapping

import timm
import torch.nn as nn

from snappix.models.registry import require_model

# run_finetuning.py --kcenter_* flag -> KCenterViT keyword
KCENTER_FLAGS = {
    "kcenter_num_patches": "num_sample_patches",
    "kcenter_hybrid_frames": "num_hybrid_frames",
    "kcenter_time_division": "time_division",
    "kcenter_space_division": "space_division",
    "kcenter_temporal_coef": "temporal_coef",
    "kcenter_spatial_coef": "spatial_coef",
    "kcenter_first_center": "first_center",
}


def classifier_from_flags(flags: Mapping[str, Any], num_classes: int) -> nn.Module:
    """The classifier ``flags`` describe (``vars(args)`` of run_finetuning.py, or its saved config).

    Uses ``model``, ``input_size``, ``num_frames``, ``drop_path``, ``init_scale``, ``patch_size`` /
    ``tubelet_size`` (when set),
    ``coded_type`` / ``pattern`` / ``pattern_dir`` (coded models) and the ``kcenter_*`` flags (``kcenter_vit_*``
    models); absent keys take the flag defaults. ``in_chans`` (default 1) is passed to every model: the finetuning loader delivers
    grey one-channel clips, also to models whose registered default is RGB (``videomamba_*``, like the
    released checkpoints). Weights are freshly initialised.

    Raises:
        KeyError: no ``model``; snappix.errors.UnknownModelError: an unknown model name (close names listed).
    """
    kwargs: dict[str, Any] = dict(num_classes=num_classes, drop_path_rate=flags.get("drop_path") or 0.0,
                                  img_size=flags.get("input_size", 112), num_frames=flags.get("num_frames", 16),
                                  init_scale=flags.get("init_scale", 0.001), in_chans=flags.get("in_chans", 1))
    for key in ("patch_size", "tubelet_size"):
        if flags.get(key):
            kwargs[key] = int(flags[key])
    if flags.get("coded_type") is not None:
        kwargs.update(coded_type=flags["coded_type"], pattern_path=flags.get("pattern"),
                      pattern_dir=flags.get("pattern_dir"))
    if flags.get("head_drop_rate") is not None:  # dropout before the head (--head_drop_rate), when given
        kwargs["head_drop_rate"] = float(flags["head_drop_rate"])
    if flags.get("width"):  # stem width of the saccade_* backbones (--width), when given
        kwargs["width"] = int(flags["width"])
    if flags["model"].startswith("kcenter_vit"):
        kwargs.update({kw: flags[flag] for flag, kw in KCENTER_FLAGS.items() if flag in flags})
    return timm.create_model(require_model(flags["model"]), **kwargs)
