"""Masked video pretraining: VideoMAE / VideoMAEv2 and SnapPix coded-image -> video (``--task pretrain``),
and SnapPix's reconstruction study (``--task reconstruction``).

    python run_pretraining.py --model pretrain_coded_videomae_small_patch8_112 --coded_type decor_fix \
        --pattern pattern_4.pth --data_path pretrain.csv --data_root VIDEOS --output_dir OUT
    torchrun --nproc_per_node 4 run_pretraining.py --config configs/pretrain/coded_vits_snappix.yaml ...

Flags keep VideoMAEv2 / SnapPix names; ``--config FILE.yaml`` supplies defaults. See
``snappix/engine/args.py`` for the shared flags.
"""

from __future__ import annotations

import logging
import os

import timm
import torch
from torch.distributed.elastic.multiprocessing.errors import record

import snappix.models  # noqa: F401  (registers the models in timm's registry)
from snappix.data.datasets import VideoPretrainDataset, multiple_samples_collate
from snappix.engine import args as A
from snappix.engine import distributed as D
from snappix.engine.cli import user_errors
from snappix.engine.loop import evaluate
from snappix.engine.precision import resolve_precision
from snappix.engine.runner import build_loader, fit
from snappix.masking import MASK_TYPES, build_mask_generator
from snappix.masking.kcenter import FIRST_CENTER_MODES
from snappix.masking.kcenter_masking import KCenterMaskGenerator
from snappix.masking.saliency import (SALIENCY_MASK_TYPES, SAVI_SEMANTICS, MissingSaliencyError,
                                      build_saliency_mask_generator, saliency_path)
from snappix.models.registry import require_model
from snappix.objectives import build_objective
from snappix.tools.check_data import check_lists_for_training

log = logging.getLogger("run_pretraining")


def build_parser():
    parser = A.build_parser("masked video pretraining (VideoMAE/VideoMAEv2, SnapPix coded MAE)")
    g = parser.add_argument_group("pretraining")
    g.add_argument("--task", default="pretrain", choices=["pretrain", "reconstruction"],
                   help="masked pixel MAE, or SnapPix's unmasked coded-image -> video reconstruction")
    g.add_argument("--val_path", default=None, help="validation list (pretrain format); loss / PSNR each eval")
    g.add_argument("--coded_type", default=None, help="sensor pattern of coded models (snappix.sensor.CODED_TYPES)")
    g.add_argument("--pattern", default=None, help="exposure pattern file (decor_fix / decor_learn)")
    g.add_argument("--pattern_dir", default=None, help="folder with SnapPix's released pattern files")
    g.add_argument("--tubelet_size", type=int, default=2, help="frames per token (tubelet) of the video models")
    g.add_argument("--mask_type", default="tube", choices=MASK_TYPES + SALIENCY_MASK_TYPES + ("kcenter",),
                   help="savi: SaViMAE saliency-aware masking; attention: per-frame visible draw weighted by "
                        "saliency; kcenter: the encoder sees the tokens greedy k-center picks (ECCV'22)")
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
    k = parser.add_argument_group("k-center encoder mask (--mask_type kcenter; same meaning as run_finetuning.py)")
    k.add_argument("--kcenter_time_division", type=int, default=1,
                   help="independent k-center runs on this many contiguous chunks of token slots")
    k.add_argument("--kcenter_space_division", type=int, default=1,
                   help="> 1: at most one visible token per cell of an N x N spatial grid per chunk")
    k.add_argument("--kcenter_temporal_coef", type=float, default=1.0, help="multiplier of the t coordinate")
    k.add_argument("--kcenter_spatial_coef", type=float, default=1.0, help="multiplier of the h, w coordinates")
    k.add_argument("--kcenter_first_center", default="random", choices=list(FIRST_CENTER_MODES),
                   help="first centre: random (from the sample's seeded generator) or the centre patch")
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
    return parser


def build_model(args):
    kwargs = dict(img_size=args.input_size, num_frames=args.num_frames, tubelet_size=args.tubelet_size,
                  decoder_depth=args.decoder_depth, drop_path_rate=args.drop_path)
    if args.coded_type is not None:
        kwargs.update(coded_type=args.coded_type, pattern_path=args.pattern, pattern_dir=args.pattern_dir)
    model = timm.create_model(require_model(args.model), **kwargs)
    return model


