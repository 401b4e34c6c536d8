"""timm registry entries for the pretraining models (``timm.create_model(name, **kwargs)``); the
finetuning classifiers (``coded_vit_*``, ``video_vit_*``, ``c3d``, ``svc2d``) are listed further down.

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
fixed sin-cos encoder tables. The coded models default to ``coded_type="decor_fix"`` (its pattern from
``pattern_path`` / ``pattern_dir`` / ``$SNAPPIX_PATTERN_DIR``, else the ``pattern_4`` shipped with the
package). SnapPix registered its coded models as ``coded_pretrain_videomae_*``; the super-tiny coded
decoder's 3 heads of width 42 (attention width 126 inside a 128-wide decoder) are reproduced as in SnapPix.
"""

from __future__ import annotations

import difflib
import logging

import timm
from timm.models import register_model

from snappix.errors import UnknownModelError

from snappix.models.classifiers import CodedViTClassifier, VideoViTClassifier
from snappix.models.cnn3d import C3D
from snappix.models.mae import PretrainCodedMAE, PretrainVideoMAE
from snappix.models.svc2d import SVC2D

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
    "patch16_112": dict(img_size=112, patch_size=16, tubelet_size=4, num_frames=16),
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
    """VideoMAE super-tiny on 16 x 112 x 112 grey clips (SnapPix's video-ViT baseline, docs/methods/snappix.md §5)."""
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
    """SnapPix coded MAE, super-tiny (reconstruction study, docs/methods/snappix.md §4)."""
    return _create(PretrainCodedMAE, "super_tiny", "patch8_112", True, pretrained, kwargs)


@register_model
def pretrain_coded_videomae_small_patch8_112(pretrained: bool = False, **kwargs) -> PretrainCodedMAE:
    """SnapPix coded MAE, ViT-S encoder (docs/methods/snappix.md §3)."""
    return _create(PretrainCodedMAE, "small", "patch8_112", True, pretrained, kwargs)


@register_model
def pretrain_coded_videomae_base_patch8_112(pretrained: bool = False, **kwargs) -> PretrainCodedMAE:
    """SnapPix coded MAE, ViT-B encoder (docs/methods/snappix.md §3)."""
    return _create(PretrainCodedMAE, "base", "patch8_112", True, pretrained, kwargs)


# ================================================================================================== classifiers
# Finetuning / evaluation models (SnapPix DAC'25 §5). SnapPix registered its video ViTs as
# ``vit_{size}_patch{8_112,16_224}``; ``vit_small_patch16_224`` and ``vit_base_patch16_224`` are timm's own
# ImageNet models, so SnapPix's re-registration printed "Overwriting ... in registry" and then broke those
# names (docs/methods/snappix.md, defect 13). Ours are ``video_vit_*``; :data:`SNAPPIX_MODEL_ALIASES` maps
# SnapPix's ``--model`` values to them for the entry points (:func:`resolve_model_name`).
#
# ===========================================  ==============  ==============================================
# name                                         D / L / heads   input
# ===========================================  ==============  ==============================================
# ``coded_vit_super_tiny_patch8_112``          128 / 8 / 2     16 x 112^2 clip -> sensor -> 196 coded tokens
# ``coded_vit_small_patch8_112``               384 / 12 / 6    (21.47 M params at 400 classes, as SnapPix)
# ``coded_vit_base_patch8_112``                768 / 12 / 12   (85.41 M)
# ``video_vit_{size}_patch8_112``              as above        16 x 112^2 grey clip, tubelet 2: 1568 tokens
#                                                              (super-tiny: 1.65 M, SnapPix's video-ViT baseline)
# ``video_vit_{size}_patch16_224``             as above        16 x 224^2 clip, tubelet 2: 1568 tokens
# ``video_vit_super_tiny_patch16_112``         128 / 8 / 2     16 x 112^2 grey clip, p 16, tubelet 4: 196 tokens
# ``c3d``                                      --              16 x 112^2 grey clip (62.85 M; SnapPix 62.86 M)
# ``svc2d``                                    --              16 x 112^2 clip -> TPAMI "pami" sensor -> 112^2
#                                                              coded image (44.46 M; SnapPix 44.47 M)
# ===========================================  ==============  ==============================================
#
# Parameter counts include the sensor's pattern logits (1024), as SnapPix's log does; the CNNs lack
# SnapPix's unused ``bn6`` (8,192 parameters). Every keyword of the model class can be overridden.

_log = logging.getLogger(__name__)

_VIT_SIZES = {
    "super_tiny": dict(embed_dim=128, depth=8, num_heads=2),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
}

#: SnapPix ``--model`` names -> snappix registry names (only the ones that differ).
SNAPPIX_MODEL_ALIASES = {
    f"vit_{size}_{geometry}": f"video_vit_{size}_{geometry}"
    for size in _VIT_SIZES for geometry in ("patch8_112", "patch16_224")
}


def resolve_model_name(name: str) -> str:
    """``--model`` value -> registry name: SnapPix's ``vit_*`` video-ViT names map to ``video_vit_*``
    (:data:`SNAPPIX_MODEL_ALIASES`); everything else is returned unchanged."""
    return SNAPPIX_MODEL_ALIASES.get(name, name)


