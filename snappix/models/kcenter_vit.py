"""K-center ViT: a ViT classifier on k-centered space-time patches (Park et al., ECCV 2022; docs/methods/kcenter.md).

The raw clip is cut into per-frame ``p x p`` patches; ``num_hybrid_frames`` frames at
``linspace(0, T - 1, n)`` are kept whole ("hybrid frames"); from the other frames greedy k-center
(:func:`snappix.masking.kcenter.kcenter_select`, over ``[normalised pixels || scaled (t, h, w)]``) picks
the rest of the ``num_sample_patches`` budget. The selected pixel vectors are linearly embedded (a
per-patch convolution), each token gets the learned spatial position of its patch plus the learned
time embedding of its **true** frame, a CLS token (spatial entry 0, no time embedding) is prepended,
and pre-LN blocks with joint space-time attention feed a linear head on the CLS token.

Selection runs under ``no_grad`` on the model's device. The first k-center centre is random in
training mode and the fixed centre patch in eval mode (``first_center="auto"``), so evaluation is
deterministic (the reference draws it at random at test time too; ``docs/methods/kcenter.md``).
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from timm.layers import trunc_normal_
from torch import nn

from snappix.masking.kcenter import hybrid_frame_indices, indices_to_mask, kcenter_select, patch_points
from snappix.models.classifier_utils import InputNorm, check_clip
from snappix.models.layers import Block, LayerNorm, init_weights
from snappix.models.vit import run_blocks
from snappix.sensor import K710_SSV2_MEAN, K710_SSV2_STD

__all__ = ["KCenterViTClassifier"]


class KCenterViTClassifier(nn.Module):
    """ViT on a fixed budget of k-centered patches (``kcenter_vit``, ECCV'22 §5.1 of the spec).

    Args:
        num_classes: K (0: ``forward`` returns the CLS features).
        img_size, patch_size, num_frames, in_chans: raw clip geometry (super-tiny default 112, 8, 16, 1).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, drop_rate, attn_impl: ViT.
        num_sample_patches: tokens per clip (besides CLS); default a quarter of all patches (the paper:
            1568 of 32 x 196, i.e. 8 frames' worth).
        num_hybrid_frames: whole frames kept (paper: 3 of 32); their patches count in the budget.
        time_division, space_division: k-center chunking (see :func:`~snappix.masking.kcenter.kcenter_select`).
        temporal_coef, spatial_coef: multipliers of the coordinate channels (``docs/methods/kcenter.md``).
        first_center: ``"auto"`` (random in training, ``"center"`` in eval), ``"random"`` or ``"center"``.
        norm_mean, norm_std: input normalisation (grey K710+SSV2 statistics by default); the coordinate
            scale uses ``rgb_range = 1 / norm_std`` (spec: 2 for std 0.5).
        init_scale: head weight multiplier after init.

    Shapes:
        ``forward(video)``: float ``(B, in_chans, num_frames, H, W)`` in [0, 1] -> logits ``(B, K)``.
        :meth:`select` -> int64 ``(B, num_sample_patches)`` flat indices into the ``T x H/p x W/p`` patch grid.

    Raises:
        ValueError: a budget that does not fit (fewer k-center patches than 1, more than available,
            not divisible by ``time_division``), bad divisions or hybrid count; a wrong clip in forward.
    """

    def __init__(self, num_classes: int = 400, img_size: int = 112, patch_size: int = 8, num_frames: int = 16,
                 in_chans: int = 1, embed_dim: int = 384, depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path_rate: float = 0.1, drop_rate: float = 0.0,
                 num_sample_patches: int | None = None, num_hybrid_frames: int = 1, time_division: int = 1,
                 space_division: int = 1, temporal_coef: float = 1.0, spatial_coef: float = 1.0,
                 first_center: str = "auto", norm_mean: float | Sequence[float] | None = K710_SSV2_MEAN,
                 norm_std: float | Sequence[float] | None = K710_SSV2_STD, init_scale: float = 0.001,
                 attn_impl: str = "sdpa") -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        if first_center not in ("auto", "random", "center"):
            raise ValueError(f"first_center must be auto, random or center, got {first_center!r}")
        self.num_classes, self.img_size, self.patch_size = num_classes, img_size, patch_size
        self.num_frames, self.in_chans = num_frames, in_chans
        self.hw = (img_size // patch_size) ** 2
        self.side = img_size // patch_size
        total = num_frames * self.hw
        self.num_sample_patches = int(num_sample_patches or total // 4)
        self.hybrid = hybrid_frame_indices(num_frames, num_hybrid_frames)
        rest = sorted(set(range(num_frames)) - set(self.hybrid.tolist()))
        self.register_buffer("rest_frames", torch.tensor(rest, dtype=torch.long), persistent=False)
        self.register_buffer("hybrid_frames", self.hybrid.clone(), persistent=False)
        self.k = self.num_sample_patches - num_hybrid_frames * self.hw
        self.time_division, self.space_division = time_division, space_division
        if self.k < 1 or self.k > len(rest) * self.hw:
            raise ValueError(f"num_sample_patches {self.num_sample_patches} with {num_hybrid_frames} hybrid frames "
                             f"({num_hybrid_frames * self.hw} patches) leaves k={self.k} k-center patches; need "
                             f"1..{len(rest) * self.hw}")
        if len(rest) % time_division or self.k % time_division:
            raise ValueError(f"time_division {time_division} must divide the {len(rest)} non-hybrid frames and "
                             f"k={self.k}")
        self.temporal_coef, self.spatial_coef, self.first_center = temporal_coef, spatial_coef, first_center
        self.input_norm = InputNorm(in_chans, norm_mean, norm_std)
        std = self.input_norm.std
        self.rgb_range = float(1.0 / std.mean()) if std is not None else 1.0
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Linear(in_chans * patch_size * patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.ParameterDict({
            "space": nn.Parameter(torch.zeros(1, 1 + self.hw, embed_dim)),  # entry 0: CLS
            "time": nn.Parameter(torch.zeros(1, num_frames, embed_dim)),  # zero init (docs/methods/kcenter.md)
        })
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i],
                                           attn_impl=attn_impl) for i in range(depth)])
        self.norm = LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.grad_checkpointing = False
        self.apply(partial(init_weights, mode="trunc_normal"))
        trunc_normal_(self.pos_embed["space"], std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        if isinstance(self.head, nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(init_scale)
                self.head.bias.mul_(init_scale)

    # ---------------------------------------------------------------- optimiser hooks
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Position / time embeddings and the CLS token."""
        return {"pos_embed", "cls_token"}

    def get_num_layers(self) -> int:
        """Number of blocks (layer-wise lr decay)."""
        return len(self.blocks)

    def get_classifier(self) -> nn.Module:
        return self.head

    # ---------------------------------------------------------------- selection
    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """Normalised clip -> per-frame patch pixels ``(B, T, H/p, W/p, C * p * p)``."""
        b, c, t, h, w = video.shape
        p = self.patch_size
        x = video.reshape(b, c, t, h // p, p, w // p, p).permute(0, 2, 3, 5, 1, 4, 6)
        return x.reshape(b, t, h // p, w // p, c * p * p)

    def _first(self) -> str:
        if self.first_center == "auto":
            return "random" if self.training else "center"
        return self.first_center

    @torch.no_grad()
    def select(self, patches: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Token indices for patches ``(B, T, h, w, P)``: the hybrid frames' patches, then the k-center picks.

        Returns:
            int64 ``(B, num_sample_patches)`` flat indices ``t * h * w + s`` into the full patch grid.
        """
        b = patches.shape[0]
        points = patch_points(patches.float(), self.patch_size, self.rgb_range, self.temporal_coef,
                              self.spatial_coef)[:, self.rest_frames]
        local = kcenter_select(points, self.k, self.time_division, self.space_division, first=self._first(),
                               generator=generator)
        frames = self.rest_frames[local // self.hw]
        picked = frames * self.hw + local % self.hw
        whole = (self.hybrid_frames[:, None] * self.hw + torch.arange(self.hw, device=patches.device)).reshape(1, -1)
        return torch.cat([whole.expand(b, -1), picked], dim=1)

    def token_mask(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """K-center as the token selector of a masked encoder on tubelet-1 tokens: bool ``(B, T * h * w)``,
        True = hidden, exactly ``T * h * w - num_sample_patches`` per clip."""
        x = self.input_norm(video)
        return indices_to_mask(self.select(self.patchify(x), generator), self.num_frames * self.hw)

    # ---------------------------------------------------------------- forward
    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip -> normed token features ``(B, 1 + num_sample_patches, D)`` (CLS first)."""
        check_clip(video, self.in_chans, self.num_frames, self.img_size, type(self).__name__)
        x = self.input_norm(video)
        patches = self.patchify(x)
        b = patches.shape[0]
        idx = self.select(patches)
        flat = patches.reshape(b, -1, patches.shape[-1])
        tokens = torch.gather(flat, 1, idx.unsqueeze(-1).expand(-1, -1, flat.shape[-1]))
        tokens = self.patch_embed.proj(tokens)
        space = self.pos_embed["space"][0, 1:][idx % self.hw]
        time = self.pos_embed["time"][0][idx // self.hw]
        tokens = tokens + (space + time).to(tokens.dtype)
        cls = (self.cls_token + self.pos_embed["space"][:, :1]).expand(b, -1, -1).to(tokens.dtype)
        x = self.pos_drop(torch.cat([cls, tokens], dim=1))
        return self.norm(run_blocks(self.blocks, x, self.grad_checkpointing))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip ``(B, C, T, H, W)`` in [0, 1] -> logits ``(B, num_classes)``."""
        return self.head(self.forward_features(video)[:, 0])
