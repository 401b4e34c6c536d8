"""Masked video autoencoders: VideoMAE / VideoMAEv2 on video, SnapPix's coded-image -> video MAE.

* :class:`PretrainVideoMAE` -- VideoMAE (Tong et al., NeurIPS'22) and VideoMAEv2 dual masking (Wang et
  al., CVPR'23): the encoder sees the visible tubelets of the clip, the decoder predicts the pixels of a
  query set of tubelets.
* :class:`PretrainCodedMAE` -- SnapPix (Lin et al., DAC'25, §3.2): a coded-exposure sensor turns the
  16-frame clip into one coded image; the encoder sees the visible *coded-image* patches, the decoder
  predicts tubelets of the *original video*.

Forward contract shared by both (the engine and :mod:`snappix.objectives` rely on it)::

    out = model(video, encoder_mask, decoder_mask=None)
    out["pred"]        float (B, N_q, P)   predicted tubelet pixels, P = tubelet * p * p * C
    out["query_mask"]  bool  (B, N)        True = predicted; pred[:, j] is the j-th True position
                                           in ascending flat token index

``video`` is the raw clip ``(B, C, T, H, W)`` in linear [0, 1]; the model normalises it itself (after the
sensor, for the coded model). Masks are bool over the *video* token grid ``(T/tubelet, H/p, W/p)``
flattened in ``(t, h, w)`` order (``(B, N)``, or any ``(B, ...)`` with N trailing entries):
``encoder_mask`` True = hidden from the encoder; ``decoder_mask`` True = *not* reconstructed (VideoMAEv2
running-cell convention). With ``decoder_mask=None`` the query set is the encoder-hidden set (VideoMAE
v1). Passing all-False masks for both gives SnapPix's reconstruction mode (§4): the encoder sees every
token and the decoder predicts every tubelet. Each sample must hide / query the same number of tokens.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from timm.layers import trunc_normal_
from torch import nn

from snappix.models.layers import Block, LayerNorm, init_weights
from snappix.models.patch_embed import token_grid
from snappix.models.pos_embed import sincos_table
from snappix.models.tokens import as_token_mask, select_tokens
from snappix.models.vit import VideoViTEncoder, run_blocks
from snappix.sensor import K710_SSV2_MEAN, K710_SSV2_STD, IdentitySensor, build_sensor

__all__ = ["MAEDecoder", "PretrainVideoMAE", "PretrainCodedMAE"]


class MAEDecoder(nn.Module):
    """MAE decoder: pre-LN blocks, LayerNorm and a linear pixel head on the last ``num_query`` tokens.

    Args:
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_path_rate, init_values, attn_impl: as
            :class:`~snappix.models.vit.VideoViTEncoder` (``num_heads`` need not divide ``embed_dim``;
            see :class:`~snappix.models.layers.Attention`).
        out_dim: pixels per predicted token P.

    Shapes:
        ``forward(x, num_query)``: ``(B, N_vis + N_q, D_dec)`` -> ``(B, N_q, P)`` (head on the last
        ``num_query`` tokens only; ``num_query = 0`` gives an empty ``(B, 0, P)``).
    """

    def __init__(self, embed_dim: int, depth: int, num_heads: int, out_dim: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path_rate: float = 0.0, init_values: float | None = None,
                 attn_impl: str = "sdpa") -> None:
        super().__init__()
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i], init_values=init_values,
                  attn_impl=attn_impl)
            for i in range(depth)])
        self.norm = LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, out_dim)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, num_query: int) -> torch.Tensor:
        x = run_blocks(self.blocks, x, self.grad_checkpointing)
        return self.head(self.norm(x[:, x.shape[1] - num_query:]))


def _stats(value: float | Sequence[float] | None, channels: int, name: str) -> torch.Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=torch.float32).flatten()
    if t.numel() not in (1, channels):
        raise ValueError(f"{name} must be a float or {channels} floats (one per channel), got {value}")
    return t.expand(channels).clone().view(1, channels, 1, 1, 1)


class _MaskedVideoAutoencoder(nn.Module):
    """Parts shared by both MAEs: video token grid, input normalisation, mask handling, decoder side.

    Subclasses build ``self.encoder`` and the decoder position tables and implement ``forward``.

    Class attribute ``needs_tube_mask``: the encoder mask must hide the same spatial positions in every
    temporal slot (True for the coded MAE, whose coded image has one slot); mask generators read it.
    """

    needs_tube_mask = False

    def __init__(self, img_size: int | tuple[int, int], patch_size: int, tubelet_size: int, num_frames: int,
                 in_chans: int, encoder_embed_dim: int, decoder_embed_dim: int, decoder_depth: int,
                 decoder_num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path_rate: float,
                 init_values: float | None, attn_impl: str, norm_mean: float | Sequence[float] | None,
                 norm_std: float | Sequence[float] | None) -> None:
        super().__init__()
        if (norm_mean is None) != (norm_std is None):
            raise ValueError("give both norm_mean and norm_std, or neither")
        self.img_size, self.patch_size, self.tubelet_size = img_size, patch_size, tubelet_size
        self.num_frames, self.in_chans = num_frames, in_chans
        self.grid = token_grid(num_frames, img_size, tubelet_size, patch_size)
        self.num_tokens = self.grid[0] * self.grid[1] * self.grid[2]
        self.patch_dim = tubelet_size * patch_size * patch_size * in_chans
        mean, std = _stats(norm_mean, in_chans, "norm_mean"), _stats(norm_std, in_chans, "norm_std")
        self.register_buffer("norm_mean", mean, persistent=False)
        self.register_buffer("norm_std", std, persistent=False)
        self.encoder_to_decoder = nn.Linear(encoder_embed_dim, decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder = MAEDecoder(decoder_embed_dim, decoder_depth, decoder_num_heads, self.patch_dim, mlp_ratio,
                                  qkv_bias, drop_path_rate, init_values, attn_impl)

    def _init_decoder_side(self) -> None:
        # the encoder initialised itself (xavier); the sensor keeps its own initialisation
        for module in (self.encoder_to_decoder, self.decoder):
            module.apply(partial(init_weights, mode="xavier"))
        trunc_normal_(self.mask_token, std=0.02)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - norm_mean) / norm_std`` per channel (identity when built with ``norm_mean=None``)."""
        if self.norm_mean is None:
            return x
        return (x - self.norm_mean.to(x.dtype)) / self.norm_std.to(x.dtype)

    def _check_video(self, video: torch.Tensor) -> None:
        h, w = (self.img_size, self.img_size) if isinstance(self.img_size, int) else tuple(self.img_size)
        expected = (self.in_chans, self.num_frames, h, w)
        if video.dim() != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects video (B, C, T, H, W) = "
                             f"(B, {', '.join(map(str, expected))}), got {tuple(video.shape)}")

    def _masks(self, video: torch.Tensor, encoder_mask: torch.Tensor,
               decoder_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder hidden mask, query mask), both bool ``(B, N)``."""
        b = video.shape[0]
        hidden = as_token_mask(encoder_mask, b, self.num_tokens, "encoder_mask")
        if decoder_mask is None:
            return hidden, hidden
        return hidden, ~as_token_mask(decoder_mask, b, self.num_tokens, "decoder_mask")

    def _decode(self, x_vis: torch.Tensor, pos_vis: torch.Tensor, pos_query: torch.Tensor) -> torch.Tensor:
        """Decoder input ``[x_vis + pos_vis] ++ [mask_token + pos_query]`` -> ``(B, N_q, P)``."""
        x_vis = self.encoder_to_decoder(x_vis)
        dtype = x_vis.dtype
        queries = self.mask_token.to(dtype) + pos_query.to(dtype)
        x = torch.cat([x_vis + pos_vis.to(dtype), queries], dim=1)
        return self.decoder(x, queries.shape[1])

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Full parameter names to exclude from weight decay: learned position tables, ``mask_token``,
        and every parameter of the sensor (the pattern logits)."""
        names = {"mask_token"} | {f"encoder.{n}" for n in self.encoder.no_weight_decay()}
        if isinstance(getattr(self, "decoder_pos_embed", None), nn.Parameter):
            names.add("decoder_pos_embed")
        if self.sensor is not None:
            names |= {f"sensor.{n}" for n, _ in self.sensor.named_parameters()}
        return names

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing in the encoder and decoder blocks."""
        self.encoder.set_grad_checkpointing(enable)
        self.decoder.grad_checkpointing = enable


class PretrainVideoMAE(_MaskedVideoAutoencoder):
    """VideoMAE / VideoMAEv2 pretraining model on the full clip (tubelet tokens of the video).

    Encoder: :class:`~snappix.models.vit.VideoViTEncoder` on the visible tokens (fixed sin-cos table by
    default). ``encoder_to_decoder``: Linear, no bias. Decoder input: visible tokens and ``mask_token``
    at the query positions, each plus the fixed sin-cos decoder table ``pos_embed`` ``(1, N, D_dec)``;
    ``decoder_depth`` blocks, LayerNorm, head ``Linear(D_dec -> tubelet * p * p * C)`` on the queries.
    Init: Linear xavier-uniform / bias 0, LayerNorm 1 / 0, ``mask_token`` trunc-normal 0.02.

    Args:
        img_size, patch_size, tubelet_size, num_frames, in_chans: clip geometry (default 16 x 224 x 224,
            patch 16, tubelet 2, grey).
        encoder_embed_dim, encoder_depth, encoder_num_heads: encoder ViT.
        decoder_embed_dim, decoder_depth, decoder_num_heads: decoder.
        mlp_ratio, qkv_bias, drop_path_rate, init_values, use_learnable_pos_emb, attn_impl: see
            :class:`~snappix.models.vit.VideoViTEncoder` (``drop_path_rate`` also used by the decoder).
        norm_mean, norm_std: input normalisation per channel (float or C floats) applied inside the model;
            default SnapPix's linear-grey K710+SSV2 statistics 0.2277 / 0.2425. Pass None for both when the
            data pipeline already normalised the clip, or ImageNet statistics for RGB.

    ``forward``: see the module docstring. ``sensor`` is None (ordinary video).

    Raises:
        ValueError: (construction) inconsistent sizes; (forward) a clip of the wrong shape, bad masks.
        TypeError: non-bool masks.
    """

    def __init__(self, img_size: int | tuple[int, int] = 224, patch_size: int = 16, tubelet_size: int = 2,
                 num_frames: int = 16, in_chans: int = 1, encoder_embed_dim: int = 768, encoder_depth: int = 12,
                 encoder_num_heads: int = 12, decoder_embed_dim: int = 384, decoder_depth: int = 4,
                 decoder_num_heads: int = 6, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0,
                 init_values: float | None = None, use_learnable_pos_emb: bool = False, attn_impl: str = "sdpa",
                 norm_mean: float | Sequence[float] | None = K710_SSV2_MEAN,
                 norm_std: float | Sequence[float] | None = K710_SSV2_STD) -> None:
        super().__init__(img_size, patch_size, tubelet_size, num_frames, in_chans, encoder_embed_dim,
                         decoder_embed_dim, decoder_depth, decoder_num_heads, mlp_ratio, qkv_bias, drop_path_rate,
                         init_values, attn_impl, norm_mean, norm_std)
        self.sensor = None
        self.encoder = VideoViTEncoder(img_size, patch_size, tubelet_size, num_frames, in_chans, encoder_embed_dim,
                                       encoder_depth, encoder_num_heads, mlp_ratio, qkv_bias, drop_path_rate,
                                       init_values, use_learnable_pos_emb, attn_impl)
        self.register_buffer("pos_embed", sincos_table(self.num_tokens, decoder_embed_dim), persistent=False)
        self._init_decoder_side()

    def forward(self, video: torch.Tensor, encoder_mask: torch.Tensor,
                decoder_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """See the module docstring for the contract."""
        self._check_video(video)
        hidden, query = self._masks(video, encoder_mask, decoder_mask)
        x_vis = self.encoder.forward_features(self.normalize(video), hidden)
        pos_vis = select_tokens(self.pos_embed, ~hidden, "encoder_mask (visible tokens)")
        pos_query = select_tokens(self.pos_embed, query, "query set (decoder_mask)")
        return {"pred": self._decode(x_vis, pos_vis, pos_query), "query_mask": query}


class PretrainCodedMAE(_MaskedVideoAutoencoder):
    """SnapPix coded-image -> video masked autoencoder (DAC'25 §3.2, ``CodedPretrainVisionTransformer``).

    1. ``sensor``: clip ``(B, C, T, H, W)`` in [0, 1] -> coded image ``(B, C, 1, H, W)``; normalised with
       ``(Y - norm_mean) / norm_std`` (default 0.2277 / 0.2425).
    2. Encoder: :class:`~snappix.models.vit.VideoViTEncoder` with ``num_frames = tubelet = 1``, i.e.
       ``H/p * W/p`` coded tokens (196 at 112 px, p = 8) plus a fixed sin-cos table; it keeps the tokens
       visible in the *first temporal slice* of the tube encoder mask; pre-LN blocks; LayerNorm.
    3. ``encoder_to_decoder``: Linear, no bias.
    4. Decoder input: ``[visible tokens + fixed sin-cos spatial table pos_embed (1, H'W', D_dec)]`` ++
       ``[mask_token + learned decoder_pos_embed (1, T'H'W', D_dec) at the query positions]``.
    5. Decoder blocks -> LayerNorm -> head ``Linear(D_dec -> tubelet * p * p * C)`` (128 for SnapPix) on the
       queries. The targets are tubelets of the original video (``T' = T / tubelet`` = 8 slots).

    Init: Linear xavier-uniform / bias 0, LayerNorm 1 / 0, ``mask_token`` and ``decoder_pos_embed``
    trunc-normal 0.02; the sensor keeps its own initialisation (pattern file or seeded random).

    Args:
        img_size, patch_size, tubelet_size, num_frames, in_chans: clip geometry (SnapPix: 112, 8, 2, 16, 1).
            ``tubelet_size`` is the *target* tubelet; the coded image is always embedded with tubelet 1.
        encoder_* / decoder_* / mlp_ratio / qkv_bias / drop_path_rate / init_values / attn_impl: as
            :class:`PretrainVideoMAE`. ``use_learnable_pos_emb`` switches the encoder table to a learned one.
        sensor: a sensor module mapping ``(B, C, T, H, W) -> (B, C, 1, H, W)``; if None one is built with
            :func:`snappix.sensor.build_sensor` from ``coded_type`` (default ``"decor_fix"``, SnapPix's
            headline frozen pattern), ``pattern_path``, ``pattern_dir``, ``tile_size`` (default
            ``patch_size``: the CE tile is the ViT patch) and ``sensor_seed``.
        norm_mean, norm_std: normalisation of the coded image (None for both disables it).

    Attributes:
        sensor: the sensor module (its parameters are in ``no_weight_decay()``).
        needs_tube_mask: True (class attribute; see :meth:`spatial_mask`).

    Raises:
        ValueError: an identity sensor (``coded_type="none"``: use :class:`PretrainVideoMAE`), bad sizes;
            in forward also a clip of the wrong shape, masks of the wrong size, or an encoder mask that is
            not a tube mask (it must hide the same spatial positions in every temporal slot, since the
            coded image has a single slot).
        FileNotFoundError: from :func:`~snappix.sensor.build_sensor` for a pattern folder without the type's
            default file.
        TypeError: non-bool masks.
    """

    needs_tube_mask = True

    def __init__(self, img_size: int | tuple[int, int] = 112, patch_size: int = 8, tubelet_size: int = 2,
                 num_frames: int = 16, in_chans: int = 1, encoder_embed_dim: int = 384, encoder_depth: int = 12,
                 encoder_num_heads: int = 6, decoder_embed_dim: int = 192, decoder_depth: int = 4,
                 decoder_num_heads: int = 3, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0,
                 init_values: float | None = None, use_learnable_pos_emb: bool = False, attn_impl: str = "sdpa",
                 sensor: nn.Module | None = None, coded_type: str = "decor_fix", pattern_path: str | None = None,
                 pattern_dir: str | None = None, tile_size: int | None = None, sensor_seed: int = 0,
                 norm_mean: float | Sequence[float] | None = K710_SSV2_MEAN,
                 norm_std: float | Sequence[float] | None = K710_SSV2_STD) -> None:
        super().__init__(img_size, patch_size, tubelet_size, num_frames, in_chans, encoder_embed_dim,
                         decoder_embed_dim, decoder_depth, decoder_num_heads, mlp_ratio, qkv_bias, drop_path_rate,
                         init_values, attn_impl, norm_mean, norm_std)
        self.encoder = VideoViTEncoder(img_size, patch_size, 1, 1, in_chans, encoder_embed_dim, encoder_depth,
                                       encoder_num_heads, mlp_ratio, qkv_bias, drop_path_rate, init_values,
                                       use_learnable_pos_emb, attn_impl)
        self.num_spatial = self.grid[1] * self.grid[2]
        self.register_buffer("pos_embed", sincos_table(self.num_spatial, decoder_embed_dim), persistent=False)
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, decoder_embed_dim))
        self._init_decoder_side()
        trunc_normal_(self.decoder_pos_embed, std=0.02)
        if sensor is None:
            sensor = build_sensor(coded_type, num_frames=num_frames, tile_size=tile_size or patch_size,
                                  input_size=img_size, pattern_path=pattern_path, pattern_dir=pattern_dir,
                                  seed=sensor_seed)
        if isinstance(sensor, IdentitySensor):
            raise ValueError("PretrainCodedMAE needs a coded-exposure sensor; for ordinary video "
                             "(coded_type='none') use PretrainVideoMAE")
        self.sensor = sensor

    def spatial_mask(self, encoder_mask: torch.Tensor) -> torch.Tensor:
        """Encoder mask over the coded image: the first temporal slice of the tube mask.

        Args:
            encoder_mask: bool ``(B, N)`` over the video grid ``(T', H', W')``.

        Returns:
            bool ``(B, H' * W')``, True = hidden.

        Raises:
            ValueError: the mask differs between temporal slots (not a tube mask).
        """
        tube = encoder_mask.reshape(encoder_mask.shape[0], self.grid[0], self.num_spatial)
        if bool((tube != tube[:, :1]).any()):
            raise ValueError("PretrainCodedMAE needs a tube encoder mask (the same spatial positions hidden in "
                             "every temporal slot): the coded image has one slot; use mask_type 'tube' or 'none'")
        return tube[:, 0]

    def forward(self, video: torch.Tensor, encoder_mask: torch.Tensor,
                decoder_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """See the module docstring for the contract; ``video`` is the raw clip, coded inside."""
        self._check_video(video)
        hidden, query = self._masks(video, encoder_mask, decoder_mask)
        spatial = self.spatial_mask(hidden)
        coded = self.sensor(video)
        if coded.dim() != 5 or coded.shape[2] != 1:
            raise ValueError(f"the sensor must return (B, C, 1, H, W), got {tuple(coded.shape)}")
        x_vis = self.encoder.forward_features(self.normalize(coded), spatial)
        pos_vis = select_tokens(self.pos_embed, ~spatial, "encoder_mask (visible tokens)")
        pos_query = select_tokens(self.decoder_pos_embed, query, "query set (decoder_mask)")
        return {"pred": self._decode(x_vis, pos_vis, pos_query), "query_mask": query}