def require_model(name: str | None) -> str:
    """:func:`resolve_model_name` of a ``--model`` value that must be registered (ours or timm's).

    Raises:
        UnknownModelError: ``name`` is not registered; the message lists up to 5 close valid names
            (``difflib``), the project's own models first.
    """
    resolved = resolve_model_name(name or "")
    if name and timm.is_model(resolved):
        return resolved
    ours = sorted(set(__all__) | set(SNAPPIX_MODEL_ALIASES))
    close = difflib.get_close_matches(name or "", ours, n=5, cutoff=0.5)
    close += [m for m in difflib.get_close_matches(name or "", timm.list_models(), n=5, cutoff=0.7) if m not in close]
    hint = f"close names: {', '.join(close[:5])}" if close else f"snappix models: {', '.join(ours[:8])}, ..."
    raise UnknownModelError(f"--model {name!r} is not a registered model; {hint} (README: 'Finetuning and "
                            "precise evaluation' lists them)")


#: sensor options, meaningless for the models that see ordinary video (video_vit_*, c3d)
_SENSOR_KWARGS = ("coded_type", "pattern_path", "pattern_dir", "tile_size", "sensor_seed", "sensor_noise")
#: ViT options SnapPix's finetuning script passes to every model, meaningless for the CNNs (c3d, svc2d)
_VIT_KWARGS = ("drop_rate", "attn_drop_rate", "drop_path_rate", "head_drop_rate", "init_scale", "init_values",
               "use_learnable_pos_emb", "tubelet_size", "patch_size", "attn_impl")


def _ignore(name: str, kwargs: dict, keys: tuple[str, ...], why: str) -> None:
    """Remove ``keys`` from ``kwargs``; log the ones that were given (shared entry points pass them to every model)."""
    given = {k: kwargs.pop(k) for k in keys if k in kwargs}
    if given:
        _log.info("%s: ignoring %s (%s)", name, ", ".join(f"{k}={v!r}" for k, v in given.items()), why)


def _create_classifier(cls, pretrained: bool, defaults: dict, kwargs: dict, name: str = ""):
    if pretrained:
        raise ValueError("no pretrained weights are registered for snappix models; load a checkpoint with "
                         "snappix.methods.pretrained.load_pretrained instead")
    for key in _TIMM_KWARGS:
        kwargs.pop(key, None)
    if cls in (VideoViTClassifier, C3D):
        _ignore(name or cls.__name__, kwargs, _SENSOR_KWARGS, "the model sees ordinary video, it has no sensor")
    if cls in (C3D, SVC2D):
        _ignore(name or cls.__name__, kwargs, _VIT_KWARGS, "ViT options; the CNN's dropout is `dropout`")
    args = dict(defaults)
    args.update(kwargs)
    return cls(**args)


def _coded_vit(size: str, pretrained: bool, kwargs: dict) -> CodedViTClassifier:
    defaults = dict(img_size=112, patch_size=8, num_frames=16, in_chans=1, mlp_ratio=4.0, qkv_bias=True,
                    **_VIT_SIZES[size])
    return _create_classifier(CodedViTClassifier, pretrained, defaults, kwargs)


def _video_vit(size: str, geometry: str, pretrained: bool, kwargs: dict) -> VideoViTClassifier:
    defaults = dict(in_chans=1, mlp_ratio=4.0, qkv_bias=True, **_GEOMETRY[geometry], **_VIT_SIZES[size])
    return _create_classifier(VideoViTClassifier, pretrained, defaults, kwargs, f"video_vit_{size}_{geometry}")


@register_model
def coded_vit_super_tiny_patch8_112(pretrained: bool = False, **kwargs) -> CodedViTClassifier:
    """SnapPix coded-image ViT, super-tiny (128 / 8 / 2); sensor ``coded_type`` default ``decor_fix``."""
    return _coded_vit("super_tiny", pretrained, kwargs)


@register_model
def coded_vit_small_patch8_112(pretrained: bool = False, **kwargs) -> CodedViTClassifier:
    """SnapPix coded-image ViT-S (384 / 12 / 6), docs/methods/snappix.md §5; 21.47 M parameters at 400 classes."""
    return _coded_vit("small", pretrained, kwargs)


@register_model
def coded_vit_base_patch8_112(pretrained: bool = False, **kwargs) -> CodedViTClassifier:
    """SnapPix coded-image ViT-B (768 / 12 / 12), docs/methods/snappix.md §5; 85.41 M parameters at 400 classes."""
    return _coded_vit("base", pretrained, kwargs)


@register_model
def video_vit_super_tiny_patch8_112(pretrained: bool = False, **kwargs) -> VideoViTClassifier:
    """Video ViT super-tiny on 16 x 112^2 grey clips, tubelet 2 (SnapPix ``vit_super_tiny_patch8_112``; 1.65 M)."""
    return _video_vit("super_tiny", "patch8_112", pretrained, kwargs)


@register_model
def video_vit_small_patch8_112(pretrained: bool = False, **kwargs) -> VideoViTClassifier:
    """Video ViT-S on 16 x 112^2 grey clips, patch 8, tubelet 2."""
    return _video_vit("small", "patch8_112", pretrained, kwargs)


