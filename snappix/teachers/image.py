"""A frozen timm image ViT teacher applied to every frame (UMT / VideoMamba's CLIP teacher).

Unmasked Teacher (Li et al., ICCV 2023, https://arxiv.org/abs/2303.16058) and VideoMamba's masked
pretraining (Li et al. 2024, https://arxiv.org/abs/2403.06977) distil OpenAI's CLIP ViT-B/16 image tower,
run on each frame of the full clip: its last-block CLS attention picks the student's visible tokens and
its projected, L2-normalised tokens are the targets.

:func:`build_image_teacher` builds the architecture from a timm name **offline** (``pretrained=False``; no
download is ever attempted; ``img_size`` resamples the position table) and fills it from a local file in
the OpenAI / open_clip key layout (``visual.conv1.weight``, ``visual.transformer.resblocks.N...``,
``visual.proj``; with or without the ``visual.`` prefix; whole-CLIP files with text keys too) or in timm's
layout, through timm's own :func:`timm.models.vision_transformer.checkpoint_filter_fn` (key map, ``proj``
transposed into ``head``, position table resampled to the model's grid).
"""

from __future__ import annotations

import difflib
from typing import Any

import timm
import torch
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn
from torch import nn

from snappix.models.teacher_attention import vit_attention_and_tokens
from snappix.teachers.base import FrozenTeacher, TeacherLoadError
from snappix.teachers.loading import load_strict, read_weights, state_dict_of

__all__ = ["ImageTeacher", "build_image_teacher", "is_clip_projection", "to_timm_layout"]

