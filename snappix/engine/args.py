"""The one argument-building helper shared by every entry point.

Flags keep the VideoMAE(v2)/SnapPix names so their shell scripts port with little change. Each
``add_*_args(parser, **defaults)`` adds one flag group and returns it (so an entry point can add its
own flags to the group); keyword arguments override that group's defaults per entry point::

    parser = build_parser("snappix pretraining")            # all groups + --config
    add_optimizer_args(parser, ...)                         # or pick groups one by one
    parser.add_argument("--mask_ratio", type=float, default=0.9)
    args = parse_args(parser)                               # --config FILE.yaml handled here
    save_config(args, args.output_dir)                      # output_dir/config.yaml

``--config FILE.yaml``: the file's keys (flag names; aliases such as ``update_freq`` or
``local-rank`` accepted) become defaults, flags given on the command line override them, and a key
no flag knows is an error naming the key and the file. The ``config.yaml`` written by
:func:`save_config` can be passed back through ``--config`` to repeat a run.

Booleans are real booleans: ``add_bool_arg`` accepts ``--flag``, ``--flag true|false|1|0|yes|no``
and (if given) a negative form ``--no_flag``. SnapPix's ``type=bool`` made ``--normlize_target False``
True (any non-empty string is truthy).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Sequence

from .cli import add_debug_arg
from .config_file import (CONFIG_FILE, EVAL_CONFIG_FILE, PATH_FLAGS, ConfigError, config_dict,  # noqa: F401
                          default_output_dir, load_config, parse_args, save_config, str2bool)

log = logging.getLogger(__name__)


def add_bool_arg(group, name: str, *aliases: str, default: bool = False, negative: str | None = None,
                 help: str = "") -> None:
    """Add a real boolean flag ``name`` (``--x``, ``--x true``, ``--x false``) with alias spellings and
    an optional negative flag (``--no_x``) sharing its destination."""
    dest = name.lstrip("-").replace("-", "_")
    group.add_argument(name, *aliases, dest=dest, type=str2bool, nargs="?", const=True, default=default,
                       metavar="BOOL", help=help)
    if negative:
        group.add_argument(negative, dest=dest, action="store_false", default=argparse.SUPPRESS,
                           help=f"same as {name} false")


def _override(parser: argparse.ArgumentParser, group, defaults: dict) -> None:
    if not defaults:
        return
    known = {a.dest for a in group._group_actions}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise ValueError(f"default overrides for flags not in group '{group.title}': {unknown}")
    parser.set_defaults(**defaults)


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """``--config FILE.yaml`` (YAML defaults, overridden by explicit flags) and ``--debug``."""
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help="YAML file whose keys set flag defaults; explicit flags override it")
    add_debug_arg(parser)


def add_video_flags(g, **defaults) -> None:
    """Reading videos from a list (added to the group ``g``): ``--data_root``, ``--allow_outside_root``,
    ``--video_backend``, ``--max_bad_fraction``. Shared by every entry point that reads videos."""
    g.add_argument("--data_root", default="", help="prefix joined to the paths of the list")
    add_bool_arg(g, "--allow_outside_root", default=False,
                 help="accept list rows whose path is absolute or leads out of --data_root with '..' (refused by "
                      "default: such a row usually means a wrong list or root)")
    g.add_argument("--video_backend", default=None, choices=["decord", "pyav", "torchcodec"],
                   help="video decoder (None: decord when installed, else pyav; pyav is the fallback)")
    g.add_argument("--max_bad_fraction", type=float, default=0.01,
                   help="stop when at least 2 distinct videos failed to decode and they are more than this share "
                        "of the distinct videos tried so far, counted over all DataLoader workers (at each failure) "
                        "and all ranks (at each epoch end); failures go to bad_videos.txt")
    _set(g, defaults)


def add_clip_flags(g, **defaults) -> None:
    """Clip geometry and batch (added to ``g``): ``--num_frames``, ``--sampling_rate``, ``--input_size``,
    ``--num_sample``, ``--batch_size``."""
    g.add_argument("--num_frames", type=int, default=16, help="frames per clip")
    g.add_argument("--sampling_rate", type=int, default=4, help="frame stride of a clip")
    g.add_argument("--input_size", type=int, default=112, help="spatial crop size in pixels")
    g.add_argument("--num_sample", type=int, default=1, help="repeated augmentation: clips per video")
    g.add_argument("--batch_size", type=int, default=64, help="videos per process and micro-batch")
    _set(g, defaults)


def add_data_check_flags(g) -> None:
    """``--check_data`` / ``--check_data_deep`` (added to ``g``): the data doctor before training."""
    add_bool_arg(g, "--check_data", default=False,
                 help="run the data doctor (python -m snappix.tools.check_data) on the lists first and stop on "
                      "bad rows; reports go to output_dir/data_check/")
    add_bool_arg(g, "--check_data_deep", default=False,
                 help="with --check_data: decode every frame of every video (slow), not only the headers")


def _set(g, defaults: dict) -> None:
    for action in g._group_actions:
        if action.dest in defaults:
            action.default = defaults[action.dest]


def add_data_args(parser: argparse.ArgumentParser, **defaults):
    """Data and loader flags: list file, video reading, clip geometry, batch, workers, loader timeout, data check."""
    g = parser.add_argument_group("data")
    g.add_argument("--data_path", default=None, help="list file (VideoMAE/SnapPix format)")
    add_video_flags(g)
    add_clip_flags(g)
    g.add_argument("--num_workers", type=int, default=10, help="DataLoader workers per process")
    add_bool_arg(g, "--pin_mem", default=True, negative="--no_pin_mem", help="pin host memory in the DataLoader")
    add_bool_arg(g, "--cache_videos", default=False,
                 help="decode each video once and keep its frames in memory (per process and worker; small "
                      "datasets only: the quickstart's 320 clips take about 260 MB); sampling is unchanged")
    g.add_argument("--loader_timeout", type=float, default=600.0, metavar="SECONDS",
                   help="a DataLoader worker that delivers no batch for this long is reported with the item it "
                        "is loading and the run stops (0: wait forever; only with --num_workers > 0)")
    add_data_check_flags(g)
    _override(parser, g, defaults)
    return g


def add_sensor_args(parser: argparse.ArgumentParser, **defaults):
    """The coded-exposure sensor of coded models: ``--coded_type``, ``--pattern``, ``--pattern_dir``."""
    g = parser.add_argument_group("sensor (coded models)")
    g.add_argument("--coded_type", default=None,
                   help="sensor pattern of coded models (snappix.sensor.CODED_TYPES: decor_fix, decor_learn, "
                        "naive, sparse, long, short, ...)")
    g.add_argument("--pattern", default=None,
                   help="exposure pattern file (decor_fix / decor_learn; default: SnapPix's pattern_4, shipped)")
    g.add_argument("--pattern_dir", default=None, help="folder with SnapPix's released pattern files")
    _override(parser, g, defaults)
    return g


#: first k-center centre: random (seeded per sample), the centre patch, or auto (random in training,
#: centre in evaluation)
KCENTER_FIRST_CENTER = ("auto", "random", "center")


def add_kcenter_args(parser: argparse.ArgumentParser, **defaults):
    """K-centered patch sampling (ECCV'22): the greedy k-center selection's cells, coordinate weights and
    first centre, shared by the pretraining mask (``--mask_type kcenter``) and the ``kcenter_vit_*`` models."""
    g = parser.add_argument_group("k-centered patch sampling")
    g.add_argument("--kcenter_time_division", type=int, default=1,
                   help="independent k-center runs on this many contiguous chunks of token slots (temporal cells)")
    g.add_argument("--kcenter_space_division", type=int, default=1,
                   help="> 1: at most one selected token per cell of an N x N spatial grid per chunk")
    g.add_argument("--kcenter_temporal_coef", type=float, default=1.0, help="weight of time in the distance")
    g.add_argument("--kcenter_spatial_coef", type=float, default=1.0, help="weight of position in the distance")
    g.add_argument("--kcenter_first_center", default="auto", choices=list(KCENTER_FIRST_CENTER),
                   help="first centre: random (seeded per sample), the centre patch, or auto (random in "
                        "training, the centre patch in evaluation)")
    _override(parser, g, defaults)
    return g


def add_model_args(parser: argparse.ArgumentParser, **defaults):
    """Model flags (registered model name); entry points add their method's own model flags."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=None, help="registered model name (timm registry)")
    _override(parser, g, defaults)
    return g


def add_optimizer_args(parser: argparse.ArgumentParser, **defaults):
    """Optimiser flags: AdamW hyper-parameters, weight decay, clipping, layer decay, accumulation."""
    g = parser.add_argument_group("optimizer")
    g.add_argument("--opt", default="adamw", choices=["adamw", "sgd"], help="optimizer")
    g.add_argument("--opt_eps", type=float, default=1e-8, help="AdamW epsilon")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (--opt sgd)")
    g.add_argument("--opt_betas", type=float, nargs=2, default=[0.9, 0.999], metavar=("BETA1", "BETA2"),
                   help="AdamW betas (SnapPix pretraining: 0.9 0.95)")
    g.add_argument("--weight_decay", type=float, default=0.05, help="weight decay")
    g.add_argument("--weight_decay_end", type=float, default=None,
                   help="final weight decay of a cosine schedule; None = constant --weight_decay")
    g.add_argument("--clip_grad", type=float, default=None, help="max gradient norm; None = no clipping")
    g.add_argument("--layer_decay", type=float, default=1.0, help="layer-wise lr decay (1.0 = off)")
    g.add_argument("--acc_iters", "--update_freq", dest="acc_iters", type=int, default=1,
                   help="gradient accumulation: micro-batches per optimizer step")
    _override(parser, g, defaults)
    return g


def add_schedule_args(parser: argparse.ArgumentParser, **defaults):
    """Schedule flags: epochs, lr values (base, before batch scaling), warmup."""
    g = parser.add_argument_group("schedule")
    g.add_argument("--epochs", type=int, default=300, help="training epochs")
    g.add_argument("--lr", type=float, default=1.5e-4, help="base lr for a total batch of 256 (scaled linearly)")
    g.add_argument("--min_lr", type=float, default=1e-5, help="final lr of the cosine (scaled like --lr)")
    g.add_argument("--warmup_lr", type=float, default=1e-6, help="lr at step 0 of the warmup (scaled like --lr)")
    g.add_argument("--warmup_epochs", type=float, default=40, help="linear warmup epochs")
    g.add_argument("--warmup_steps", type=int, default=-1, help="warmup in optimizer steps (overrides epochs if > 0)")
    g.add_argument("--eval_freq", type=int, default=0,
                   help="evaluate every N epochs and after the last one (0: only where the entry point says)")
    g.add_argument("--lr_scale", default="linear", choices=["linear", "none"],
                   help="linear: --lr, --min_lr and --warmup_lr are for a total batch of 256 and are scaled by "
                        "total batch / 256 (VideoMAE, SnapPix); none: they are used as given (recipes that quote "
                        "an absolute lr, e.g. Saccade-VSSL's 0.1 at batch 16)")
    g.add_argument("--lr_sched", default="cosine", choices=["cosine", "multistep"],
                   help="after the warmup: cosine decay to --min_lr, or multiply the lr by --lr_decay_rate at "
                        "each of --lr_decay_epochs (or --lr_decay_steps)")
    g.add_argument("--lr_decay_epochs", type=float, nargs="+", default=None, metavar="EPOCH",
                   help="multistep: epochs at whose start the lr is multiplied by --lr_decay_rate (e.g. 90 180 240)")
    g.add_argument("--lr_decay_steps", type=int, nargs="+", default=None, metavar="STEP",
                   help="multistep: optimizer steps at which the lr is multiplied by --lr_decay_rate (instead of "
                        "--lr_decay_epochs)")
    g.add_argument("--lr_decay_rate", type=float, default=0.1, help="multistep: factor applied at each milestone")
    add_bool_arg(g, "--lr_scale_with_num_sample", default=False,
                 help="count num_sample clips in the lr scaling (SnapPix/VideoMAE count videos only)")
    _override(parser, g, defaults)
    return g


def add_precision_args(parser: argparse.ArgumentParser, **defaults):
    """``--precision {auto,bf16,fp16,fp32}`` and ``--skip_nonfinite N``."""
    g = parser.add_argument_group("precision")
    g.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="autocast dtype. auto: bf16 where the device computes it natively (CUDA with bf16, "
                        "CPUs with AMX / AVX-512 BF16), else fp32 (emulated bf16 is several times slower); "
                        "the choice is printed at start-up. fp16 adds a GradScaler (GPU only)")
    g.add_argument("--skip_nonfinite", type=int, default=0, metavar="N",
                   help="skip (and log) up to N optimiser steps whose loss is NaN/inf over the run; the next "
                        "one stops it (0: the first one stops it)")
    _override(parser, g, defaults)
    return g


