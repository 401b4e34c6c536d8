"""timm registry entries for the pretraining models (``timm.create_model(name, **kwargs)``).

Names never collide with timm's own (``pretrain_`` prefix), so registering prints no "Overwriting"
warning. Every keyword of the model class can be overridden, e.g.::

    timm.create_model("pretrain_coded_videomae_small_patch8_112", coded_type="decor_fix",
                      pattern_dir="/data/snappix_patterns", decoder_depth=4, drop_path_rate=0.0)

==============================================  ==============  ===============  =========================
name                                            encoder D/L/h   decoder D/h      geometry
==============================================  ==============  ===============  =========================
``pretrain_videomae_super_tiny_patch8_112``     128 / 8 / 2     128 / 2          16 x 112^2, p 8, tubelet 2
``pretrain_videomae_small_patch8_112``          384 / 12 / 6    192 / 3          16 x 112^2, p 8, tubelet 2
``pretrain_videomae_base_patch8_112``           768 / 12 / 12   384 / 6          16 x 112^2, p 8, tubelet 2
``pretrain_videomae_{size}_patch16_224``        as above        as above         16 x 224^2, p 16, tubelet 2
``pretrain_coded_videomae_super_tiny_patch8_112``  128 / 8 / 2  128 / 3 (head 42) coded 112^2 -> 16 x 112^2
``pretrain_coded_videomae_small_patch8_112``    384 / 12 / 6    192 / 3          coded 112^2 -> 16 x 112^2
``pretrain_coded_videomae_base_patch8_112``     768 / 12 / 12   384 / 6          coded 112^2 -> 16 x 112^2
==============================================  ==============  ===============  =========================

All: grey input (``in_chans=1``), MLP ratio 4, q/v bias, LayerNorm eps 1e-6, ``decoder_depth=4``,
fixed sin-cos encoder tables. The coded models default to ``coded_type="decor_fix"`` (needs
``pattern_path`` / ``pattern_dir`` / ``$SNAPPIX_PATTERN_DIR``). SnapPix registered its coded models as
``coded_pretrain_videomae_*``; the super-tiny coded decoder's 3 heads of width 42 (attention width 126
inside a 128-wide decoder) are reproduced as in SnapPix.
"""

from __future__ import annotations

from timm.models import register_model

from snappix.models.mae import PretrainCodedMAE, PretrainVideoMAE

__all__: list[str] = []  # filled by timm's register_model

_SIZES = {
    "super_tiny": dict(encoder_embed_dim=128, encoder_depth=8, encoder_num_heads=2),
    "small": dict(encoder_embed_dim=384, encoder_depth=12, encoder_num_heads=6),
    "base": dict(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12),
}
_DECODERS = {  # (video MAE, coded MAE)
    "super_tiny": (dict(decoder_embed_dim=128, decoder_num_heads=2), dict(decoder_embed_dim=128, decoder_num_heads=3)),
    "small": (dict(decoder_embed_dim=192, decoder_num_heads=3),) * 2,
    "base": (dict(decoder_embed_dim=384, decoder_num_heads=6),) * 2,
}
_GEOMETRY = {
    "patch8_112": dict(img_size=112, patch_size=8, tubelet_size=2, num_frames=16),
    "patch16_224": dict(img_size=224, patch_size=16, tubelet_size=2, num_frames=16),
}
_TIMM_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _create(cls, size: str, geometry: str, coded: bool, pretrained: bool, kwargs: dict):
    if pretrained:
        raise ValueError("no pretrained weights are registered for snappix models; load a checkpoint with the "
                         "engine's checkpoint tools instead")
    for key in _TIMM_KWARGS:
        kwargs.pop(key, None)
    args = dict(in_chans=1, mlp_ratio=4.0, qkv_bias=True, decoder_depth=4, **_GEOMETRY[geometry], **_SIZES[size],
                **_DECODERS[size][int(coded)])
    args.update(kwargs)
    return cls(**args)


@register_model
def pretrain_videomae_super_tiny_patch8_112(pretrained: bool = False, **kwargs) -> PretrainVideoMAE:
    """VideoMAE super-tiny on 16 x 112 x 112 grey clips (SnapPix's video-ViT baseline, spec §3.4)."""
    return _create(PretrainVideoMAE, "super_tiny", "patch8_112", False, pretrained, kwargs)


@register_model
def pretrain_videomae_small_patch8_112(pretrained: bool = False, **kwargs) -> PretrainVideoMAE:
    """VideoMAE ViT-S on 16 x 112 x 112 grey clips, patch 8."""
    return _create(PretrainVideoMAE, "small", "patch8_112", False, pretrained, kwargs)


@register_model
def pretrain_videomae_base_patch8_112(pretrained: bool = False, **kwargs) -> PretrainVideoMAE:
    """VideoMAE ViT-B on 16 x 112 x 112 grey clips, patch 8."""
    return _create(PretrainVideoMAE, "base", "patch8_112", False, pretrained, kwargs)


@register_model
def pretrain_videomae_super_tiny_patch16_224(pretrained: bool = False, **kwargs) -> PretrainVideoMAE:
    """VideoMAE super-tiny on 16 x 224 x 224 clips, patch 16 (grey by default; ``in_chans=3`` for RGB)."""
    return _create(PretrainVideoMAE, "super_tiny", "patch16_224", False, pretrained, kwargs)


@register_model
def pretrain_videomae_small_patch16_224(pretrained: bool = False, **kwargs) -> PretrainVideoMAE:
    """VideoMAE ViT-S on 16 x 224 x 224 clips, patch 16 (grey by default; ``in_chans=3`` for RGB)."""
    return _create(PretrainVideoMAE, "small", "patch16_224", False, pretrained, kwargs)


@register_model
def pretrain_videomae_base_patch16_224(pretrained: bool = False, **kwargs) -> PretrainVideoMAE:
    """VideoMAE ViT-B on 16 x 224 x 224 clips, patch 16 (grey by default; ``in_chans=3`` for RGB)."""
    return _create(PretrainVideoMAE, "base", "patch16_224", False, pretrained, kwargs)


@register_model
def pretrain_coded_videomae_super_tiny_patch8_112(pretrained: bool = False, **kwargs) -> PretrainCodedMAE:
    """SnapPix coded MAE, super-tiny (reconstruction study, spec §4)."""
    return _create(PretrainCodedMAE, "super_tiny", "patch8_112", True, pretrained, kwargs)


@register_model
def pretrain_coded_videomae_small_patch8_112(pretrained: bool = False, **kwargs) -> PretrainCodedMAE:
    """SnapPix coded MAE, ViT-S encoder (spec §3.2)."""
    return _create(PretrainCodedMAE, "small", "patch8_112", True, pretrained, kwargs)


@register_model
def pretrain_coded_videomae_base_patch8_112(pretrained: bool = False, **kwargs) -> PretrainCodedMAE:
    """SnapPix coded MAE, ViT-B encoder (spec §3.2)."""
    return _create(PretrainCodedMAE, "base", "patch8_112", True, pretrained, kwargs)
