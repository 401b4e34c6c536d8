"""Students of masked distillation: a frozen, unmasked teacher supervises a student that sees only the visible
tokens (Unmasked Teacher, Li et al., ICCV 2023, https://arxiv.org/abs/2303.16058; VideoMamba's masked
pretraining, Li et al., ECCV 2024, https://arxiv.org/abs/2403.06977, §3.4).

The teacher (CLIP ViT-B/16 in the papers, written elsewhere) returns ``(B, 1 + N, D_t)`` L2-normalised features:
row 0 a clip-level token, rows 1.. every token of the grid in spatial-first order. The mask (True = hidden) is
drawn elsewhere (e.g. from the teacher's attention). The students here return features aligned with the
teacher rows they are compared with (:class:`snappix.objectives.distillation.DistillationLoss`).

Common contract::

    out = student(video, encoder_mask)
    video         float (B, C, T, H, W)   raw clip in [0, 1] (normalised inside the model)
    encoder_mask  bool  (B, T'*H'*W')     True = hidden (or any (B, ...) with T'H'W' trailing entries);
                                          every sample hides the same number of tokens
    out           float32 (B, 1 + N_vis, teacher_dim), every row L2-normalised; row 0 the clip-level token,
                                          rows 1.. the visible tokens in ascending (spatial-first) order

Attributes: ``grid`` ``(T', H', W')``, ``patch_size``, ``tubelet_size``, ``num_frames``, ``img_size``,
``needs_tube_mask = False``, ``teacher_dim``, ``embed_dim``.

Registered students (each loads into the classifier named, ``run_finetuning.py --finetune <checkpoint>``):

* ``videomamba_{super_tiny,tiny,small,middle}_pretrain`` (:class:`VideoMambaPretrain`) -> ``videomamba_{size}``
  (backbone keys as they are).
* ``distill_video_vit_super_tiny_patch16_112`` (:class:`DistillVideoViT`, backbone under ``encoder.``) ->
  ``video_vit_super_tiny_patch16_112``; ``distill_video_vit_{small,base}_patch16_224`` ->
  ``video_vit_{size}_patch16_224``.

The distillation head of both is the attribute ``decoder`` (a :class:`DistillHead`, the reference's "decoder"),
so that the finetuning converter (:mod:`snappix.models.convert`) drops it like an MAE decoder.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import register_model
from torch import nn

from snappix.models.classifier_utils import InputNorm, check_clip
from snappix.models.layers import init_weights
from snappix.models.pos_embed import sincos_table
from snappix.models.registry import _GEOMETRY, _VIT_SIZES
from snappix.models.tokens import as_token_mask, select_tokens
from snappix.models.videomamba import VideoMamba, _videomamba
from snappix.models.vit import VideoViTEncoder, run_blocks
from snappix.sensor import K710_SSV2_MEAN, K710_SSV2_STD

__all__ = ["DistillHead", "VideoMambaPretrain", "DistillVideoViT"]

_log = logging.getLogger(__name__)


class DistillHead(nn.Module):
    """Projection to the teacher's feature space: ``Linear(embed_dim -> teacher_dim)`` -> ``LayerNorm(teacher_dim)``
    (eps 1e-5) -> L2 normalisation over the last axis, applied to every token (the "decoder" of UMT /
    VideoMamba's masked pretraining, https://arxiv.org/abs/2303.16058).

    Init: Linear xavier-uniform, bias 0; LayerNorm 1 / 0.

    Shapes:
        ``forward(x)``: float ``(B, L, embed_dim)`` (any dtype) -> float32 ``(B, L, teacher_dim)``, every row of
        unit L2 norm (a zero row stays zero: ``F.normalize`` with eps 1e-12).

    Raises:
        ValueError: ``embed_dim`` or ``teacher_dim`` below 1.
    """

    def __init__(self, embed_dim: int, teacher_dim: int) -> None:
        super().__init__()
        if embed_dim < 1 or teacher_dim < 1:
            raise ValueError(f"embed_dim and teacher_dim must be >= 1, got {embed_dim}, {teacher_dim}")
        self.proj = nn.Linear(embed_dim, teacher_dim)
        self.norm = nn.LayerNorm(teacher_dim)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.norm(self.proj(x)).float(), dim=-1)


def _drop_unused(name: str, kwargs: dict) -> None:
    """Remove the options a masked-pretraining entry point passes to every model that a student has no use for
    (``decoder_depth``; sensor options set to "no sensor") and log the ones given.

    Raises:
        ValueError: a coded-exposure sensor was asked for (the students see ordinary video).
    """
    coded = kwargs.pop("coded_type", None)
    if coded not in (None, "none"):
        raise ValueError(f"{name}: the distillation students see ordinary video, got coded_type={coded!r}")
    given = {k: kwargs.pop(k) for k in ("decoder_depth", "pattern_path", "pattern_dir", "tile_size", "sensor_seed",
                                        "sensor_noise") if k in kwargs}
    if given:
        _log.info("%s: ignoring %s (options of other models)", name, ", ".join(f"{k}={v!r}" for k, v in given.items()))


# ============================================================================================ VideoMamba
class VideoMambaPretrain(VideoMamba):
    """VideoMamba student of masked distillation (arXiv:2403.06977 §3.4, following UMT arXiv:2303.16058).

    The patch embedding, CLS token, Mamba blocks and final RMSNorm are :class:`~snappix.models.videomamba.VideoMamba`'s
    (this class *is* one, built with ``num_classes=0``), so the state-dict keys of the backbone
    (``patch_embed.*``, ``cls_token``, ``blocks.k.*``, ``norm_f.*``) are those of the ``videomamba_*`` classifier of
    the same size and ``run_finetuning.py --finetune <checkpoint>`` loads them; the classifier's learned
    ``pos_embed`` / ``temporal_pos_embedding`` and its ``head`` stay at their initialisation.

    1. Raw clip normalised inside (ImageNet statistics for RGB, snappix's grey ones for ``in_chans=1``), patch
       embedding ``(B, N, D)``, ``N = T'H'W'`` in spatial-first order.
    2. Positions: a FIXED sin-cos table ``pos_embed`` ``(1, 1 + N, D)`` (non-persistent buffer, not in the state
       dict; entry 0 for CLS, entry ``1 + i`` for token i). The learned tables of the classifier are removed.
    3. Only the visible tokens (``~encoder_mask``, ascending order) are kept; ``[CLS, visible...]``
       (``1 + N_vis`` tokens), dropout ``drop_rate``, every Mamba block, ``norm_f``.
    4. ``decoder`` (:class:`DistillHead`) on every token: float32 ``(B, 1 + N_vis, teacher_dim)``, unit rows.

    DELIBERATE deviation from the reference: VideoMamba's pretraining distils the un-normalised residual
    stream entering its last block; here every block runs and the final normed output (after ``norm_f``) is
    distilled, the features the classifier later reads.

    Args:
        teacher_dim: width of the teacher's features (512: CLIP ViT-B/16's projection).
        drop_path_rate: largest stochastic-depth rate (default 0.0; VideoMamba-M's recipe uses 0.4).
        **kwargs: every other keyword of :class:`~snappix.models.videomamba.VideoMamba` (``img_size``,
            ``patch_size``, ``num_frames``, ``tubelet_size``, ``in_chans``, ``embed_dim``, ``depth``, ``d_state``,
            ``drop_rate``, ``norm_mean`` / ``norm_std``, ``scan_backend``, ...). ``num_classes`` other than 0 is
            refused; ``global_pool`` / ``fc_drop_rate`` / ``init_scale`` have no effect (there is no class head).

    Shapes:
        ``forward(video, encoder_mask)``: see the module docstring.

    Raises:
        ValueError: a non-zero ``num_classes``, ``teacher_dim < 1``, sizes not divisible by the tubelet / patch;
            in ``forward``, a clip of another shape or an integer dtype, a mask of the wrong shape or with unequal
            visible counts across samples.
        TypeError: a non-bool mask.
    """

    needs_tube_mask = False

    def __init__(self, teacher_dim: int = 512, drop_path_rate: float = 0.0, **kwargs) -> None:
        if kwargs.pop("num_classes", 0):
            raise ValueError("VideoMambaPretrain has no class head (num_classes must be 0); its head is the "
                             "distillation decoder of width teacher_dim")
        super().__init__(num_classes=0, drop_path_rate=drop_path_rate, **kwargs)
        del self.pos_embed, self.temporal_pos_embedding  # learned tables of the classifier: not used here
        frames, h, w = self.grid
        self.register_buffer("pos_embed", sincos_table(1 + frames * h * w, self.embed_dim), persistent=False)
        self.num_tokens = frames * h * w
        self.teacher_dim = teacher_dim
        self.decoder = DistillHead(self.embed_dim, teacher_dim)

    def embed(self, video: torch.Tensor, encoder_mask: torch.Tensor) -> torch.Tensor:
        """Raw clip and hidden mask -> ``[CLS, visible tokens]`` with their sin-cos positions added,
        ``(B, 1 + N_vis, D)`` (dtype of the computation), after ``pos_drop``.

        Raises:
            ValueError / TypeError: see the class docstring.
        """
        tokens = self.patch_tokens(video)  # (B, N, D), checks the clip
        hidden = as_token_mask(encoder_mask, tokens.shape[0], self.num_tokens, "encoder_mask").to(tokens.device)
        pos = self.pos_embed.to(tokens.dtype)
        visible = select_tokens(tokens + pos[:, 1:], ~hidden, "encoder_mask (visible tokens)")
        cls = (self.cls_token.to(tokens.dtype) + pos[:, :1]).expand(tokens.shape[0], -1, -1)
        return self.pos_drop(torch.cat([cls, visible], dim=1))

    def forward_tokens(self, video: torch.Tensor, encoder_mask: torch.Tensor) -> torch.Tensor:
        """Raw clip and hidden mask -> ``[CLS, visible tokens]`` after every block and ``norm_f``,
        ``(B, 1 + N_vis, D)`` float32."""
        x = run_blocks(self.blocks, self.embed(video, encoder_mask), self.grad_checkpointing)
        return self.norm_f(x)

    def forward(self, video: torch.Tensor, encoder_mask: torch.Tensor) -> torch.Tensor:
        """See the module docstring: float32 ``(B, 1 + N_vis, teacher_dim)``, unit rows."""
        return self.decoder(self.forward_tokens(video, encoder_mask))


def _mamba_student(size: str, pretrained: bool, kwargs: dict) -> VideoMambaPretrain:
    _drop_unused(f"videomamba_{size}_pretrain", kwargs)
    return _videomamba(size, pretrained, kwargs, cls=VideoMambaPretrain)


@register_model
def videomamba_super_tiny_pretrain(pretrained: bool = False, **kwargs) -> VideoMambaPretrain:
    """Student of ``videomamba_super_tiny`` (96 / 4, d_state 8, grey, patch 32, tubelet 4, 16 frames at 64 px)."""
    return _mamba_student("super_tiny", pretrained, kwargs)


@register_model
def videomamba_tiny_pretrain(pretrained: bool = False, **kwargs) -> VideoMambaPretrain:
    """Student of ``videomamba_tiny`` (192 / 24; RGB, patch 16, tubelet 1, 8 frames at 224 px)."""
    return _mamba_student("tiny", pretrained, kwargs)


@register_model
def videomamba_small_pretrain(pretrained: bool = False, **kwargs) -> VideoMambaPretrain:
    """Student of ``videomamba_small`` (384 / 24; RGB, patch 16, tubelet 1, 8 frames at 224 px)."""
    return _mamba_student("small", pretrained, kwargs)


@register_model
def videomamba_middle_pretrain(pretrained: bool = False, **kwargs) -> VideoMambaPretrain:
    """Student of ``videomamba_middle`` (576 / 32; RGB, patch 16, tubelet 1, 8 frames at 224 px); the reference
    recipe uses ``drop_path_rate=0.4`` (default here 0.0)."""
    return _mamba_student("middle", pretrained, kwargs)


# ============================================================================================ video ViT
class DistillVideoViT(nn.Module):
    """Video ViT student of masked distillation (UMT, arXiv:2303.16058 §3; the ``video_vit_*`` backbone).

    1. Raw clip normalised inside by ``input_norm`` (``"auto"``: snappix's grey statistics 0.2277 / 0.2425 for
       ``in_chans=1``, timm's ImageNet ones for 3 channels).
    2. ``encoder`` (:class:`~snappix.models.vit.VideoViTEncoder`, xavier init): tubelet embedding, fixed sin-cos
       table (a learned one with ``use_learnable_pos_emb``), only the visible tokens (``mask``), pre-LN blocks,
       final LayerNorm: ``(B, N_vis, D)``.
    3. Row 0 = the mean of the visible encoder outputs: this ViT has no CLS token (VideoMAE's backbone; its
       classifier mean-pools too), so the clip-level token the teacher's row 0 supervises is the mean.
    4. ``decoder`` (:class:`DistillHead`) on ``[mean, visible...]``: float32 ``(B, 1 + N_vis, teacher_dim)``.

    State-dict keys ``encoder.patch_embed.*`` / ``encoder.blocks.k.*`` load into the ``video_vit_*`` classifier of
    the same size through :func:`snappix.methods.pretrained.load_pretrained` (``encoder.`` is stripped; the
    encoder's final ``norm`` and the ``decoder`` are dropped; ``fc_norm`` and ``head`` stay fresh).

    Args:
        img_size, patch_size, tubelet_size, num_frames, in_chans: clip geometry.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, init_values, use_learnable_pos_emb,
            attn_impl: see :class:`~snappix.models.vit.VideoViTEncoder`.
        teacher_dim: width of the teacher's features (512: CLIP ViT-B/16's projection).
        norm_mean, norm_std: input statistics; ``"auto"`` picks by ``in_chans``; ``None`` for both: identity.

    Shapes:
        ``forward(video, encoder_mask)``: see the module docstring.

    Raises:
        ValueError: bad sizes; in ``forward``, a clip of another shape or an integer dtype, a mask of the wrong
            shape, with unequal visible counts across samples, or hiding every token (no mean to take).
        TypeError: a non-bool mask.
    """

    needs_tube_mask = False

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, tubelet_size: int = 2,
                 num_frames: int = 16, in_chans: int = 1, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.0,
                 init_values: float | None = None, use_learnable_pos_emb: bool = False, attn_impl: str = "sdpa",
                 teacher_dim: int = 512, norm_mean: str | float | Sequence[float] | None = "auto",
                 norm_std: str | float | Sequence[float] | None = "auto") -> None:
        super().__init__()
        if norm_mean == "auto" or norm_std == "auto":
            rgb = in_chans == 3
            norm_mean = IMAGENET_DEFAULT_MEAN if rgb else K710_SSV2_MEAN
            norm_std = IMAGENET_DEFAULT_STD if rgb else K710_SSV2_STD
        self.img_size, self.patch_size, self.tubelet_size = img_size, patch_size, tubelet_size
        self.num_frames, self.in_chans, self.teacher_dim = num_frames, in_chans, teacher_dim
        self.embed_dim = embed_dim
        self.input_norm = InputNorm(in_chans, norm_mean, norm_std)
        self.encoder = VideoViTEncoder(img_size, patch_size, tubelet_size, num_frames, in_chans, embed_dim, depth,
                                       num_heads, mlp_ratio, qkv_bias, drop_path_rate, init_values,
                                       use_learnable_pos_emb, attn_impl, final_norm=True, weight_init="xavier")
        self.grid = self.encoder.grid
        self.num_tokens = self.encoder.num_patches
        self.decoder = DistillHead(embed_dim, teacher_dim)

    # ---------------------------------------------------------------- optimiser hooks
    def get_num_layers(self) -> int:
        """Number of transformer blocks (layer-wise lr decay: ``encoder.blocks.k`` is layer ``k + 1``)."""
        return len(self.encoder.blocks)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Full names exempt from weight decay: a learned ``encoder.pos_embed``."""
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the encoder's block activations in backward."""
        self.encoder.set_grad_checkpointing(enable)

    # ---------------------------------------------------------------- forward
    def forward_tokens(self, video: torch.Tensor, encoder_mask: torch.Tensor) -> torch.Tensor:
        """Raw clip and hidden mask -> ``[mean of the visible tokens, visible tokens]`` after the final LayerNorm,
        ``(B, 1 + N_vis, D)``.

        Raises:
            ValueError / TypeError: see the class docstring.
        """
        check_clip(video, self.in_chans, self.num_frames, self.img_size, type(self).__name__)
        hidden = as_token_mask(encoder_mask, video.shape[0], self.num_tokens, "encoder_mask").to(video.device)
        if video.shape[0] and bool(hidden.all(dim=1).any()):
            raise ValueError("encoder_mask hides every token of a sample; DistillVideoViT needs at least one "
                             "visible token (its clip-level row is their mean)")
        x = self.encoder(self.input_norm(video), hidden)
        return torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)

    def forward(self, video: torch.Tensor, encoder_mask: torch.Tensor) -> torch.Tensor:
        """See the module docstring: float32 ``(B, 1 + N_vis, teacher_dim)``, unit rows."""
        return self.decoder(self.forward_tokens(video, encoder_mask))


def _vit_student(size: str, geometry: str, pretrained: bool, kwargs: dict) -> DistillVideoViT:
    name = f"distill_video_vit_{size}_{geometry}"
    if pretrained:
        raise ValueError(f"{name}: no pretrained weights are registered for snappix models")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    _drop_unused(name, kwargs)
    args = dict(in_chans=1, mlp_ratio=4.0, qkv_bias=True, **_GEOMETRY[geometry], **_VIT_SIZES[size])
    args.update(kwargs)
    return DistillVideoViT(**args)


@register_model
def distill_video_vit_super_tiny_patch16_112(pretrained: bool = False, **kwargs) -> DistillVideoViT:
    """Student of ``video_vit_super_tiny_patch16_112`` (128 / 8 / 2; grey 16 x 112^2, patch 16, tubelet 4 like
    that classifier, so that its patch embedding loads: 4 x 7 x 7 = 196 tokens)."""
    return _vit_student("super_tiny", "patch16_112", pretrained, kwargs)


@register_model
def distill_video_vit_small_patch16_224(pretrained: bool = False, **kwargs) -> DistillVideoViT:
    """Student of ``video_vit_small_patch16_224`` (384 / 12 / 6; grey 16 x 224^2, patch 16, tubelet 2)."""
    return _vit_student("small", "patch16_224", pretrained, kwargs)


@register_model
def distill_video_vit_base_patch16_224(pretrained: bool = False, **kwargs) -> DistillVideoViT:
    """Student of ``video_vit_base_patch16_224`` (768 / 12 / 12; grey 16 x 224^2, patch 16, tubelet 2), UMT's
    ViT-B size."""
    return _vit_student("base", "patch16_224", pretrained, kwargs)
