"""ViT video classifiers: SnapPix's coded-image ViT and the video ViT baseline (SnapPix DAC'25 §5).

Both take the **raw clip** ``(B, C, T, H, W)`` in linear [0, 1], normalise it inside the model and
return class logits ``(B, num_classes)``:

* :class:`CodedViTClassifier` (SnapPix ``CodedVisionTransformer``, §5.1): sensor (coded exposure,
  16 frames -> one coded image) -> ``(Y - 0.2277) / 0.2425`` -> coded-image tokens (tubelet 1, patch 8:
  the patch is the exposure tile; 196 tokens at 112 px) -> fixed sin-cos table -> pre-LN blocks with
  stochastic depth -> mean pool -> ``fc_norm`` -> head dropout -> ``head``.
* :class:`VideoViTClassifier` (VideoMAE's finetuning ViT; SnapPix's video-ViT baseline, §5.2): the same
  on tubelet tokens of the full clip (tubelet 2, 8 x 14 x 14 = 1568 tokens at 16 x 112 px, patch 8).

Parameter names follow VideoMAE's finetuning model (``patch_embed.proj``, ``blocks.k.attn.q_bias``,
``fc_norm``, ``head``) so its checkpoints and the encoders of our pretraining models load with
:func:`snappix.methods.pretrained.load_pretrained` after stripping ``encoder.``; the sensor's pattern logits
are ``sensor.logits`` (SnapPix: ``coded_layer.coded_weight``). The encoder's final ``norm`` is the
identity (mean pooling + ``fc_norm`` instead), as in VideoMAE with ``use_mean_pooling=True``.

The helpers shared with the other classifiers (:class:`InputNorm`, :func:`check_clip`,
:func:`count_parameters`, :func:`sensor_param_names`, :func:`sensor_lr_scales`) live in
:mod:`~snappix.models.classifier_utils` and are importable from here too.
"""

from __future__ import annotations

from typing import Sequence

import torch
from timm.layers import trunc_normal_
from torch import nn

from snappix.models.classifier_utils import (InputNorm, check_clip, count_parameters,  # noqa: F401  (re-exported)
                                             sensor_lr_scales, sensor_param_names)
from snappix.models.layers import LayerNorm
from snappix.models.vit import VideoViTEncoder, run_blocks
from snappix.sensor import K710_SSV2_MEAN, K710_SSV2_STD, IdentitySensor, build_sensor

__all__ = ["InputNorm", "check_clip", "count_parameters", "sensor_param_names", "sensor_lr_scales",
           "ViTClassifierBase", "VideoViTClassifier", "CodedViTClassifier"]


