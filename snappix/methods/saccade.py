"""Saccade-VSSL pretraining as a method plug (``run_pretraining.py --task saccade``).

Lai et al., "Saccade-VSSL", IEEE TCSVT 2023 (https://doi.org/10.1109/TCSVT.2023.3301698; reference code
ashleylqx/Saccades-VSSL). Each fixation of a G-Eymol scanpath is a contrastive instance: clips A and B half a
fixation apart are positives through a memory bank, the other fixations of the video are negatives; a soft
spotlight ``x + x * map`` marks the fixation; a within-fixation PixPro prediction and PCL prototypes are added
(``docs/methods/saccade.md``).

    python -m snappix.tools.scanpaths --list train.csv --data_root VIDEOS --out_root scan_idx_7
    python run_pretraining.py --task saccade --config configs/pretrain/saccade_r3d_ucf101.yaml \
        --data_path train.csv --data_root VIDEOS --scanpath_root scan_idx_7 --output_dir OUT

The flags of the reference README's command are accepted with their names (``--fs_warmup_epoch --cluster_freq
--num_clusters --focus_num --grid_num --deduplicate True --margin_h --pro_p --lr_ratio --learning_rate --save_freq
--clip_len --crop_size --model r3d|r21d --dataset ucf101|hmdb51``); the optimiser recipe (SGD 0.9, weight decay
1e-4, absolute lr 0.1, x0.2 at 90 / 180 / 240) is in the configs, through the engine's ``--opt sgd --lr_scale none
--lr_sched multistep`` flags.
"""

from __future__ import annotations

import argparse
import logging
import os

import timm

import snappix.models  # noqa: F401  (registers saccade_r3d / saccade_r21d in timm's registry)
from snappix.data.fixation_dataset import FixationClipDataset
from snappix.data.lists import ListEntry, read_list
from snappix.engine import args as A
from snappix.engine import distributed as D
from snappix.engine.method import Method
from snappix.engine.runner import build_loader
from snappix.errors import UserError
from snappix.models.registry import require_model
from snappix.objectives.saccade import SaccadeLoss, SaccadeSSLModel, instance_features
from snappix.scanpaths.scanfile import read_scanpath

log = logging.getLogger(__name__)

TASKS = ("saccade",)
MODELS = {"r3d": "saccade_r3d", "r21d": "saccade_r21d"}


class ScanpathMissingError(UserError, FileNotFoundError):
    """Rows of the list have no scanpath file under ``--scanpath_root``; the message names them."""


