"""Masked distillation from an unmasked teacher as a method plug (``run_pretraining.py --task distill``).

UMT (Li et al., "Unmasked Teacher", ICCV 2023, https://arxiv.org/abs/2303.16058) and VideoMamba's masked
pretraining (https://arxiv.org/abs/2403.06977 §3.4): a frozen teacher sees the **whole** clip; per token
slot it gives the CLS-to-patch attention of its last block and the target features of every token; the
student sees only the visible tokens (``--mask_type teacher_attention``: drawn with probability proportional
to that attention, ``--mask_ratio`` hidden per slot) and regresses the teacher's normalised features at
CLS + the visible positions (:class:`snappix.objectives.distillation.DistillationLoss`).

The teacher lives in the batch transform (:class:`TeacherTargets`), never in the trained model: it is not
optimised and not in any checkpoint. One teacher forward per batch gives the mask and the targets; its share
of the step time is logged as ``perf/transform_time_frac``. ``docs/methods/videomamba.md`` has the recipe.
"""

from __future__ import annotations

import argparse
import logging

import timm
import torch

import snappix.models  # noqa: F401  (registers the students in timm's registry)
from snappix.data.datasets import multiple_samples_collate
from snappix.engine import distributed as D
from snappix.engine.loop import evaluate
from snappix.engine.method import Method
from snappix.engine.precision import autocast
from snappix.engine.runner import build_loader
from snappix.errors import UserError
from snappix.masking.factory import DEVICE_MASKS, encoder_mask_from_flags
from snappix.masking.generators import build_mask_generator
from snappix.models.registry import require_model
from snappix.objectives.distillation import DistillationLoss
from snappix.teachers import FrozenTeacher, build_teacher

from . import masked_video

log = logging.getLogger(__name__)

TASKS = ("distill",)


class GridMismatchError(UserError, ValueError):
    """The student's token grid differs from the teacher's: the targets cannot be matched token for token."""


def add_args(parser: argparse.ArgumentParser) -> None:
    """The teacher's flags (the mask and clip flags are masked pretraining's: ``--mask_type``, ``--mask_ratio``,
    ``--sampling``, ``--tubelet_size``, ...)."""
    g = parser.add_argument_group("masked distillation (--task distill)")
    g.add_argument("--teacher", default=None,
                   help="a timm ViT with a class token applied per frame (OpenAI CLIP ViT-B/16: "
                        "vit_base_patch16_clip_quickgelu_224.openai), or 'snappix': a snappix video classifier "
                        "checkpoint applied per tubelet")
    g.add_argument("--teacher_path", default=None,
                   help="the teacher's weights: a local file (open_clip / OpenAI or timm key layout; for 'snappix' "
                        "a checkpoint-*.pth of run_finetuning.py); nothing is downloaded")
    g.add_argument("--teacher_chunk", type=int, default=0,
                   help="frames (image teacher) or clips per teacher forward, to bound its memory (0: all at once)")
    g.add_argument("--patch_size", type=int, default=None,
                   help="spatial patch side of the student (default: the registered model's); the student's token "
                        "grid must equal the teacher's")
    g.add_argument("--in_chans", type=int, default=1, choices=[1, 3],
                   help="channels the loader delivers and the student takes: 1 grey (the snappix default), 3 RGB")


def check(args: argparse.Namespace) -> None:
    """Before anything is written: a teacher and its file, and a mask the method can draw.

    Raises:
        snappix.errors.UserError: ``--teacher`` / ``--teacher_path`` missing.
    """
    if not args.teacher or not args.teacher_path:
        raise UserError("--task distill needs --teacher NAME and --teacher_path FILE (a local weights file; e.g. "
                        "--teacher vit_base_patch16_clip_quickgelu_224.openai --teacher_path ViT-B-16.pt, or "
                        "--teacher snappix --teacher_path outputs/.../checkpoint-best.pth)")
    if args.mask_type is None:
        args.mask_type = "teacher_attention"
    if args.sampling is None:
        args.sampling = "sparse"