# --------------------------------------------------------------------------------------------- ViT classifiers
class ViTClassifierBase(VideoViTEncoder):
    """Mean-pooling ViT classifier on a (possibly coded) clip; the shared body of the two public classes.

    It *is* a :class:`~snappix.models.vit.VideoViTEncoder` (so parameter names are flat:
    ``patch_embed``, ``pos_embed``, ``blocks.k``), built with ``final_norm=False`` and trunc-normal
    (std 0.02) Linear initialisation, plus ``sensor``, ``fc_norm`` (LayerNorm eps 1e-6), ``head_drop``
    and ``head``. The head's weight and bias are multiplied by ``init_scale`` after initialisation.

    Not constructed directly: use :class:`VideoViTClassifier` or :class:`CodedViTClassifier`.

    ``forward(video)``, :meth:`forward_tokens` and :meth:`prepare_input` take the **raw clip**; the
    inherited ``forward_features(x, mask)`` is the bare encoder on an already sensed and normalised tensor.

    Args (keyword):
        num_classes: K (0 -> ``head`` is the identity and ``forward`` returns pooled features ``(B, D)``).
        img_size: frame side (or ``(H, W)``) of the clip.
        patch_size: spatial patch side p.
        clip_frames: frames T of the raw clip the model accepts.
        token_frames, token_tubelet: frames of the tensor the tokenizer sees (the sensor output) and the
            tubelet length (video: ``T`` and 2; coded image: 1 and 1).
        in_chans: C.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, init_values, use_learnable_pos_emb, attn_impl:
            see :class:`~snappix.models.vit.VideoViTEncoder`.
        drop_rate: dropout after adding the position table and inside the blocks (MLP, attention
            projection); VideoMAE/SnapPix ``--drop`` (0 in every SnapPix script).
        attn_drop_rate: dropout on the attention probabilities (``--attn_drop_rate``, 0 in SnapPix).
        drop_path_rate: stochastic depth, linearly spaced 0 .. this over the blocks (SnapPix 0.1).
        head_drop_rate: dropout before the head (``--head_drop_rate``, 0 in SnapPix).
        init_scale: head weight/bias multiplier after init (SnapPix 0.001).
        sensor: the sensor module, or None (ordinary video).
        norm_mean, norm_std: input normalisation applied after the sensor (see :class:`InputNorm`).

    Attributes:
        sensor: the sensor (None for video).
        num_layers: number of blocks (layer-wise lr decay: ``blocks.k`` -> layer ``k + 1``).
    """

    def __init__(self, *, num_classes: int, img_size: int | tuple[int, int], patch_size: int, clip_frames: int,
                 token_frames: int, token_tubelet: int, in_chans: int, embed_dim: int, depth: int, num_heads: int,
                 mlp_ratio: float, qkv_bias: bool, drop_rate: float, attn_drop_rate: float, drop_path_rate: float,
                 head_drop_rate: float, init_values: float | None, use_learnable_pos_emb: bool, init_scale: float,
                 attn_impl: str, sensor: nn.Module | None, norm_mean, norm_std) -> None:
        super().__init__(img_size, patch_size, token_tubelet, token_frames, in_chans, embed_dim, depth, num_heads,
                         mlp_ratio, qkv_bias, drop_path_rate, init_values, use_learnable_pos_emb, attn_impl,
                         final_norm=False, weight_init="trunc_normal")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes, self.img_size, self.patch_size = num_classes, img_size, patch_size
        self.num_frames, self.in_chans = clip_frames, in_chans
        self.init_scale = init_scale
        self.sensor = sensor
        self.input_norm = InputNorm(in_chans, norm_mean, norm_std)
        self.pos_drop = nn.Dropout(drop_rate)
        if drop_rate or attn_drop_rate:
            for blk in self.blocks:  # the encoder's blocks are built without dropout; switch it on in place
                blk.attn.attn_drop = attn_drop_rate
                blk.attn.proj_drop = nn.Dropout(drop_rate)
                blk.mlp.drop1, blk.mlp.drop2 = nn.Dropout(drop_rate), nn.Dropout(drop_rate)
        self.fc_norm = LayerNorm(embed_dim)
        self.head_drop = nn.Dropout(head_drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_head()

    def _init_head(self) -> None:
        nn.init.ones_(self.fc_norm.weight)
        nn.init.zeros_(self.fc_norm.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
            with torch.no_grad():  # SnapPix / VideoMAE init_scale (the bias is 0 either way)
                self.head.weight.mul_(self.init_scale)
                self.head.bias.mul_(self.init_scale)

    # ---------------------------------------------------------------- optimiser hooks
    @property
    def num_layers(self) -> int:
        """Number of transformer blocks L."""
        return len(self.blocks)

    def get_num_layers(self) -> int:
        """L, for layer-wise lr decay (VideoMAE ``get_num_layers``)."""
        return len(self.blocks)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Full names exempt from weight decay: a learned ``pos_embed`` and every sensor parameter."""
        return set(super().no_weight_decay()) | sensor_param_names(self.sensor)

    def lr_scales(self) -> dict[str, float]:
        """Per-parameter lr scales beyond layer decay (the TPAMI sensor's ``1 / sigma``); see
        :func:`sensor_lr_scales`."""
        return sensor_lr_scales(self.sensor)

    def get_classifier(self) -> nn.Module:
        """The final Linear (timm convention)."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``head`` by a fresh ``Linear(D, num_classes)`` (trunc-normal 0.02 x ``init_scale``; 0 ->
        identity) and re-initialise ``fc_norm``."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_head()

    # ---------------------------------------------------------------- forward
    def prepare_input(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip -> what the tokenizer sees: sensor read-out, normalised.

        Args:
            video: float ``(B, C, T, H, W)`` in linear [0, 1] with the built ``C``, ``T``, ``H``, ``W``.

        Returns:
            ``(B, C, T_s, H, W)``, ``T_s = 1`` for a coded exposure, ``T`` for video; normalised with
            ``(x - norm_mean) / norm_std``.

        Raises:
            ValueError: a clip of the wrong shape / dtype, or a sensor whose output the tokenizer cannot take.
        """
        check_clip(video, self.in_chans, self.num_frames, self.img_size, type(self).__name__)
        x = video if self.sensor is None else self.sensor(video)
        return self.input_norm(x)

    def forward_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip -> token features after the last block ``(B, N, D)`` (no pooling, no ``fc_norm``).

        Same computation as :meth:`VideoViTEncoder.forward_features` on :meth:`prepare_input` (plus
        ``pos_drop``, the identity at ``drop_rate=0`` or in eval mode).
        """
        x = self.prepare_input(video)
        grid = self.patch_embed.grid(x)
        if grid != self.grid:
            raise ValueError(f"the tokenizer got {tuple(x.shape)} (grid {grid}) but was built for grid {self.grid}")
        x = self.patch_embed(x)
        x = self.pos_drop(x + self.pos_embed.to(x.dtype))
        return run_blocks(self.blocks, x, self.grad_checkpointing)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens ``(B, N, D)`` -> mean pool -> ``fc_norm`` -> dropout -> head: logits ``(B, K)``
        (or the pooled, normalised features ``(B, D)`` with ``pre_logits``)."""
        x = self.fc_norm(tokens.mean(dim=1))
        if pre_logits:
            return x
        return self.head(self.head_drop(x))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Raw clip ``(B, C, T, H, W)`` in linear [0, 1] -> class logits ``(B, num_classes)`` (unnormalised
        scores; the loss applies the softmax)."""
        return self.forward_head(self.forward_tokens(video))


class VideoViTClassifier(ViTClassifierBase):
    """Video ViT classifier on the full clip (VideoMAE finetuning model; SnapPix's video-ViT baseline, §5.2).

    Tubelet tokens ``tubelet_size x p x p`` of the normalised clip (no sensor), fixed sin-cos table
    (learned with ``use_learnable_pos_emb``), blocks with stochastic depth, mean pool, ``fc_norm``, head.

    Args:
        num_classes: K (SnapPix: 400 / 174 / 101).
        img_size, patch_size, tubelet_size, num_frames, in_chans: clip geometry (SnapPix super-tiny:
            112, 8, 2, 16, 1 -> 8 x 14 x 14 = 1568 tokens).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate,
            head_drop_rate, init_values, use_learnable_pos_emb, init_scale, attn_impl: see
            :class:`ViTClassifierBase`.
        norm_mean, norm_std: input statistics (default grey 0.2277 / 0.2425; ImageNet's for RGB).

    Shapes:
        ``forward(video)``: float ``(B, in_chans, num_frames, H, W)`` in [0, 1] -> logits ``(B, K)``.

    Raises:
        ValueError: sizes not divisible by the tubelet / patch, bad attn_impl; a wrong clip in forward.
    """

    def __init__(self, num_classes: int = 400, img_size: int | tuple[int, int] = 224, patch_size: int = 16,
                 tubelet_size: int = 2, num_frames: int = 16, in_chans: int = 1, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1,
                 head_drop_rate: float = 0.0, init_values: float | None = None, use_learnable_pos_emb: bool = False,
                 init_scale: float = 0.001, attn_impl: str = "sdpa",
                 norm_mean: float | Sequence[float] | None = K710_SSV2_MEAN,
                 norm_std: float | Sequence[float] | None = K710_SSV2_STD) -> None:
        super().__init__(num_classes=num_classes, img_size=img_size, patch_size=patch_size, clip_frames=num_frames,
                         token_frames=num_frames, token_tubelet=tubelet_size, in_chans=in_chans, embed_dim=embed_dim,
                         depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
                         head_drop_rate=head_drop_rate, init_values=init_values,
                         use_learnable_pos_emb=use_learnable_pos_emb, init_scale=init_scale, attn_impl=attn_impl,
                         sensor=None, norm_mean=norm_mean, norm_std=norm_std)
        self.tubelet_size = tubelet_size


class CodedViTClassifier(ViTClassifierBase):
    """SnapPix coded-image ViT classifier (DAC'25 §5.1, ``CodedVisionTransformer``).

    ``sensor`` (clip -> one coded image ``(B, C, 1, H, W)``) -> ``(Y - 0.2277) / 0.2425`` -> patch
    embedding ``Conv3d(C -> D, kernel = stride = (1, p, p))`` (196 tokens at 112 px, p = 8) -> fixed
    sin-cos table -> blocks (drop path 0 .. 0.1) -> mean pool -> ``fc_norm`` -> head dropout -> head
    (trunc-normal 0.02 x 0.001).

    Args:
        num_classes: K.
        img_size, patch_size, num_frames, in_chans: raw clip geometry (SnapPix: 112, 8, 16, 1).
        embed_dim ... attn_impl: see :class:`ViTClassifierBase`.
        sensor: a module ``(B, C, T, H, W) -> (B, C, 1, H, W)``; if None one is built with
            :func:`snappix.sensor.build_sensor` from ``coded_type`` (default ``"decor_fix"``, the frozen
            pattern behind every SnapPix headline number; from ``pattern_path`` / ``pattern_dir`` /
            ``$SNAPPIX_PATTERN_DIR``, else the ``pattern_4`` shipped with the package), ``tile_size``
            (default ``patch_size``: the exposure tile is the ViT patch), ``sensor_seed`` and ``sensor_noise``.
        norm_mean, norm_std: normalisation of the coded image.

    Attributes:
        sensor: the sensor (its parameters ``sensor.*`` are in ``no_weight_decay()``).

    Shapes:
        ``forward(video)``: float ``(B, in_chans, num_frames, H, W)`` in [0, 1] -> logits ``(B, K)``.

    Raises:
        ValueError: ``coded_type="none"`` (use :class:`VideoViTClassifier`), bad sizes; a wrong clip in
            forward, or a sensor that does not return one coded frame.
        FileNotFoundError: a pattern folder without the type's default file (from ``build_sensor``).
    """

    def __init__(self, num_classes: int = 400, img_size: int | tuple[int, int] = 112, patch_size: int = 8,
                 num_frames: int = 16, in_chans: int = 1, embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, head_drop_rate: float = 0.0, init_values: float | None = None,
                 use_learnable_pos_emb: bool = False, init_scale: float = 0.001, attn_impl: str = "sdpa",
                 sensor: nn.Module | None = None, coded_type: str = "decor_fix", pattern_path: str | None = None,
                 pattern_dir: str | None = None, tile_size: int | None = None, sensor_seed: int = 0,
                 sensor_noise=None, norm_mean: float | Sequence[float] | None = K710_SSV2_MEAN,
                 norm_std: float | Sequence[float] | None = K710_SSV2_STD) -> None:
        if sensor is None:
            sensor = build_sensor(coded_type, num_frames=num_frames, tile_size=tile_size or patch_size,
                                  input_size=img_size, pattern_path=pattern_path, pattern_dir=pattern_dir,
                                  seed=sensor_seed, noise=sensor_noise)
        if isinstance(sensor, IdentitySensor):
            raise ValueError("CodedViTClassifier needs a coded-exposure sensor; for ordinary video "
                             "(coded_type='none') use VideoViTClassifier (video_vit_* models)")
        super().__init__(num_classes=num_classes, img_size=img_size, patch_size=patch_size, clip_frames=num_frames,
                         token_frames=1, token_tubelet=1, in_chans=in_chans, embed_dim=embed_dim, depth=depth,
                         num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, head_drop_rate=head_drop_rate,
                         init_values=init_values, use_learnable_pos_emb=use_learnable_pos_emb, init_scale=init_scale,
                         attn_impl=attn_impl, sensor=sensor, norm_mean=norm_mean, norm_std=norm_std)
        self.coded_type = coded_type
        self.tubelet_size = 1