@register_model
def video_vit_base_patch8_112(pretrained: bool = False, **kwargs) -> VideoViTClassifier:
    """Video ViT-B on 16 x 112^2 grey clips, patch 8, tubelet 2."""
    return _video_vit("base", "patch8_112", pretrained, kwargs)


@register_model
def video_vit_super_tiny_patch16_112(pretrained: bool = False, **kwargs) -> VideoViTClassifier:
    """Video ViT super-tiny on 16 x 112^2 grey clips, patch 16, tubelet 4: 4 x 7 x 7 = 196 tokens, as many
    as the coded ViT's (the quickstart's full-video baseline at a matched token budget; patch 8 /
    tubelet 2 would be 1568 tokens, too slow for a CPU quickstart)."""
    return _video_vit("super_tiny", "patch16_112", pretrained, kwargs)


@register_model
def video_vit_super_tiny_patch16_224(pretrained: bool = False, **kwargs) -> VideoViTClassifier:
    """Video ViT super-tiny on 16 x 224^2 clips, patch 16, tubelet 2 (grey; ``in_chans=3`` for RGB)."""
    return _video_vit("super_tiny", "patch16_224", pretrained, kwargs)


@register_model
def video_vit_small_patch16_224(pretrained: bool = False, **kwargs) -> VideoViTClassifier:
    """Video ViT-S on 16 x 224^2 clips, patch 16, tubelet 2 (VideoMAE ViT-S;
    not timm's image ``vit_small_patch16_224``)."""
    return _video_vit("small", "patch16_224", pretrained, kwargs)


@register_model
def video_vit_base_patch16_224(pretrained: bool = False, **kwargs) -> VideoViTClassifier:
    """Video ViT-B on 16 x 224^2 clips, patch 16, tubelet 2 (VideoMAE ViT-B;
    not timm's image ``vit_base_patch16_224``)."""
    return _video_vit("base", "patch16_224", pretrained, kwargs)


@register_model
def c3d(pretrained: bool = False, **kwargs) -> C3D:
    """C3D on 16 x 112^2 grey clips (SnapPix baseline, docs/methods/snappix.md §5); returns logits."""
    return _create_classifier(C3D, pretrained, dict(num_frames=16, img_size=112, in_chans=1), kwargs, "c3d")


@register_model
def svc2d(pretrained: bool = False, **kwargs) -> SVC2D:
    """SVC2D (TPAMI'23 ``C2DPt``) on a ``pami`` coded image of a 16 x 112^2 clip (SnapPix baseline); returns logits.

    See docs/methods/snappix.md §5.
    """
    return _create_classifier(SVC2D, pretrained, dict(num_frames=16, img_size=112, in_chans=1), kwargs, "svc2d")


# ================================================================================================== k-center ViT
# K-centered patch sampling (ECCV'22, docs/methods/kcenter.md): ``kcenter_vit_{size}_{geometry}``; the budget
# defaults to a quarter of the patches (784 of 16 x 196 at 112 px, patch 8), one hybrid frame.


def _kcenter_vit(size: str, geometry: str, pretrained: bool, kwargs: dict):
    from snappix.models.kcenter_vit import KCenterViTClassifier

    geo = {k: v for k, v in _GEOMETRY[geometry].items() if k != "tubelet_size"}
    _ignore(f"kcenter_vit_{size}_{geometry}", kwargs, _SENSOR_KWARGS + ("tubelet_size", "use_learnable_pos_emb"),
            "the k-center ViT sees ordinary video frames, with learned space / time embeddings")
    defaults = dict(in_chans=1, mlp_ratio=4.0, qkv_bias=True, **geo, **_VIT_SIZES[size])
    return _create_classifier(KCenterViTClassifier, pretrained, defaults, kwargs, f"kcenter_vit_{size}_{geometry}")


@register_model
def kcenter_vit_super_tiny_patch8_112(pretrained: bool = False, **kwargs):
    """K-center ViT super-tiny (128 / 8 / 2) on 16 x 112^2 grey clips, patch 8: 784 selected patches + CLS."""
    return _kcenter_vit("super_tiny", "patch8_112", pretrained, kwargs)


@register_model
def kcenter_vit_small_patch8_112(pretrained: bool = False, **kwargs):
    """K-center ViT-S (384 / 12 / 6) on 16 x 112^2 grey clips, patch 8."""
    return _kcenter_vit("small", "patch8_112", pretrained, kwargs)


@register_model
def kcenter_vit_small_patch16_224(pretrained: bool = False, **kwargs):
    """K-center ViT-S on 16 x 224^2 clips, patch 16 (grey; ``in_chans=3`` for RGB)."""
    return _kcenter_vit("small", "patch16_224", pretrained, kwargs)


@register_model
def kcenter_vit_base_patch16_224(pretrained: bool = False, **kwargs):
    """K-center ViT-B (768 / 12 / 12) on 16 x 224^2 clips, patch 16 (the paper's backbone size)."""
    return _kcenter_vit("base", "patch16_224", pretrained, kwargs)