class TeacherTargets:
    """The batch transform of masked distillation: one teacher forward gives the targets and the mask.

    ``__call__(batch, model)`` adds ``teacher_targets`` float32 ``(B, 1 + T'H'W', D_t)`` (L2-normalised) and, for
    a device mask type (``teacher_attention``, ``frame_random``), ``encoder_mask`` bool ``(B, T'H'W')`` (True =
    hidden). The teacher runs under ``torch.no_grad`` in the run's autocast precision.

    Args:
        teacher: the frozen teacher on the run's device.
        mask_type: ``--mask_type``; a data-side type (``tube``, ``random``, ...) keeps the loader's mask.
        mask_ratio: hidden share per token slot.
        device, precision: the run's device and ``--precision``.
        seed: base seed of the mask draws; :meth:`reseed` gives every epoch and rank its own stream.
    """

    def __init__(self, teacher: FrozenTeacher, mask_type: str, mask_ratio: float, device: torch.device,
                 precision: str, seed: int = 0):
        self.teacher, self.mask_type, self.mask_ratio = teacher, mask_type, mask_ratio
        self.device, self.precision, self.seed = torch.device(device), precision, seed
        self.generator = torch.Generator(self.device)
        self.reseed(0)

    def reseed(self, epoch: int, rank: int | None = None) -> None:
        """Mask draws of ``epoch`` on ``rank`` (default: this process's) from their own seed: a resumed run
        draws the same masks as an uninterrupted one."""
        rank = D.get_rank() if rank is None else rank
        self.generator.manual_seed(self.seed * 1_000_003 + epoch * 1009 + rank)

    @torch.no_grad()
    def __call__(self, batch: dict, model: torch.nn.Module | None = None) -> dict:
        with autocast(self.device, self.precision):
            out = self.teacher(batch["video"])
        batch["teacher_targets"] = out.targets.float()
        if self.mask_type in DEVICE_MASKS:
            draw = DEVICE_MASKS[self.mask_type]
            batch["encoder_mask"] = draw(out.attention.float(), self.mask_ratio, self.generator)
        return batch


def build_student(args: argparse.Namespace, teacher_dim: int) -> torch.nn.Module:
    """The student of ``--model`` (``videomamba_*_pretrain``, ``distill_video_vit_*``) for the clip geometry."""
    kwargs = dict(img_size=args.input_size, num_frames=args.num_frames, tubelet_size=args.tubelet_size,
                  drop_path_rate=args.drop_path, teacher_dim=teacher_dim, in_chans=args.in_chans)
    if args.patch_size:
        kwargs["patch_size"] = args.patch_size
    return timm.create_model(require_model(args.model), **kwargs)


def _datasets(args: argparse.Namespace, grid, teacher_masks: bool):
    none = build_mask_generator("none", grid, 0.0)
    enc = none if teacher_masks else encoder_mask_from_flags(vars(args), grid)
    gray = "first" if args.in_chans == 1 else None
    train = masked_video.build_dataset(args, args.data_path, grid, train=True, masks=(enc, None), gray=gray)
    val = None
    if args.val_path:
        val = masked_video.build_dataset(args, args.val_path, grid, train=False, masks=(enc, None), gray=gray)
    return train, val


def build(args: argparse.Namespace, info: D.DistInfo) -> Method:
    """The plug of ``--task distill``: frozen teacher (batch transform), student, sparse clips, cosine loss.

    Raises:
        snappix.teachers.TeacherLoadError: the teacher file is missing or does not fit (before training).
        GridMismatchError: the student's token grid differs from the teacher's.
    """
    teacher = build_teacher(args.teacher, args.teacher_path, img_size=args.input_size, num_frames=args.num_frames,
                            in_chans=args.in_chans, chunk=args.teacher_chunk or None).to(info.device)
    student = build_student(args, teacher.dim)
    if tuple(student.grid) != tuple(teacher.grid):
        raise GridMismatchError(f"the student {args.model} has the token grid {tuple(student.grid)} (T', H', W'), "
                                f"the teacher {args.teacher} ({args.teacher_path}) {tuple(teacher.grid)}: match "
                                f"--tubelet_size / --patch_size to the teacher's tokens")
    log.info("teacher %s: %.2f M parameters (frozen, not checkpointed); student %s: %.2f M parameters",
             args.teacher, sum(p.numel() for p in teacher.parameters()) / 1e6, args.model,
             sum(p.numel() for p in student.parameters()) / 1e6)
    args.patch_size = student.patch_size
    transform = TeacherTargets(teacher, args.mask_type, args.mask_ratio, info.device, args.precision, args.seed)
    train_set, val_set = _datasets(args, student.grid, args.mask_type in DEVICE_MASKS)
    objective = DistillationLoss()
    eval_fn = None
    if val_set is not None:
        val_loader, _ = build_loader(val_set, args, info, train=False)

        def eval_fn(model, epoch, logger):
            net = D.unwrap_model(model)
            transform.reseed(0, rank=0)  # the same validation masks every time
            return evaluate(model, objective, val_loader, info.device, args.precision, logger, desc=f"val {epoch}",
                            model_inputs=("encoder_mask",), batch_transform=lambda b: transform(b, net))

    def on_epoch_start(epoch, model, loader):
        transform.reseed(epoch + 1)

    return Method(model=student, objective=objective, train_set=train_set,
                  collate_fn=multiple_samples_collate if args.num_sample > 1 else None, model_inputs=("encoder_mask",), batch_transform=transform, on_epoch_start=on_epoch_start,
                  evaluate=eval_fn, best_metric=None, name="distill", extras={"teacher": teacher})
