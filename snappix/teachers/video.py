"""A frozen snappix video ViT classifier as the teacher of masked distillation (``name="snappix"``).

The teacher of Unmasked Teacher (Li et al., ICCV 2023, https://arxiv.org/abs/2303.16058) and VideoMamba's
masked pretraining (Li et al. 2024, https://arxiv.org/abs/2403.06977) is an image CLIP with a class
token. This module lets a finetuned snappix classifier (``video_vit_*``, also ``coded_vit_*``) play that
role, applied per tubelet: a **video** teacher whose grid is the classifier's token grid. Without a CLS
token two choices are ours (documented in :class:`SnappixTeacher`): the attention score of a patch is
the attention it **receives** in the last block, averaged over all queries and heads; the clip-level
target is the pooled feature the classifier's head reads (mean pool + ``fc_norm``).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import nn

from snappix.models.classifiers import ViTClassifierBase
from snappix.models.factory import classifier_from_flags
from snappix.models.teacher_attention import forward_with_attention
from snappix.teachers.base import FrozenTeacher, TeacherLoadError
from snappix.teachers.loading import load_strict, read_weights, state_dict_of

__all__ = ["SnappixTeacher", "build_snappix_teacher"]


class SnappixTeacher(FrozenTeacher):
    """A snappix ViT classifier (:class:`~snappix.models.classifiers.ViTClassifierBase`) as a frozen teacher.

    One forward of the classifier on the raw clip (it normalises its input itself: ``forward_tokens`` runs
    its sensor, if any, and its ``InputNorm``) gives

    * attention: for each patch token, the last block's attention probability it receives, averaged over
      all ``N`` queries and all heads (float32; the ``N`` scores of a clip sum to 1). With no CLS token this
      is the token's share of the block's attention, the closest analogue of UMT's CLS attention;
    * the clip-level target: ``fc_norm(mean(tokens))``, the pooled feature the classifier's head reads;
    * the patch targets: every token after the same norm (``fc_norm``, since snappix classifiers have no
      final encoder norm; the final ``norm`` instead when a model has one).

    Args:
        classifier: the finetuned classifier (its parameters are frozen here).
        chunk: clips per forward (None: the whole batch).

    Attributes:
        grid: the classifier's token grid ``(T', H', W')`` (``T' = T / tubelet``; 1 for a coded ViT).
        dim: its width D.
    """

    def __init__(self, classifier: ViTClassifierBase, *, chunk: int | None = None) -> None:
        img = classifier.img_size
        if not isinstance(img, int):
            if img[0] != img[1]:
                raise TeacherLoadError(f"the snappix teacher needs square frames, the classifier takes {img}")
            img = img[0]
        super().__init__(classifier.grid, classifier.embed_dim, img_size=int(img), num_frames=classifier.num_frames,
                         in_chans=classifier.in_chans, chunk=chunk)
        self.classifier = classifier
        self.freeze()

    def _token_norm(self) -> nn.Module:
        """The norm the pooled feature sees: ``fc_norm`` when the encoder has no final norm (every snappix
        classifier: ``final_norm=False``), else the final ``norm``."""
        norm = getattr(self.classifier, "norm", None)
        return self.classifier.fc_norm if norm is None or isinstance(norm, nn.Identity) else norm

    def encode(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw clip ``(B, C, T, H, W)`` in [0, 1] -> attention ``(B, N)`` float32, pooled feature ``(B, D)``,
        normed tokens ``(B, N, D)`` (not yet L2-normalised), ``N = T'H'W'``."""
        clf, norm = self.classifier, self._token_norm()
        attn = clf.blocks[-1].attn
        attention, pooled, patches = [], [], []
        for clips in video.split(self.chunk or video.shape[0]):
            scores, tokens = forward_with_attention(attn, lambda: clf.forward_tokens(clips), query="mean")
            attention.append(scores)
            pooled.append(clf.forward_head(tokens, pre_logits=True))  # mean pool + fc_norm, as the head reads
            patches.append(norm(tokens))
        return torch.cat(attention), torch.cat(pooled), torch.cat(patches)


def _config_and_state(path: str) -> tuple[Mapping[str, Any], dict[str, torch.Tensor]]:
    ckpt = read_weights(path)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping) or \
            not isinstance(ckpt.get("config"), Mapping):
        keys = list(ckpt)[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise TeacherLoadError(f"{path!r} is not a snappix finetuning checkpoint (a dict with 'model' and 'config', "
                               f"as checkpoint-best.pth); found {keys}")
    config = ckpt["config"]
    if not config.get("model"):
        raise TeacherLoadError(f"the config saved in {path!r} names no 'model'; cannot rebuild the classifier")
    return config, state_dict_of(ckpt["model"], path)


def _check_geometry(path: str, config: Mapping[str, Any], img_size: int, num_frames: int, in_chans: int) -> None:
    saved = (int(config.get("num_frames", 16)), int(config.get("input_size", 112)), int(config.get("in_chans", 1)))
    asked = (int(num_frames), int(img_size), int(in_chans))
    if saved != asked:
        raise TeacherLoadError(
            f"the snappix teacher {path!r} was trained on clips of {saved[0]} frames x {saved[1]} px x {saved[2]} "
            f"channel(s) (its config), but the teacher is asked for {asked[0]} frames x {asked[1]} px x {asked[2]} "
            "channel(s); run with the teacher's --num_frames / --input_size / --in_chans")


def build_snappix_teacher(path: str | os.PathLike, *, img_size: int, num_frames: int, in_chans: int = 1,
                          chunk: int | None = None) -> SnappixTeacher:
    """The frozen snappix teacher of a finetuning checkpoint (e.g. ``outputs/.../checkpoint-best.pth``).

    The classifier is rebuilt from the checkpoint's ``"config"`` (the run's flags) with
    :func:`snappix.models.factory.classifier_from_flags`, with as many classes as its head has rows (else
    the config's ``nb_classes``, else 0), and its ``"model"`` state dict is loaded strictly.

    Args:
        path: the checkpoint (``torch.load(weights_only=True)``-readable dict with ``"model"`` and ``"config"``).
        img_size, num_frames, in_chans: the clip geometry the run feeds; must equal the checkpoint's.
        chunk: clips per forward.

    Raises:
        TeacherLoadError: a missing / unreadable file, not a snappix checkpoint, a geometry mismatch, a model
            that cannot be rebuilt or is not a ViT classifier, or a state dict that does not fit.
    """
    path = os.fspath(path)
    config, state = _config_and_state(path)
    _check_geometry(path, config, img_size, num_frames, in_chans)
    head = state.get("head.weight")
    num_classes = int(head.shape[0]) if head is not None else int(config.get("nb_classes") or 0)
    try:
        classifier = classifier_from_flags(config, num_classes)
    except Exception as e:  # noqa: BLE001 - unknown model, pattern file gone, bad flags: all one message
        raise TeacherLoadError(f"cannot rebuild the classifier of {path!r} from its config (model "
                               f"{config.get('model')!r}): {type(e).__name__}: {e}") from e
    if not isinstance(classifier, ViTClassifierBase):
        raise TeacherLoadError(f"the snappix teacher must be a ViT classifier (video_vit_*, coded_vit_*); {path!r} "
                               f"holds a {type(classifier).__name__} ({config.get('model')!r})")
    load_strict(classifier, state, path, f"snappix classifier {config.get('model')!r}")
    teacher = SnappixTeacher(classifier.eval(), chunk=chunk)
    if (teacher.num_frames, teacher.img_size, teacher.in_chans) != (num_frames, img_size, in_chans):
        raise TeacherLoadError(f"the classifier rebuilt from {path!r} takes {teacher.num_frames} frames x "
                               f"{teacher.img_size} px x {teacher.in_chans} channel(s), not the requested "
                               f"{num_frames} x {img_size} x {in_chans}")
    return teacher
