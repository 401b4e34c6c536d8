"""VideoMamba classifier (Li et al., "VideoMamba: State Space Model for Efficient Video Understanding",
ECCV 2024, https://arxiv.org/abs/2403.06977) and its timm registry entries.

A stack of bidirectional Mamba blocks (:mod:`snappix.models.mamba_mixer`) over a spatial-first token
sequence; the cost grows linearly with the number of tokens. Runs on CPU with the pure-PyTorch scan, on
GPU with ``mamba_ssm``'s kernel when it is installed (:mod:`snappix.models.selective_scan`).

===========================  ===========  =========================================================
name                         dim / depth  parameters (without head / with a 400-class head)
===========================  ===========  =========================================================
``videomamba_tiny``          192 / 24     6.96 M / 7.03 M  (224 px, 8 frames, RGB)
``videomamba_small``         384 / 24     25.41 M / 25.57 M
``videomamba_middle``        576 / 32     73.65 M / 73.88 M
``videomamba_super_tiny``    96 / 4       CPU demo size: grey, patch 32, d_state 8, tubelet 4, mean pool
===========================  ===========  =========================================================

Common: patch 16, tubelet 1, d_state 16, d_conv 4, expand 2, dt_rank ``ceil(dim / 16)``, RMSNorm (eps 1e-5),
RGB input (``in_chans=3``, like the released checkpoints; ``in_chans=1`` for grey data), 8 frames at 224 px
by default. The names do not collide with timm's own models. The parameter layout is VideoMamba's, tensor for
tensor (``layers.k`` there is ``blocks.k`` here); the counts above are exact for 224 px, 8 frames, RGB.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from timm.models import register_model
from torch import nn

from snappix.models.classifier_utils import InputNorm, check_clip
from snappix.models.mamba_mixer import MambaBlock
from snappix.models.patch_embed import PatchEmbed3d, token_grid
from snappix.models.vit import run_blocks
from snappix.sensor import K710_SSV2_MEAN, K710_SSV2_STD

__all__ = ["VideoMamba", "VIDEOMAMBA_SIZES"]

_log = logging.getLogger(__name__)

#: registry size -> (embed_dim, depth)
VIDEOMAMBA_SIZES = {"tiny": (192, 24), "small": (384, 24), "middle": (576, 32)}


class VideoMamba(nn.Module):
    """VideoMamba video classifier (arXiv:2403.06977, §3.2-3.3; the ``video_sm`` model).

    1. The raw clip is normalised inside the model (``(x - norm_mean) / norm_std``; by default ImageNet's
       statistics for RGB and snappix's linear-grey ones for ``in_chans=1``).
    2. ``patch_embed.proj``: Conv3d, kernel = stride = ``(tubelet, p, p)``: ``(B, D, T', H', W')``.
    3. Per frame, the spatial table ``pos_embed`` ``(1, 1 + H'W', D)`` is added (entry 0 to the CLS token);
       ``temporal_pos_embedding`` ``(1, T', D)`` is added to every patch token of frame t (not to CLS).
    4. Sequence ``[CLS, frame 0 tokens (row-major), frame 1 tokens, ...]`` of length ``1 + T'H'W'``
       ("spatial-first"), dropout ``drop_rate``.
    5. ``blocks.k``: pre-norm bidirectional Mamba blocks, drop path linearly 0 .. ``drop_path_rate``.
    6. ``norm_f`` (RMSNorm), the CLS token, dropout ``fc_drop_rate``, ``head``.

    Initialisation: ``pos_embed`` trunc-normal(0.02), ``cls_token`` and the temporal table zero, ``head``
    trunc-normal(0.02) times ``init_scale`` with zero bias, mixers as :class:`~snappix.models.mamba_mixer.BiMambaMixer`.

    Args:
        num_classes: K (0 -> ``head`` is the identity and ``forward`` returns CLS features ``(B, D)``).
        img_size: frame side (or ``(H, W)``), pixels; a multiple of ``patch_size``.
        patch_size: spatial patch side p (16).
        num_frames: frames T of the clip; a multiple of ``tubelet_size``.
        tubelet_size: frames per token (1 in VideoMamba).
        in_chans: 3 (RGB) or 1 (grey).
        embed_dim, depth: width d and number of blocks.
        d_state, d_conv, expand, dt_rank: mixer sizes (16, 4, 2, ``ceil(d / 16)``).
        drop_rate: dropout after the position tables.
        drop_path_rate: largest stochastic-depth rate (last block).
        fc_drop_rate: dropout before the head (``head_drop_rate`` is accepted as another name).
        init_scale: head weight multiplier after init (1: VideoMamba's plain init).
        norm_eps: RMSNorm epsilon.
        norm_mean, norm_std: input statistics; ``"auto"`` picks by ``in_chans``; ``None`` for both: identity.
        scan_backend: ``"auto"`` | ``"sequential"`` | ``"parallel"`` | ``"cuda"`` (see
            :func:`~snappix.models.selective_scan.selective_scan`).
        global_pool: ``"token"`` (VideoMamba: the CLS token feeds the head) or ``"avg"`` (the mean of the
            patch tokens, as VideoMAE's ViT classifiers; used by ``videomamba_super_tiny``).

    Shapes:
        ``forward(video)``: float ``(B, in_chans, num_frames, H, W)`` in [0, 1] -> logits ``(B, K)``.

    Raises:
        ValueError: sizes not divisible by the tubelet / patch, negative ``num_classes``, a bad backend;
            in ``forward``, a clip of another shape or an integer dtype.
    """

    def __init__(self, num_classes: int = 400, img_size: int | tuple[int, int] = 224, patch_size: int = 16,
                 num_frames: int = 8, tubelet_size: int = 1, in_chans: int = 3, embed_dim: int = 192,
                 depth: int = 24, d_state: int = 16, d_conv: int = 4, expand: int = 2, dt_rank: int | None = None,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.1, fc_drop_rate: float = 0.0,
                 head_drop_rate: float | None = None, init_scale: float = 1.0, norm_eps: float = 1e-5,
                 norm_mean: str | float | Sequence[float] | None = "auto",
                 norm_std: str | float | Sequence[float] | None = "auto", scan_backend: str = "auto",
                 global_pool: str = "token") -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        self.global_pool = global_pool
        self.grid = token_grid(num_frames, img_size, tubelet_size, patch_size)
        self.num_classes, self.img_size, self.patch_size = num_classes, img_size, patch_size
        self.num_frames, self.tubelet_size, self.in_chans = num_frames, tubelet_size, in_chans
        self.embed_dim = self.num_features = embed_dim
        self.init_scale = init_scale
        if norm_mean == "auto" or norm_std == "auto":
            rgb = in_chans == 3
            norm_mean = IMAGENET_DEFAULT_MEAN if rgb else K710_SSV2_MEAN
            norm_std = IMAGENET_DEFAULT_STD if rgb else K710_SSV2_STD
        # InputNorm checks its statistics eagerly, which a meta tensor cannot do: on the meta device (parameter
        # counting without allocation) its two small buffers are built on the CPU
        on_meta = torch.empty(0).device.type == "meta"
        with torch.device("cpu") if on_meta else contextlib.nullcontext():
            self.input_norm = InputNorm(in_chans, norm_mean, norm_std)
        self.patch_embed = PatchEmbed3d(patch_size, tubelet_size, in_chans, embed_dim)
        frames, h, w = self.grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + h * w, embed_dim))
        self.temporal_pos_embedding = nn.Parameter(torch.zeros(1, frames, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear 0 .. rate (meta-safe)
        self.blocks = nn.ModuleList([
            MambaBlock(embed_dim, drop_path=dpr[i], norm_eps=norm_eps, d_state=d_state, d_conv=d_conv, expand=expand,
                       dt_rank=dt_rank, depth=depth, scan_backend=scan_backend)
            for i in range(depth)])
        self.norm_f = nn.RMSNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(fc_drop_rate if head_drop_rate is None else head_drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.grad_checkpointing = False
        trunc_normal_(self.pos_embed, std=0.02)
        self._init_head()

    def _init_head(self) -> None:
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
            with torch.no_grad():
                self.head.weight.mul_(self.init_scale)

    # ---------------------------------------------------------------- optimiser / checkpoint hooks
    @property
    def num_layers(self) -> int:
        """Number of Mamba blocks."""
        return len(self.blocks)

    def get_num_layers(self) -> int:
        """Depth L for layer-wise lr decay: ``blocks.k`` is layer ``k + 1``; the embeddings layer 0; ``norm_f``
        and ``head`` layer ``L + 1``."""
        return len(self.blocks)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Exempt from weight decay: the position tables, the CLS token, and every ``A_log`` / ``A_b_log``
        (Mamba keeps the state matrix out of weight decay; ``D`` and biases are 1-D, hence exempt anyway)."""
        return {"pos_embed", "cls_token", "temporal_pos_embedding", "A_log", "A_b_log"}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward (less memory, more compute)."""
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        """The final Linear (timm convention)."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``head`` by a fresh ``Linear(D, num_classes)`` (0 -> identity)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_head()

    def remap_state_dict(self, state: dict, report=None) -> dict:
        """VideoMamba checkpoint keys and shapes -> this model's (called by
        :func:`snappix.models.convert.convert_state_dict`); see :mod:`snappix.models.convert_videomamba`."""
        from snappix.models.convert_videomamba import remap_videomamba_state_dict

        return remap_videomamba_state_dict(self, state, report)

    # ---------------------------------------------------------------- forward
    def patch_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip ``(B, C, T, H, W)`` in [0, 1] -> normalised, patch-embedded tokens ``(B, T'H'W', D)`` in
        spatial-first order (frame-major raster), no positions, no CLS token.

        Raises:
            ValueError: a clip of another shape than the model was built for, or an integer dtype.
        """
        check_clip(video, self.in_chans, self.num_frames, self.img_size, type(self).__name__)
        return self.patch_embed(self.input_norm(video))

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip ``(B, C, T, H, W)`` in [0, 1] -> token sequence ``(B, 1 + T'H'W', D)`` with positions added,
        in the order ``[CLS, frame 0 tokens, frame 1 tokens, ...]``.

        Raises:
            ValueError: a clip of another shape than the model was built for, or an integer dtype.
        """
        tokens = self.patch_tokens(video)  # (B, T'H'W', D), frame-major raster order
        frames, h, w = self.grid
        tokens = tokens.unflatten(1, (frames, h * w))
        tokens = tokens + self.pos_embed[:, None, 1:] + self.temporal_pos_embedding[:, :, None]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        return self.pos_drop(torch.cat([cls.to(tokens.dtype), tokens.flatten(1, 2)], dim=1))

    def forward_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip -> every token after the final RMSNorm, ``(B, 1 + T'H'W', D)`` float32."""
        x = run_blocks(self.blocks, self.embed(video), self.grad_checkpointing)
        return self.norm_f(x)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens ``(B, L, D)`` -> the CLS token (position 0; with ``global_pool="avg"`` the mean of the other
        tokens) -> dropout -> head: logits ``(B, K)`` (or those features ``(B, D)`` with ``pre_logits``)."""
        x = tokens[:, 1:].mean(1) if self.global_pool == "avg" else tokens[:, 0]
        return x if pre_logits else self.head(self.head_drop(x))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip ``(B, C, T, H, W)`` in [0, 1] -> logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_tokens(video))


# ============================================================================================ registry
_TIMM_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")
#: options the shared entry points pass to every classifier that VideoMamba has no use for
_UNUSED_KWARGS = ("coded_type", "pattern_path", "pattern_dir", "tile_size", "sensor_seed", "sensor_noise",
                  "attn_drop_rate", "init_values", "use_learnable_pos_emb", "attn_impl", "num_heads", "mlp_ratio",
                  "qkv_bias")


#: the CPU demo size (``videomamba_super_tiny``): everything that differs from the reference sizes
_SUPER_TINY = dict(patch_size=32, embed_dim=96, depth=4, d_state=8, tubelet_size=4, global_pool="avg", num_frames=16, img_size=64,
                   in_chans=1)  # 64 px: the demo size, a multiple of the 32-px patch


def _videomamba(size: str, pretrained: bool, kwargs: dict, cls: type[VideoMamba] | None = None) -> VideoMamba:
    """``cls`` (default :class:`VideoMamba`; a subclass such as the distillation student) of the registered
    ``size`` with ``kwargs`` overriding the registered defaults."""
    if pretrained:
        raise ValueError("no pretrained weights are registered for snappix models; load VideoMamba's released "
                         "checkpoints with snappix.methods.pretrained.load_pretrained instead")
    for key in _TIMM_KWARGS:
        kwargs.pop(key, None)
    given = {k: kwargs.pop(k) for k in _UNUSED_KWARGS if k in kwargs}
    if given:
        _log.info("videomamba_%s: ignoring %s (options of other models)", size,
                  ", ".join(f"{k}={v!r}" for k, v in given.items()))
    if size == "super_tiny":
        args = dict(_SUPER_TINY)
    else:
        dim, depth = VIDEOMAMBA_SIZES[size]
        args = dict(embed_dim=dim, depth=depth, patch_size=16, tubelet_size=1, num_frames=8, img_size=224,
                    in_chans=3)
    args.update(kwargs)
    return (cls or VideoMamba)(**args)


@register_model
def videomamba_tiny(pretrained: bool = False, **kwargs) -> VideoMamba:
    """VideoMamba-Ti (192 / 24): 6.96 M parameters without head, 7.03 M with 400 classes (8 x 224^2 RGB)."""
    return _videomamba("tiny", pretrained, kwargs)


@register_model
def videomamba_small(pretrained: bool = False, **kwargs) -> VideoMamba:
    """VideoMamba-S (384 / 24): 25.41 M parameters without head, 25.57 M with 400 classes (8 x 224^2 RGB)."""
    return _videomamba("small", pretrained, kwargs)


@register_model
def videomamba_middle(pretrained: bool = False, **kwargs) -> VideoMamba:
    """VideoMamba-M (576 / 32): 73.65 M parameters without head, 73.88 M with 400 classes (8 x 224^2 RGB)."""
    return _videomamba("middle", pretrained, kwargs)


@register_model
def videomamba_super_tiny(pretrained: bool = False, **kwargs) -> VideoMamba:
    """A VideoMamba small enough to train on a laptop CPU (``bash scripts/demos/videomamba.sh``): width 96,
    depth 4, state size 8 (the reference sizes use 16), grey input (``in_chans=1``), patches of 32 pixels and
    tubelets of 4 frames, so that 16 frames of 64 x 64 pixels make 4 x 2 x 2 = 16 tokens (plus CLS), and the
    head reads the mean of the patch tokens (``global_pool="avg"``) instead of the CLS token. Not a size of
    the paper: the pure-PyTorch scan costs about ``B x L x 2d x d_state`` per block, and this is what trains
    in a few minutes of CPU time."""
    return _videomamba("super_tiny", pretrained, kwargs)
