"""Masked video pretraining as a method plug: VideoMAE / VideoMAEv2 and SnapPix's coded MAE
(``--task pretrain``), and SnapPix's unmasked coded-image -> video reconstruction study
(``--task reconstruction``).

The model (``pretrain_*`` from the zoo) gets ``encoder_mask`` / ``decoder_mask`` from the data layer;
the encoder mask is built by :func:`snappix.masking.factory.encoder_mask_from_flags` from ``--mask_type``
(tube, random, run_cell, kcenter, savi, attention). The objective is the per-tubelet (normalised) pixel
MSE on the hidden tokens (:class:`snappix.objectives.PixelMAELoss`) or the reconstruction loss with PSNR.
Papers: VideoMAE https://arxiv.org/abs/2203.12602, VideoMAEv2 https://arxiv.org/abs/2303.16727; SnapPix
is described in ``docs/methods/snappix.md``.
"""

from __future__ import annotations

import argparse
import logging
import os

import timm
import torch

import snappix.models  # noqa: F401  (registers the models in timm's registry)
from snappix.data.datasets import PRETRAIN_SAMPLINGS, VideoPretrainDataset, multiple_samples_collate
from snappix.engine import args as A
from snappix.engine import distributed as D
from snappix.engine.loop import evaluate
from snappix.engine.method import Method
from snappix.engine.runner import build_loader
from snappix.masking import MASK_TYPES
from snappix.masking.factory import (ENCODER_MASK_TYPES, check_mask_inputs, decoder_mask_from_flags,
                                     encoder_mask_from_flags)
from snappix.masking.generators import build_mask_generator
from snappix.masking.saliency import SAVI_SEMANTICS
from snappix.models.registry import require_model
from snappix.objectives import build_objective
from snappix.objectives.reconstruction import K710_SSV2_MEAN, K710_SSV2_STD

from .recon_images import reconstruct, save_recon_grid

log = logging.getLogger(__name__)

TASKS = ("pretrain", "reconstruction")


def add_args(parser: argparse.ArgumentParser) -> None:
    """The flags of masked pretraining (VideoMAEv2 / SnapPix names) and of its masks."""
    g = parser.add_argument_group("pretraining")
    g.add_argument("--val_path", default=None, help="validation list (pretrain format); loss / PSNR each eval")
    g.add_argument("--tubelet_size", type=int, default=2, help="frames per token (tubelet) of the video models")
    g.add_argument("--mask_type", default=None, choices=ENCODER_MASK_TYPES,
                   help="default: tube (--task pretrain), teacher_attention (--task distill); savi: SaViMAE saliency-aware masking; attention: per-frame visible draw weighted by "
                        "saliency; kcenter: the encoder sees the tokens greedy k-center picks (ECCV'22); "
                        "teacher_attention / frame_random (--task distill): per-frame draw weighted by the "
                        "teacher's CLS attention (UMT / VideoMamba) or uniform")
    g.add_argument("--sampling", default=None, choices=PRETRAIN_SAMPLINGS,
                   help="clip sampling: snappix (HybridVideoMAE clip; default of --task pretrain / reconstruction), "
                        "dense, sparse (one frame per equal segment of the video, TSN; default of --task distill, "
                        "as VideoMamba)")
    g.add_argument("--saliency", default="precomputed", choices=["precomputed", "online"],
                   help="savi / attention: read --saliency_root arrays (snappix.tools.saliency) or compute "
                        "saliency from the sampled clip")
    g.add_argument("--saliency_root", default=None, help="patch-saliency arrays mirroring the video tree")
    g.add_argument("--salient_mask_ratio", type=float, default=0.85,
                   help="saliency masking: share of the salient tokens hidden")
    g.add_argument("--nonsalient_mask_ratio", type=float, default=0.95,
                   help="saliency masking: share of the other tokens hidden")
    g.add_argument("--savi_semantics", default="per_group", choices=SAVI_SEMANTICS,
                   help="per_group: README rates per group, total fixed by --mask_ratio; budget: SaViMAE "
                        "training code (nonsalient ratio = total, salient ratio = share of it)")
    g.add_argument("--saliency_threshold", type=float, default=0.5, help="online saliency binarisation")
    g.add_argument("--saliency_pool", default="max", choices=["max", "mean"], help="pooling over a tubelet")
    g.add_argument("--mask_ratio", type=float, default=0.85, help="share of the encoder tokens hidden")
    g.add_argument("--decoder_mask_type", default="run_cell", choices=MASK_TYPES,
                   help="which hidden tokens the decoder reconstructs (VideoMAEv2 dual masking)")
    g.add_argument("--decoder_mask_ratio", type=float, default=0.5,
                   help="share of the tokens the decoder does not reconstruct")
    g.add_argument("--decoder_depth", type=int, default=4, help="transformer blocks of the MAE decoder")
    g.add_argument("--drop_path", type=float, default=0.0, help="stochastic depth rate of the encoder")
    A.add_bool_arg(g, "--normalize_target", "--normlize_target", default=True,
                   help="per-tubelet normalised targets (VideoMAE); --normlize_target is SnapPix's spelling")
    g.add_argument("--ssv2_sampling_rate", type=int, default=None,
                   help="sampling rate for SSV2 paths (SnapPix: 2); unset = --sampling_rate for every path")
    g.add_argument("--save_recon", type=int, default=0,
                   help="write PNG grids (frames, coded image, reconstruction) of N validation clips per eval")