def build_dataset(args, path: str, grid, train: bool, tube_mask: bool = False):
    """The pretraining dataset with its encoder / decoder mask generators over the token ``grid``;
    ``tube_mask``: the model needs the same spatial positions hidden in every slot (coded MAE), which
    ``--mask_type kcenter`` then selects over whole tubes."""
    if args.task == "reconstruction":
        enc, dec = build_mask_generator("none", grid, 0.0), build_mask_generator("none", grid, 0.0)
    else:
        if args.mask_type == "kcenter":
            enc = KCenterMaskGenerator(grid, args.mask_ratio, args.kcenter_time_division,
                                       args.kcenter_space_division, args.kcenter_temporal_coef,
                                       args.kcenter_spatial_coef, args.kcenter_first_center, tube=tube_mask)
        elif args.mask_type in SALIENCY_MASK_TYPES:
            enc = build_saliency_mask_generator(
                args.mask_type, grid, args.patch_size, args.tubelet_size, args.saliency, args.saliency_root,
                args.mask_ratio, args.salient_mask_ratio, args.nonsalient_mask_ratio, args.savi_semantics,
                args.saliency_threshold, args.saliency_pool)
        else:
            enc = build_mask_generator(args.mask_type, grid, args.mask_ratio)
        dec = build_mask_generator(args.decoder_mask_type, grid, args.decoder_mask_ratio)
    dataset = VideoPretrainDataset(path, args.data_root, num_frames=args.num_frames, sampling_rate=args.sampling_rate,
                                input_size=args.input_size, ssv2_sampling_rate=args.ssv2_sampling_rate,
                                encoder_mask=enc, decoder_mask=dec, num_sample=args.num_sample if train else 1,
                                train=train, video_backend=args.video_backend,
                                max_bad_fraction=args.max_bad_fraction, log_dir=args.output_dir,
                                cache_videos=args.cache_videos, allow_outside_root=args.allow_outside_root)
    if args.task == "pretrain" and args.mask_type in SALIENCY_MASK_TYPES and args.saliency == "precomputed":
        missing = [saliency_path(args.saliency_root, e.rel_path) for e in dataset.entries
                   if not os.path.isfile(saliency_path(args.saliency_root, e.rel_path))]
        if missing:
            raise MissingSaliencyError(f"{path}: {len(missing)} of {len(dataset.entries)} saliency files missing "
                                       f"under --saliency_root, e.g. {missing[:3]}; run python -m "
                                       f"snappix.tools.saliency")
    return dataset


def make_eval_fn(args, info, objective, val_loader, patch):
    from snappix.objectives.reconstruction import K710_SSV2_MEAN, K710_SSV2_STD
    from snappix.tools.visualize import reconstruct, save_recon_grid

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


@record  # under torchrun: the failing rank's error is shown in the launcher's summary
@user_errors  # inside @record: a user error is one line and exit status 2 on its rank (--debug: traceback)
def main(argv=None) -> dict:
    parser = build_parser()
    args = A.parse_args(parser, argv)
    if not args.model or not args.data_path:
        parser.error("--model and --data_path are required (directly or through --config)")
    if args.check_data:  # the data doctor first (rank 0; reports in output_dir/data_check)
        check_lists_for_training([args.data_path, args.val_path], "pretrain", args.data_root, args.output_dir,
                                 args.check_data_deep, args.num_frames, progress=args.progress)
    info = D.init_distributed(args.device, args.local_rank, args.dist_url)
    args.precision = resolve_precision(args.precision, info.device)  # auto -> bf16 / fp32, said once
    A.default_output_dir(args, "pretrain")
    D.seed_everything(args.seed)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    A.save_config(args, args.output_dir)
    model = build_model(args)
    log.info("model %s: %.2f M parameters", args.model, sum(p.numel() for p in model.parameters()) / 1e6)
    args.patch_size = model.patch_size
    tube_mask = model.needs_tube_mask  # coded MAE: one coded image, one spatial mask for every slot
    dataset = build_dataset(args, args.data_path, model.grid, train=True, tube_mask=tube_mask)
    collate = multiple_samples_collate if args.num_sample > 1 else None
    loader, sampler = build_loader(dataset, args, info, train=True, collate_fn=collate)
    objective = build_objective(args.task, args.tubelet_size, model.patch_size, args.normalize_target)
    eval_fn = None
    if args.val_path:
        val_loader, _ = build_loader(build_dataset(args, args.val_path, model.grid, train=False,
                                                   tube_mask=tube_mask), args, info, train=False)
        eval_fn = make_eval_fn(args, info, objective, val_loader, model.patch_size)
    history = fit(args, info, model, objective, loader, sampler, eval_fn)
    D.cleanup()
    return history


if __name__ == "__main__":
    main()