def add_args(parser: argparse.ArgumentParser) -> None:
    """Saccade-VSSL's flags, with the reference's names (``train_ssl_full.py``)."""
    g = parser.add_argument_group("Saccade-VSSL (--task saccade)")
    g.add_argument("--scanpath_root", default=None,
                   help="folder of scan_idx files: <root>/<list path without extension>.txt (python -m "
                        "snappix.tools.scanpaths --out_root) or the reference's flat <root>/<video name>.txt")
    A.add_bool_arg(g, "--random_fixations", default=False,
                   help="no scanpaths: focus_num distinct random grid cells with random spans per video (what the "
                        "reference does for HMDB51)")
    g.add_argument("--dataset", default=None, choices=["ucf101", "hmdb51"],
                   help="the reference's flag: hmdb51 implies --random_fixations (HMDB51 has no scanpaths)")
    g.add_argument("--list_format", default="pretrain", choices=["pretrain", "cls"],
                   help="--data_path rows: 'path start_idx total_frames' (pretrain) or 'path label' (cls)")
    g.add_argument("--focus_num", type=int, default=3, help="fixations per video (instances; 2 clips each)")
    g.add_argument("--grid_num", type=int, default=7, help="cells per side of the scanpath grid")
    A.add_bool_arg(g, "--deduplicate", default=False,
                   help="drop a fixation whose cell an earlier one of the first focus_num already has (not replaced)")
    g.add_argument("--margin_h", type=int, default=0,
                   help="focus box margin in pixels of the 128-px-high canvas (the published runs: 12)")
    g.add_argument("--focus_level", type=int, default=0, choices=list(range(-1, 6)),
                   help="spotlight x + x * map on the input (0) or after conv1..conv5 (1-5); -1: none")
    g.add_argument("--width", type=int, default=64, help="backbone width (64: the paper's 512-d feature)")
    g.add_argument("--proj_dim", type=int, default=512, help="width of the shared projection")
    g.add_argument("--nce_k", type=int, default=1024, help="memory-bank negatives per clip")
    g.add_argument("--nce_t", type=float, default=0.07, help="NCE temperature")
    g.add_argument("--nce_m", type=float, default=0.5, help="memory-bank momentum")
    g.add_argument("--lr_ratio", type=float, default=0.001, help="the projection trains at lr * lr_ratio")
    g.add_argument("--pro_p", type=float, default=1.0, help="PixPro similarity power (R3D 1, R(2+1)D 4)")
    g.add_argument("--pro_clamp_value", type=float, default=0.0, help="PixPro similarity clamp")
    A.add_bool_arg(g, "--pixpro", default=True, help="the within-fixation prediction loss (L_pred)")
    g.add_argument("--num_clusters", type=int, nargs="+", default=[1500, 1500, 1500],
                   help="k of each PCL clustering (0: no prototypes)")
    g.add_argument("--fs_warmup_epoch", type=int, default=1, help="first 1-based epoch with prototypes")
    g.add_argument("--cluster_freq", type=int, default=1, help="recluster at 1-based epochs divisible by this")
    g.add_argument("--cluster_features", default="data", choices=["data", "bank"],
                   help="data: re-extract the fixation-start clips (centre crop) before k-means, as the reference; "
                        "bank: project the memory bank (no data pass)")
    g.add_argument("--bottom_area", type=float, default=0.175, help="smallest area share of the random crop")
    A.add_bool_arg(g, "--flip", default=True,
                   help="random horizontal flip of each training clip and its map (the reference's; false where a "
                        "flip changes what the clip shows, e.g. the direction of motion of the synthetic clips)")
    g.add_argument("--cluster_crop", type=float, default=196 / 256,
                   help="centre-crop side of the feature pass, as a share of the short side (reference 196/256)")
    # the reference's spellings of engine flags (no default of their own: the engine's flag keeps it)
    g.add_argument("--learning_rate", dest="lr", type=float, default=argparse.SUPPRESS, help="same as --lr")
    g.add_argument("--save_freq", dest="save_ckpt_freq", type=int, default=argparse.SUPPRESS,
                   help="same as --save_ckpt_freq")
    g.add_argument("--clip_len", dest="num_frames", type=int, default=argparse.SUPPRESS, help="same as --num_frames")
    g.add_argument("--crop_size", dest="input_size", type=int, default=argparse.SUPPRESS,
                   help="same as --input_size")