def add_checkpoint_args(parser: argparse.ArgumentParser, **defaults):
    """Output and checkpoint flags: output dir, save frequency, resume."""
    g = parser.add_argument_group("checkpoint")
    g.add_argument("--output_dir", default=None,
                   help="checkpoints, log.txt, config.yaml (default: outputs/<entry point>-<date-time>, printed)")
    g.add_argument("--save_ckpt_freq", type=int, default=20, help="keep checkpoint-{epoch}.pth every N epochs")
    add_bool_arg(g, "--auto_resume", default=True, negative="--no_auto_resume",
                 help="resume from the newest readable checkpoint in --output_dir")
    g.add_argument("--resume", default=None, metavar="FILE", help="resume from this checkpoint")
    _override(parser, g, defaults)
    return g


def add_distributed_args(parser: argparse.ArgumentParser, **defaults):
    """Device, seed and distributed flags (torchrun first; DeepSpeed optional)."""
    g = parser.add_argument_group("distributed")
    g.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cuda:N or cpu")
    g.add_argument("--seed", type=int, default=0, help="random seed (each rank uses seed + rank)")
    g.add_argument("--dist_url", default="env://", help="init_method of the process group")
    g.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=-1,
                   help="set by torch.distributed.launch; torchrun uses LOCAL_RANK")
    add_bool_arg(g, "--find_unused_parameters", default=False, help="DDP find_unused_parameters")
    add_bool_arg(g, "--enable_deepspeed", default=False, help="train through DeepSpeed (imported only then)")
    g.add_argument("--zero_stage", type=int, default=0, choices=[0, 1, 2], help="DeepSpeed ZeRO stage")
    _override(parser, g, defaults)
    return g


def add_logging_args(parser: argparse.ArgumentParser, **defaults):
    """Logging flags: TensorBoard directory, progress bars."""
    g = parser.add_argument_group("logging")
    g.add_argument("--log_dir", default=None, help="TensorBoard directory; None = output_dir/tb")
    add_bool_arg(g, "--progress", default=True, negative="--no_progress", help="tqdm progress bars on rank 0")
    _override(parser, g, defaults)
    return g


GROUPS = {"data": add_data_args, "model": add_model_args, "optimizer": add_optimizer_args,
          "schedule": add_schedule_args, "precision": add_precision_args, "checkpoint": add_checkpoint_args,
          "distributed": add_distributed_args, "logging": add_logging_args}


def build_parser(description: str = "", groups: Sequence[str] = tuple(GROUPS)) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with ``--config`` and the named flag groups (default: all).

    ``allow_abbrev`` is off: SnapPix's ``--cross_model`` silently resolved to ``--cross_model_path``
    (defect §11.18).
    """
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arg(parser)
    for name in groups:
        GROUPS[name](parser)
    return parser
