"""Load VideoMamba's released checkpoints (https://arxiv.org/abs/2403.06977) into
:class:`~snappix.models.videomamba.VideoMamba`.

Called through :func:`snappix.models.convert.convert_state_dict` (the model's ``remap_state_dict`` hook), so
``snappix.methods.pretrained.load_pretrained(model, path)`` loads these files directly and reports missing,
unexpected and shape-mismatched keys:

* **video checkpoints** (K400 / SSv2 finetuned, ``videomamba_{t,s,m}16_{k400,ssv2}_f{8,16,32,64}_res{224,...}``):
  ``layers.k.*`` -> ``blocks.k.*``; every other name (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
  ``temporal_pos_embedding``, ``blocks.k.norm``, ``blocks.k.mixer.{in_proj, conv1d[_b], x_proj[_b],
  dt_proj[_b], A_log, A_b_log, D[_b], out_proj}``, ``norm_f``, ``head``) is already ours.
* **image checkpoints** (ImageNet-1K, ``videomamba_{t,s,m}16_in1k_res{224,...}``): as above, plus the 2-D patch
  kernel ``(D, C, p, p)`` is placed in the centre time slice of the model's ``(D, C, tubelet, p, p)`` kernel
  (zeros elsewhere; with tubelet 1 it is the whole kernel), and the ImageNet head is dropped.
* **other sizes**: ``temporal_pos_embedding`` ``(1, T, D)`` is resampled linearly (``align_corners=False``)
  to the model's frame count, and the spatial ``pos_embed`` ``(1, 1 + h w, D)`` bicubically to the model's
  patch grid (e.g. 14 x 14 -> 18 x 18 for 288 px, 24 x 24 for 384 px); the CLS entry is kept as it is.

Colour changes (an RGB kernel into a grey model) are handled afterwards by the generic converter.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["remap_videomamba_state_dict", "videomamba_key"]

_LAYER = re.compile(r"^layers\.(\d+)\.")


def videomamba_key(key: str) -> str:
    """VideoMamba checkpoint name -> ours: ``layers.k.`` -> ``blocks.k.``; everything else unchanged."""
    return _LAYER.sub(r"blocks.\1.", key)


def _note(report: Any, text: str) -> None:
    if report is not None:
        report.adapted.append(text)


def _inflate_patch_kernel(weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """2-D kernel ``(D, C, p, p)`` -> ``(D, C, t, p, p)`` with the weights in time slice ``t // 2``."""
    out = weight.new_zeros(weight.shape[:2] + (target.shape[2],) + weight.shape[2:])
    out[:, :, target.shape[2] // 2] = weight
    return out


def _resample_spatial(table: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """``(1, 1 + n, D)`` (CLS first, a square ``sqrt(n)`` grid) -> ``(1, 1 + h w, D)``, bicubic."""
    n = table.shape[1] - 1
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"pos_embed of the checkpoint has {n} patch positions, not a square grid")
    patches = table[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=grid_hw, mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).flatten(1, 2).to(table.dtype)
    return torch.cat([table[:, :1], patches], dim=1)


def _resample_temporal(table: torch.Tensor, frames: int) -> torch.Tensor:
    """``(1, T, D)`` -> ``(1, frames, D)``, linear interpolation over time."""
    out = F.interpolate(table.float().transpose(1, 2), size=frames, mode="linear", align_corners=False)
    return out.transpose(1, 2).to(table.dtype)


def remap_videomamba_state_dict(model: nn.Module, state: dict, report: Any = None) -> dict:
    """Rename and reshape a VideoMamba state dict for ``model`` (see the module docstring).

    Args:
        model: the target :class:`~snappix.models.videomamba.VideoMamba` (its ``grid`` and own shapes decide
            the resampling).
        state: checkpoint tensors, wrapper prefixes (``module.``) already stripped.
        report: a :class:`~snappix.models.convert.ConversionReport` whose ``adapted`` / ``dropped`` lists get
            a note per change, or None.

    Returns:
        A new dict in this model's names and shapes (keys the model does not have are passed through, so
        that the load reports them as unexpected).

    Raises:
        ValueError: a spatial table whose patch count is not a square.
    """
    own = model.state_dict()
    out = {videomamba_key(k): v for k, v in state.items()}
    frames, h, w = (int(v) for v in model.grid)
    key = "patch_embed.proj.weight"
    if key in out and key in own and out[key].dim() == 4 and own[key].dim() == 5:
        out[key] = _inflate_patch_kernel(out[key], own[key])
        _note(report, f"{key}: 2-D image kernel put in time slice {own[key].shape[2] // 2} of "
                      f"{own[key].shape[2]}")
        for head_key in ("head.weight", "head.bias"):  # ImageNet classes, never the video task's
            if out.pop(head_key, None) is not None and report is not None:
                report.dropped.append(head_key)
    pos = out.get("pos_embed")
    if pos is not None and "pos_embed" in own and pos.dim() == 3 and pos.shape[1] != own["pos_embed"].shape[1]:
        out["pos_embed"] = _resample_spatial(pos, (h, w))
        _note(report, f"pos_embed: {pos.shape[1] - 1} -> {h * w} patch positions (bicubic, CLS kept)")
    temporal = out.get("temporal_pos_embedding")
    if temporal is not None and temporal.dim() == 3 and temporal.shape[1] != frames:
        out["temporal_pos_embedding"] = _resample_temporal(temporal, frames)
        _note(report, f"temporal_pos_embedding: {temporal.shape[1]} -> {frames} frames (linear)")
    return out