def check(args: argparse.Namespace) -> None:
    """Resolve the task's defaults before the run's config is written: ``--mask_type tube``, ``--sampling snappix``."""
    if args.mask_type is None:
        args.mask_type = "tube"
    if args.sampling is None:
        args.sampling = "snappix"


def data_lists(args: argparse.Namespace) -> tuple[list[str | None], str]:
    """The lists the run reads and their format, for the data doctor (``--check_data``)."""
    return [args.data_path, args.val_path], "pretrain"


def build_model(args: argparse.Namespace) -> torch.nn.Module:
    """The ``pretrain_*`` model of ``--model`` with the clip geometry, decoder depth and sensor flags."""
    kwargs = dict(img_size=args.input_size, num_frames=args.num_frames, tubelet_size=args.tubelet_size,
                  decoder_depth=args.decoder_depth, drop_path_rate=args.drop_path)
    if args.coded_type is not None:
        kwargs.update(coded_type=args.coded_type, pattern_path=args.pattern, pattern_dir=args.pattern_dir)
    return timm.create_model(require_model(args.model), **kwargs)


def build_dataset(args: argparse.Namespace, path: str, grid, train: bool, tube_mask: bool = False,
                  masks: tuple | None = None, gray: str | None = "first"):
    """The pretraining dataset with its encoder / decoder mask generators over the token ``grid``;
    ``tube_mask``: the model needs the same spatial positions hidden in every slot (coded MAE), which
    ``--mask_type kcenter`` then selects over whole tubes. ``--task reconstruction`` hides nothing.
    ``masks``: ``(encoder, decoder)`` generators to use instead of the flags' (another method's, e.g.
    distillation, whose mask may come from its teacher); ``gray``: ``"first"`` (grey clips) or None (RGB).

    Raises:
        snappix.masking.saliency.MissingSaliencyError: precomputed saliency files missing for rows of ``path``.
    """
    flags = vars(args)
    if masks is not None:
        enc, dec = masks
    elif args.task == "reconstruction":
        enc, dec = build_mask_generator("none", grid, 0.0), build_mask_generator("none", grid, 0.0)
    else:
        enc, dec = encoder_mask_from_flags(flags, grid, tube=tube_mask), decoder_mask_from_flags(flags, grid)
    dataset = VideoPretrainDataset(path, args.data_root, num_frames=args.num_frames, sampling_rate=args.sampling_rate,
                                   input_size=args.input_size, sampling=args.sampling or "snappix",
                                   ssv2_sampling_rate=args.ssv2_sampling_rate,
                                   encoder_mask=enc, decoder_mask=dec, num_sample=args.num_sample if train else 1,
                                   train=train, video_backend=args.video_backend,
                                   max_bad_fraction=args.max_bad_fraction, log_dir=args.output_dir,
                                   cache_videos=args.cache_videos, allow_outside_root=args.allow_outside_root,
                                   gray=gray)
    if args.task == "pretrain":
        check_mask_inputs(flags, [e.rel_path for e in dataset.entries], path)
    return dataset


def make_eval_fn(args: argparse.Namespace, info: D.DistInfo, objective, val_loader, patch: int):
    """Validation loss (and PSNR for reconstruction) over ``val_loader``; with ``--save_recon N`` PNG grids
    of N clips in ``output_dir/recon`` (main process)."""

    def eval_fn(model, epoch, logger):
        metrics = evaluate(model, objective, val_loader, info.device, args.precision, logger, desc=f"val {epoch}")
        if args.save_recon and info.is_main:
            net = D.unwrap_model(model)
            batch = next(iter(val_loader))
            batch = {k: v[: args.save_recon].to(info.device) if isinstance(v, torch.Tensor) else v
                     for k, v in batch.items()}
            normalized = args.normalize_target and args.task == "pretrain"
            recon, coded = reconstruct(net.eval(), batch, normalized, K710_SSV2_MEAN, K710_SSV2_STD,
                                       args.tubelet_size, patch)
            for i in range(recon.shape[0]):
                save_recon_grid(batch["video"][i], recon[i], None if coded is None else coded[i],
                                os.path.join(args.output_dir, "recon", f"epoch{epoch:03d}_clip{i}.png"),
                                f"{args.model} {args.coded_type or ''} epoch {epoch}")
            net.train()
        return metrics

    return eval_fn


def build(args: argparse.Namespace, info: D.DistInfo) -> Method:
    """The plug of ``--task pretrain`` / ``reconstruction``: model, masked dataset, objective, validation."""
    model = build_model(args)
    log.info("model %s: %.2f M parameters", args.model, sum(p.numel() for p in model.parameters()) / 1e6)
    args.patch_size = model.patch_size
    tube_mask = model.needs_tube_mask  # coded MAE: one coded image, one spatial mask for every slot
    train_set = build_dataset(args, args.data_path, model.grid, train=True, tube_mask=tube_mask)
    objective = build_objective(args.task, args.tubelet_size, model.patch_size, args.normalize_target)
    eval_fn = None
    if args.val_path:
        val_loader, _ = build_loader(build_dataset(args, args.val_path, model.grid, train=False, tube_mask=tube_mask),
                                     args, info, train=False)
        eval_fn = make_eval_fn(args, info, objective, val_loader, model.patch_size)
    return Method(model=model, objective=objective, train_set=train_set,
                  collate_fn=multiple_samples_collate if args.num_sample > 1 else None,
                  model_inputs=("encoder_mask", "decoder_mask"), evaluate=eval_fn, name=args.task)
