"""Models: video ViT backbone, MAE encoder-decoders, layers; timm registry entries.

* :mod:`~snappix.models.layers`: :class:`Attention` (SDPA or explicit), pre-LN :class:`Block`.
* :mod:`~snappix.models.patch_embed`: 3-D tubelet embedding.
* :mod:`~snappix.models.pos_embed`: sin-cos / learned tables, :func:`interpolate_pos_embed`.
* :mod:`~snappix.models.patchify`: clip <-> tubelet pixel tokens (MAE targets). Import the functions from
  the module (``from snappix.models.patchify import patchify``); they are not re-exported here so that
  the name ``snappix.models.patchify`` always means the module.
* :mod:`~snappix.models.tokens`: mask validation, visible-token selection.
* :mod:`~snappix.models.vit`: :class:`VideoViTEncoder`.
* :mod:`~snappix.models.mae`: :class:`PretrainVideoMAE`, :class:`PretrainCodedMAE` (SnapPix).
* :mod:`~snappix.models.teacher_attention`: :func:`cls_attention` of a timm ViT teacher per frame (the score of
  attention-guided masking; import from the module).
* :mod:`~snappix.models.registry`: ``pretrain_videomae_*`` / ``pretrain_coded_videomae_*`` in timm's registry
  (importing this package registers them).
* :mod:`~snappix.models.distill_student`: students of masked distillation (UMT / VideoMamba §3.4):
  ``videomamba_*_pretrain`` and ``distill_video_vit_*`` in timm's registry.
* :mod:`~snappix.models.saccade_backbones`: Saccade-VSSL's R3D / R(2+1)D with the focus spotlight
  (``saccade_r3d``, ``saccade_r21d`` in timm's registry).
"""

from snappix.models import registry  # noqa: F401  (registers the timm entry points)
from snappix.models import videomamba  # noqa: F401  (registers videomamba_{tiny,small,middle})
from snappix.models import distill_student  # noqa: F401  (registers videomamba_*_pretrain, distill_video_vit_*)
from snappix.models import saccade_backbones  # noqa: F401  (registers saccade_r3d, saccade_r21d)
from snappix.models.layers import ATTN_IMPLS, Attention, Block, init_weights, set_attn_impl
from snappix.models.mae import MAEDecoder, PretrainCodedMAE, PretrainVideoMAE
from snappix.models.patch_embed import PatchEmbed3d, token_grid
from snappix.models.pos_embed import interpolate_pos_embed, learned_table, sincos_table
from snappix.models.tokens import as_token_mask, select_tokens
from snappix.models.vit import VideoViTEncoder

__all__ = [
    "ATTN_IMPLS", "Attention", "Block", "init_weights", "set_attn_impl", "MAEDecoder", "PretrainCodedMAE",
    "PretrainVideoMAE", "PatchEmbed3d", "token_grid", "interpolate_pos_embed", "learned_table", "sincos_table",
    "as_token_mask", "select_tokens", "VideoViTEncoder",
]