#: OpenAI CLIP's RGB statistics (timm's OPENAI_CLIP_MEAN / STD), used when a model carries none
_FALLBACK_MEAN, _FALLBACK_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class ImageTeacher(FrozenTeacher):
    """A timm ``VisionTransformer`` with a class token, applied to each frame of a clip (``T' = T``).

    Per frame (grey frames repeated to 3 channels, then ``(x - mean) / std`` with the model's own
    ``pretrained_cfg`` statistics, CLIP's for CLIP names) one full forward gives the last block's
    CLS-to-patch attention (float32, averaged over heads) and the tokens after the final ``norm`` (CLIP's
    ``ln_post``; for models whose norm sits after pooling, ``fc_norm`` applied to every token), then
    ``head`` when ``projection`` (CLIP's ``proj``). Targets: row 0 = the per-frame CLS features averaged
    over the T frames, rows ``1..`` = all ``T * H'W'`` patch tokens, each row L2-normalised (in
    :meth:`FrozenTeacher.forward`). Unlike UMT's reference, the final norm is applied to the CLS token too.

    Args:
        vit: the network (its parameters are frozen here).
        img_size, num_frames, in_chans, chunk: see :class:`FrozenTeacher` (``chunk``: frames per forward).
        projection: apply ``vit.head`` (a Linear projection) to the tokens.

    Raises:
        TeacherLoadError: ``in_chans`` not 1 or 3.
    """

    def __init__(self, vit: VisionTransformer, *, img_size: int, num_frames: int, in_chans: int = 1,
                 projection: bool = True, chunk: int | None = None) -> None:
        if in_chans not in (1, 3):
            raise TeacherLoadError(f"an image teacher takes grey (in_chans=1) or RGB (3) clips, got in_chans={in_chans}")
        projection = projection and isinstance(vit.head, nn.Linear)
        dim = vit.head.out_features if projection else vit.num_features
        h, w = vit.patch_embed.grid_size
        super().__init__((num_frames, h, w), dim, img_size=img_size, num_frames=num_frames, in_chans=in_chans,
                         chunk=chunk)
        self.vit, self.projection = vit, projection
        self.num_prefix = int(getattr(vit, "num_prefix_tokens", 1))
        cfg = getattr(vit, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean") or _FALLBACK_MEAN, cfg.get("std") or _FALLBACK_STD
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.freeze()

    def _features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens after ``forward_features`` -> the target space (``fc_norm`` if any, ``head`` if projecting)."""
        tokens = self.vit.fc_norm(tokens)
        return self.vit.head(tokens) if self.projection else tokens

    def encode(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw clip ``(B, C, T, H, W)`` in [0, 1] -> attention ``(B, T, H'W')`` float32, mean CLS feature
        ``(B, D_t)``, patch features ``(B, T * H'W', D_t)`` (not yet normalised)."""
        b, c, t, h, w = video.shape
        frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        if c == 1:
            frames = frames.expand(-1, self.mean.shape[1], -1, -1)
        frames = (frames - self.mean.to(frames.dtype)) / self.std.to(frames.dtype)
        attention, cls, patches = [], [], []
        for part in frames.split(self.chunk or frames.shape[0]):
            attn, tokens = vit_attention_and_tokens(self.vit, part)
            feats = self._features(tokens)
            attention.append(attn)
            cls.append(feats[:, 0])
            patches.append(feats[:, self.num_prefix:])
        cls_mean = torch.cat(cls).float().reshape(b, t, -1).mean(dim=1)
        patch_rows = torch.cat(patches).reshape(b, t * patches[0].shape[1], -1)
        return torch.cat(attention).reshape(b, t, -1), cls_mean, patch_rows


def is_clip_projection(vit: nn.Module, name: str) -> bool:
    """Whether ``vit.head`` is a CLIP image projection (kept as part of the targets) rather than a classifier.

    True for a CLIP architecture (``"clip"`` in the name) whose pretrained tag is not a fine-tuned
    classifier (no ``ft`` part: ``openai``, ``laion2b``, ``metaclip_2pt5b`` yes; ``openai_ft_in1k`` no) and
    whose head is a Linear layer.
    """
    cfg = getattr(vit, "pretrained_cfg", None) or {}
    arch = str(cfg.get("architecture") or name.split(".")[0])
    tag = str(cfg.get("tag") or (name.split(".", 1)[1] if "." in name else ""))
    return "clip" in arch and "ft" not in tag.split("_") and isinstance(getattr(vit, "head", None), nn.Linear)


def to_timm_layout(state: dict[str, torch.Tensor], vit: VisionTransformer) -> dict[str, torch.Tensor]:
    """A state dict in the OpenAI / open_clip or timm layout -> ``vit``'s keys (timm's conversion).

    A visual tower saved without the ``visual.`` prefix (``class_embedding``, ``conv1.weight``, ...) gets it
    first, so that timm recognises the layout; text-tower keys of a whole-CLIP file are dropped by timm.
    """
    if "class_embedding" in state and "conv1.weight" in state:
        state = {f"visual.{k}": v for k, v in state.items()}
    return checkpoint_filter_fn(state, vit)


def _unknown_name(name: str) -> TeacherLoadError:
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; close timm names: {', '.join(close)}" if close else ""
    return TeacherLoadError(f"unknown teacher {name!r}: not a timm model name (nor 'snappix'){hint}")


def _create(name: str, img_size: int, model_kwargs: dict[str, Any]) -> VisionTransformer:
    try:
        vit = timm.create_model(name, pretrained=False, img_size=img_size, **model_kwargs)
    except Exception as e:  # noqa: BLE001 - a name timm knows but cannot build with these arguments
        raise TeacherLoadError(f"cannot build teacher {name!r} with timm (img_size={img_size}, "
                               f"{model_kwargs}): {type(e).__name__}: {e}") from e
    if not isinstance(vit, VisionTransformer):
        raise TeacherLoadError(f"teacher {name!r} is a {type(vit).__name__}, not a timm VisionTransformer; an image "
                               "teacher must be a timm ViT with a class token (for a snappix checkpoint use "
                               "name 'snappix')")
    if getattr(vit, "cls_token", None) is None:
        raise TeacherLoadError(f"teacher {name!r} has no class token; the mask score is the CLS attention, so an "
                               "image teacher must be a timm ViT with a class token")
    return vit


def build_image_teacher(name: str, path: str, *, img_size: int, num_frames: int, in_chans: int = 1,
                        chunk: int | None = None, projection: bool | None = None,
                        **model_kwargs: Any) -> ImageTeacher:
    """The frozen per-frame image teacher ``name`` with the weights of the local file ``path``.

    Args:
        name: a timm ViT name with a class token, with or without a pretrained tag, e.g.
            ``vit_base_patch16_clip_quickgelu_224.openai`` (OpenAI CLIP ViT-B/16 with QuickGELU, as OpenAI
            trained it; the plain ``vit_base_patch16_clip_224.openai`` uses GELU, which is wrong for OpenAI's
            weights). The tag sets timm's defaults (CLIP's 512-wide projection head, the mean / std).
        path: weights file (see :func:`~snappix.teachers.loading.read_weights`), open_clip / OpenAI or timm
            layout.
        img_size: frame side of the clips (the position table is resampled to it).
        num_frames, in_chans, chunk: see :class:`ImageTeacher`.
        projection: keep ``head`` as the targets' projection; None: :func:`is_clip_projection` decides.
            Otherwise the head is removed (``reset_classifier(0)``) and its keys in the file are ignored.
        model_kwargs: extra ``timm.create_model`` arguments (tests build tiny random teachers with
            ``depth=2, embed_dim=64, num_heads=2, patch_size=8, num_classes=16``).

    Raises:
        TeacherLoadError: unknown name, a model that is not a timm ViT with a class token, a missing /
            unreadable file, or a state dict that does not fit (missing / unexpected keys named).
    """
    if not timm.is_model(name):
        raise _unknown_name(name)
    weights = read_weights(path)  # a missing / unreadable file is reported before anything is built
    vit = _create(name, img_size, model_kwargs)
    keep_head = is_clip_projection(vit, name) if projection is None else projection
    if not keep_head or not isinstance(vit.head, nn.Linear):
        keep_head = False
        vit.reset_classifier(0)
    state = state_dict_of(weights, path)
    try:
        state = to_timm_layout(state, vit)
    except Exception as e:  # noqa: BLE001 - timm's converter fails on foreign layouts in many ways
        raise TeacherLoadError(f"teacher weights file {path!r} could not be converted to timm's {name!r} layout: "
                               f"{type(e).__name__}: {e}") from e
    if not keep_head:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    load_strict(vit, state, path, f"timm model {name!r}")
    return ImageTeacher(vit.eval(), img_size=img_size, num_frames=num_frames, in_chans=in_chans,
                        projection=keep_head, chunk=chunk)
