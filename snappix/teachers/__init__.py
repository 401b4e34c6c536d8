"""Frozen teachers of masked distillation (Unmasked Teacher / VideoMamba masked pretraining).

Unmasked Teacher (Li et al., ICCV 2023, https://arxiv.org/abs/2303.16058) and VideoMamba (Li et al. 2024,
https://arxiv.org/abs/2403.06977, §3.4) distil a frozen, unmasked teacher into a student that sees only
the tokens the teacher attends to. A teacher here is a :class:`FrozenTeacher`: ``teacher(video)`` on the
raw clip ``(B, C, T, H, W)`` in [0, 1] returns a :class:`TeacherOutput` with

* ``attention`` float32 ``(B, T', H'W')``: the last block's attention per token slot (the mask score);
* ``targets`` float32 ``(B, 1 + T'H'W', D_t)``, unit rows: the clip-level token, then every patch token
  (slot 0 row-major, slot 1, ...);

both from **one** forward of the network (:func:`snappix.models.teacher_attention.forward_with_attention`).

Layering: this package sits above ``models`` (it may import ``models``, ``data``, ``sensor``, ``errors``)
and below ``objectives`` / ``engine`` / ``methods``, which it never imports.

Modules: :mod:`~snappix.teachers.base` (interface, errors), :mod:`~snappix.teachers.loading` (reading files,
strict loading), :mod:`~snappix.teachers.image` (timm image ViT per frame, e.g. CLIP),
:mod:`~snappix.teachers.video` (a snappix video ViT classifier per tubelet).
"""

from __future__ import annotations

import os
from typing import Any

from snappix.teachers.base import FrozenTeacher, TeacherLoadError, TeacherOutput
from snappix.teachers.image import ImageTeacher, build_image_teacher
from snappix.teachers.video import SnappixTeacher, build_snappix_teacher

__all__ = ["FrozenTeacher", "TeacherOutput", "TeacherLoadError", "ImageTeacher", "SnappixTeacher", "build_teacher"]


def build_teacher(name: str, path: str | os.PathLike, *, img_size: int, num_frames: int, in_chans: int = 1,
                  chunk: int | None = None, **model_kwargs: Any) -> FrozenTeacher:
    """The frozen teacher ``name`` with weights from the local file ``path``, for clips
    ``(B, in_chans, num_frames, img_size, img_size)`` in [0, 1].

    Args:
        name: ``"snappix"``: ``path`` is a snappix finetuning checkpoint (``{"model", "config"}``, e.g.
            ``outputs/quickstart/ft_video/checkpoint-best.pth``), its ViT classifier is the teacher, applied
            per tubelet (grid = the classifier's token grid; :class:`SnappixTeacher`). Anything else: a timm
            ViT name with a class token, applied per frame (grid ``(T, H', W')``; :class:`ImageTeacher`),
            e.g. ``vit_base_patch16_clip_quickgelu_224.openai`` for OpenAI's CLIP ViT-B/16 (QuickGELU; the
            plain ``vit_base_patch16_clip_224.openai`` uses GELU, which is wrong for OpenAI's weights). The
            architecture is built offline (``pretrained=False``, ``img_size=img_size``); nothing is
            downloaded.
        path: the weights file: for timm names the OpenAI / open_clip layout (``visual.conv1.weight``, ...,
            ``visual.proj``; with or without ``visual.``; whole-CLIP files included; OpenAI's TorchScript
            ``.pt`` too) or timm's layout, ``.safetensors`` or a torch file.
        img_size, num_frames, in_chans: the clip geometry (``in_chans`` 1 grey or 3 RGB).
        chunk: frames (image teacher) or clips (snappix teacher) per network forward; None: all at once.
        model_kwargs: timm names only: ``projection=`` (see :func:`~snappix.teachers.image.build_image_teacher`)
            and extra ``timm.create_model`` arguments, for tests building tiny random teachers (e.g.
            ``depth=2, embed_dim=64, num_heads=2, patch_size=8, num_classes=16``).

    Returns:
        the teacher, frozen (no parameter requires grad) and in eval mode, on the CPU (move it with ``.to``).

    Raises:
        TeacherLoadError (a :class:`~snappix.errors.UserError` and ``ValueError``): unknown name, a timm model
            that is not a ViT with a class token, a missing / unreadable file, a state dict that does not fit
            (the file and the first missing / unexpected keys named), a snappix checkpoint whose clip
            geometry differs from the requested one, or ``model_kwargs`` with ``name="snappix"``.
    """
    if name == "snappix":
        if model_kwargs:
            raise TeacherLoadError(f"the snappix teacher takes no model arguments, got {sorted(model_kwargs)}")
        return build_snappix_teacher(path, img_size=img_size, num_frames=num_frames, in_chans=in_chans, chunk=chunk)
    return build_image_teacher(name, os.fspath(path), img_size=img_size, num_frames=num_frames, in_chans=in_chans,
                               chunk=chunk, **model_kwargs)