def check(args: argparse.Namespace) -> None:
    """Before anything is written: the model, the fixation source, and a warning off the published recipe.

    Raises:
        snappix.errors.UserError: a model that is not a Saccade backbone, no ``--scanpath_root`` (nor
            ``--random_fixations``), a missing scanpath folder, ``--num_sample`` > 1 or a bad ``--focus_num``.
    """
    args.model = MODELS.get(args.model, args.model)
    if args.model not in MODELS.values():
        raise UserError(f"--task saccade trains saccade_r3d or saccade_r21d (or the reference's r3d / r21d), "
                        f"got --model {args.model}")
    if args.dataset == "hmdb51":
        args.random_fixations = True
    if not args.random_fixations:
        if not args.scanpath_root:
            raise UserError("--task saccade needs --scanpath_root DIR (scan_idx files; make them with python -m "
                            "snappix.tools.scanpaths --list LIST --data_root ROOT --out_root DIR) or "
                            "--random_fixations")
        if not os.path.isdir(args.scanpath_root):
            raise UserError(f"--scanpath_root {args.scanpath_root} is not a folder")
    if args.num_sample != 1:
        raise UserError("--task saccade samples its own 2 * focus_num clips per video: leave --num_sample at 1")
    if not 1 <= args.focus_num <= args.grid_num ** 2:
        raise UserError(f"--focus_num must be in [1, {args.grid_num ** 2}], got {args.focus_num}")
    off = [f"--{k} {getattr(args, k)}" for k, v in (("opt", "sgd"), ("lr_sched", "multistep"), ("lr_scale", "none"))
           if getattr(args, k) != v]
    if off:
        log.warning("--task saccade with %s: the published recipe is --opt sgd --lr_sched multistep --lr_scale none "
                    "(configs/pretrain/saccade_r3d_ucf101.yaml)", ", ".join(off))


def data_lists(args: argparse.Namespace) -> tuple[list[str | None], str]:
    """The list the run reads and its format, for the data doctor (``--check_data``)."""
    return [args.data_path], args.list_format


def scanpath_candidates(root: str, entry: ListEntry) -> list[str]:
    """Where the scanpath of ``entry`` may be: ``root/<rel_path without its extension>.txt`` (the layout of
    ``python -m snappix.tools.scanpaths``), then ``root/<video name>.txt`` (the reference's flat ``scan_idx_7``)."""
    rel = os.path.splitext(entry.rel_path)[0] if entry.is_video_file else entry.rel_path.rstrip("/\\")
    mirrored = os.path.join(root, rel + ".txt")
    flat = os.path.join(root, os.path.basename(rel) + ".txt")
    return [mirrored] if flat == mirrored else [mirrored, flat]


