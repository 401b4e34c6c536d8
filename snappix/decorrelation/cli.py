"""Flags and entry point of ``run_decorrelation_training.py``: SnapPix's names and defaults, plus ours.

Video reading, clip geometry, ``--config`` / ``--debug`` and logging come from the shared flag groups of
:mod:`snappix.engine.args`; the rest (pattern, objective, optimiser, modes, output) are this tool's own.
The checkpoint, schedule, precision and distributed groups are not used: the pattern is trained by one
process in float32 with a constant AdamW lr, and its only checkpoint is ``checkpoint-latest.pth``.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from snappix.decorrelation.data import PREPROCESS_MODES
from snappix.decorrelation.errors import FlagError
from snappix.decorrelation.run import run
from snappix.decorrelation.train import LOSSES
from snappix.engine.args import (add_bool_arg, add_clip_flags, add_config_arg, add_logging_args, add_video_flags,
                                 parse_args)
from snappix.engine.cli import USER_ERROR_STATUS, debug_requested, format_user_error, user_errors
from snappix.engine.distributed import setup_logging
from snappix.sensor.moments import SYMMETRIES

__all__ = ["build_parser", "main"]

#: this tool's defaults of the shared clip flags (SnapPix's decorrelation training)
CLIP_DEFAULTS = dict(num_frames=16, sampling_rate=4, input_size=112, num_sample=1, batch_size=64)
#: what the shared flags mean here
HELP = {
    "num_frames": "T, frames per coded image",
    "sampling_rate": "frame step of a window",
    "input_size": "side of the centre crop",
    "num_sample": "random training windows per video per epoch",
    "batch_size": "clips per step (minibatch) / per moment update",
    "max_bad_fraction": "stop when at least 2 of the listed videos cannot be read and they are more than this "
                        "share of them (all are read at start-up); failures go to bad_videos.txt",
}


def _retell(group, helps: dict) -> None:
    """Replace the help text of the group's flags named (by destination) in ``helps``."""
    for action in group._group_actions:
        if action.dest in helps:
            action.help = helps[action.dest]


def _data_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data_path", required=False, default=None,
                   help="training videos: a pretraining list (path 0 -1) or a folder of videos")
    g.add_argument("--val_path", default=None, help="validation videos (list or folder); default: --data_path")
    add_video_flags(g)
    add_clip_flags(g, **CLIP_DEFAULTS)
    _retell(g, HELP)
    g.add_argument("--ssv2_sampling_rate", type=int, default=None,
                   help="step for paths containing ssv2_processed/SomethingV2 (SnapPix: 2); default: no override")
    g.add_argument("--train_sampling", choices=["per_video", "per_window"], default="per_video",
                   help="per_video: --num_sample windows per video (SnapPix); per_window: --num_sample per validation "
                        "window of the video (long videos weigh as in the validation protocol)")
    g.add_argument("--val_stride", type=int, default=32,
                   help="validation window starts 0, s, 2s, ... that fit; 0 = one window per video (SnapPix)")
    g.add_argument("--preprocess", choices=PREPROCESS_MODES, default="none",
                   help="none: videos already preprocessed (grey = channel 0); snappix: raw videos -> linear grey, "
                        "short side --input_size, at load time")
    add_bool_arg(g, "--cache", default=True, negative="--no_cache", help="decode every video once into memory")
    g.add_argument("--num_workers", type=int, default=2, help="threads decoding videos when filling the cache")


def _pattern_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("pattern and objective")
    g.add_argument("--tile_size", type=int, default=8, help="pattern tile side s (the correlation has s*s variables)")
    g.add_argument("--normalize", choices=["exposed", "frames"], default="exposed",
                   help="coded pixel = sum / exposure count (SnapPix) or sum / T")
    add_bool_arg(g, "--patch_norm_coded", default=False,
                 help="subtract each tile's long-exposure mean before the correlation (SnapPix flag)")
    g.add_argument("--init_pattern", default=None, metavar="FILE", help="start from this pattern (default: U(+-0.03))")
    g.add_argument("--objective", choices=["minibatch", "moments"], default="minibatch",
                   help="minibatch: SnapPix; moments: exact correlation over all clips seen (see docs)")
    g.add_argument("--loss", choices=sorted(LOSSES), default="mse", help="training loss on the off-diagonal r")
    g.add_argument("--moment_steps", type=int, default=200, help="optimiser steps per epoch with --objective moments")
    g.add_argument("--refine_max_flips", type=int, default=0,
                   help="after the last epoch: at most this many steepest single-bit flips on the exact objective "
                        "over all training clips seen (0 = off)")
    g.add_argument("--refine_loss", choices=sorted(LOSSES), default="l1", help="objective of the refinement")
    g.add_argument("--symmetrize", choices=list(SYMMETRIES), default="none",
                   help="average the exact moments over clip flips / 90-degree rotations (dihedral) / time "
                        "reversal (_time): exact data augmentation for --objective moments and the refinement")
    g.add_argument("--sensor_noise", default="none",
                   help="noise model during training/validation, e.g. full_well=10000,read_noise=2,adc_bits=10 "
                        "(minibatch objective only)")


def _run_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=300, help="training epochs")
    g.add_argument("--lr", type=float, default=1.5e-4, help="AdamW learning rate (not scaled by batch size)")
    g.add_argument("--wd", "--weight_decay", dest="wd", type=float, default=1.5e-4, help="AdamW weight decay")
    g.add_argument("--seed", type=int, default=0, help="seed of the initial pattern, windows and shuffling")
    g.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")

    g = p.add_argument_group("modes")
    add_bool_arg(g, "--only_run_two_baselines", default=False, help="evaluate long and short exposure, then exit")
    add_bool_arg(g, "--test_pattern", default=False, help="evaluate --pattern and write heatmap.png, then exit")
    g.add_argument("--pattern", default=None, metavar="FILE", help="pattern file for --test_pattern")

    g = p.add_argument_group("output")
    g.add_argument("--output_dir", default=None, help="patterns, log.txt, config.yaml, checkpoint-latest.pth")
    add_bool_arg(g, "--auto_resume", default=True, negative="--no_auto_resume",
                 help="continue from output_dir/checkpoint-latest.pth if present")


def build_parser() -> argparse.ArgumentParser:
    """Flags of ``run_decorrelation_training.py`` (``allow_abbrev`` off, defaults shown in ``-h``)."""
    p = argparse.ArgumentParser(
        description="SnapPix decorrelation training: learn a binary coded-exposure pattern whose coded pixels "
                    "are decorrelated (SnapPix, DAC'25).", allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arg(p)
    _data_flags(p)
    _pattern_flags(p)
    _run_flags(p)
    add_logging_args(p)
    return p


@user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point of ``run_decorrelation_training.py``; prints a JSON summary line last.

    Progress goes to the log (stdout, through :func:`snappix.engine.distributed.setup_logging`).

    Returns:
        0 on success.

    Raises:
        SystemExit: status 2 after a :class:`FlagError` (one ``error: ...`` line on stderr; ``--debug``
            or ``SNAPPIX_DEBUG=1`` lets the exception through), or for other user errors on a command-line
            run (``argv`` None; :func:`snappix.engine.cli.user_errors`).
    """
    setup_logging(0)
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        summary = run(args)
    except FlagError as exc:
        if debug_requested(argv):
            raise
        print(format_user_error(exc), file=sys.stderr, flush=True)
        raise SystemExit(USER_ERROR_STATUS) from exc
    print(json.dumps({k: v for k, v in summary.items() if isinstance(v, (int, float, str))}))
    return 0