def read_scanpaths(entries: list[ListEntry], root: str, grid: int, source: str = "<list>") -> list:
    """One int64 ``(N_i, 3)`` scanpath per row of the list (:func:`snappix.scanpaths.read_scanpath`).

    Raises:
        ScanpathMissingError: rows without a file (the first ones named with the paths tried).
        snappix.scanpaths.ScanpathFormatError: a malformed file (file and line named).
    """
    out, missing = [], []
    for entry in entries:
        tried = scanpath_candidates(root, entry)
        path = next((p for p in tried if os.path.isfile(p)), None)
        if path is None:
            missing.append(f"{source}:{entry.line_no} {entry.rel_path} -> {' or '.join(tried)}")
            continue
        out.append(read_scanpath(path, grid=grid))
    if missing:
        shown = "\n  ".join(missing[:5]) + (f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ScanpathMissingError(f"{len(missing)} of {len(entries)} videos of {source} have no scanpath file under "
                                   f"--scanpath_root {root}:\n  {shown}\ncompute them with python -m "
                                   f"snappix.tools.scanpaths --list {source} --data_root DATA_ROOT --out_root {root}")
    short = sum(len(s) < 1 for s in out)
    if short:
        log.warning("%d of %d scanpaths of %s are empty: their fixations are all padding", short, len(out), source)
    return out


def build_datasets(args: argparse.Namespace) -> tuple[FixationClipDataset, FixationClipDataset]:
    """The training dataset and the feature-pass (``cluster``) dataset over the same rows and scanpaths."""
    entries = read_list(args.data_path, args.list_format, args.data_root, args.allow_outside_root)
    scanpaths = None if args.random_fixations else read_scanpaths(entries, args.scanpath_root, args.grid_num,
                                                                  args.data_path)
    common = dict(scanpaths=scanpaths, focus_num=args.focus_num, deduplicate=args.deduplicate, grid=args.grid_num,
                  margin_h=args.margin_h, num_frames=args.num_frames, sampling_rate=args.sampling_rate,
                  input_size=args.input_size, seed=args.seed, gray="first" if _in_chans(args) == 1 else None,
                  bottom_area=args.bottom_area, flip=args.flip, center_fraction=args.cluster_crop,
                  list_format=args.list_format,
                  entries=entries, video_backend=args.video_backend, max_bad_fraction=args.max_bad_fraction,
                  log_dir=args.output_dir, cache_videos=args.cache_videos)
    train = FixationClipDataset(args.data_path, args.data_root, mode="train", **common)
    cluster = FixationClipDataset(args.data_path, args.data_root, mode="cluster", check_missing=False, **common)
    return train, cluster


def _in_chans(args: argparse.Namespace) -> int:
    return int(getattr(args, "in_chans", 1) or 1)  # --in_chans is shared with --task distill (default 1: grey)


def build_model(args: argparse.Namespace) -> SaccadeSSLModel:
    """``SaccadeSSLModel(saccade_r3d | saccade_r21d)`` for the flags (backbone without a head)."""
    backbone = timm.create_model(require_model(args.model), focus_level=args.focus_level, width=args.width,
                                 in_chans=_in_chans(args), img_size=args.input_size, num_frames=args.num_frames)
    return SaccadeSSLModel(backbone, proj_dim=args.proj_dim, lr_ratio=args.lr_ratio, pro_p=args.pro_p,
                           pro_clamp_value=args.pro_clamp_value, clips_per_video=2 * args.focus_num,
                           pixpro=args.pixpro)


def build(args: argparse.Namespace, info: D.DistInfo) -> Method:
    """The plug of ``--task saccade``: fixation clips, ``SaccadeSSLModel``, ``SaccadeLoss`` (memory bank, PixPro,
    prototypes), the bank draw as batch transform and the k-means refresh as epoch hook.

    Raises:
        ScanpathMissingError / ScanpathFormatError: see :func:`read_scanpaths`.
        snappix.errors.UserError: more clusters than instances.
    """
    train_set, cluster_set = build_datasets(args)
    n = train_set.n_instances
    clusters = [k for k in args.num_clusters if k > 0]
    if clusters and max(clusters) > n:
        raise UserError(f"--num_clusters {' '.join(map(str, args.num_clusters))}: k-means needs at most one cluster "
                        f"per instance, and {args.data_path} gives {n} ({len(train_set)} videos x {args.focus_num} "
                        f"fixations); lower --num_clusters (0: no prototypes)")
    model = build_model(args)
    log.info("model %s (width %d, focus level %d): %.2f M parameters; %d instances", args.model, args.width,
             args.focus_level, sum(p.numel() for p in model.parameters()) / 1e6, n)
    loss = SaccadeLoss(n_instances=n, feat_dim=model.backbone.num_features, proj_dim=args.proj_dim, nce_k=args.nce_k,
                       temperature=args.nce_t, momentum=args.nce_m, num_clusters=clusters,
                       fs_warmup_epoch=args.fs_warmup_epoch, cluster_freq=args.cluster_freq, epochs=args.epochs,
                       pixpro=args.pixpro)
    cluster_loader = None
    if clusters and args.cluster_features == "data":
        cluster_loader, _ = build_loader(cluster_set, args, info, train=False)

    def on_epoch_start(epoch, net, loader):
        features_fn = None
        if cluster_loader is not None:
            def features_fn():
                return instance_features(net, cluster_loader, n, info.device)
        if loss.on_epoch_start(epoch, net, loader, features_fn=features_fn):
            log.info("epoch %d: prototypes recomputed (k = %s, features from the %s)", epoch, clusters,
                     "fixation-start clips" if cluster_loader is not None else "memory bank")

    return Method(model=model, objective=loss, train_set=train_set, model_inputs=("focus", "nce_bank"),
                  batch_transform=loss.batch_transform, on_epoch_start=on_epoch_start, name="saccade",
                  extras={"cluster_set": cluster_set})
