"""The three modes of ``run_decorrelation_training.py`` behind one call, :func:`run`.

* training (default): :class:`snappix.decorrelation.train.Trainer` (init stage, epochs, optional refinement);
* ``--only_run_two_baselines``: evaluate long and short exposure;
* ``--test_pattern --pattern FILE``: evaluate a pattern file and write ``heatmap.png`` (mean |r|).

Flags are checked first (:class:`snappix.decorrelation.errors.FlagError`), the device is resolved by
:func:`snappix.engine.distributed.resolve_device`, ``config.yaml`` is written to ``--output_dir``, and the
clips are read once (:mod:`snappix.decorrelation.data`).
"""
from __future__ import annotations

import argparse
import logging
import os

import torch

from snappix.decorrelation.data import GreyClipSource, list_videos, protocol_windows
from snappix.decorrelation.errors import FlagError
from snappix.decorrelation.evaluate import evaluate, pattern_record, save_heatmap
from snappix.decorrelation.train import DecorrelationData, Trainer
from snappix.engine.args import save_config
from snappix.engine.distributed import resolve_device
from snappix.engine.logging import RunLogger
from snappix.sensor import CodedExposure, build_sensor, load_pattern

log = logging.getLogger(__name__)

__all__ = ["check_flags", "build_data", "run_baselines", "run_test", "run"]


def check_flags(args: argparse.Namespace) -> None:
    """Refuse flag values no mode can use.

    Raises:
        FlagError: a size below 1, ``--input_size`` not a multiple of ``--tile_size``, no ``--data_path`` /
            ``--val_path``, ``--test_pattern`` without ``--pattern``, training without ``--data_path``.
    """
    for name in ("num_frames", "sampling_rate", "input_size", "batch_size", "tile_size", "num_sample"):
        if getattr(args, name) < 1:
            raise FlagError(f"--{name} must be >= 1")
    if args.input_size % args.tile_size:
        raise FlagError(f"--input_size {args.input_size} is not divisible by --tile_size {args.tile_size}")
    if (args.val_path or args.data_path) is None:
        raise FlagError("--data_path (or --val_path) is required")
    if args.test_pattern and not args.pattern:
        raise FlagError("--test_pattern needs --pattern FILE")
    if not (args.only_run_two_baselines or args.test_pattern) and args.data_path is None:
        raise FlagError("--data_path is required for training")


def build_data(args: argparse.Namespace, need_train: bool) -> DecorrelationData:
    """Read the validation videos (``--val_path``, default ``--data_path``) and, for training, the training ones.

    Raises:
        FileNotFoundError, snappix.data.lists.ListFormatError: a missing or malformed list / folder.
        snappix.data.bad_videos.TooManyBadVideos: too many unreadable videos.
    """
    common = dict(input_size=args.input_size, preprocess=args.preprocess, cache=args.cache,
                  backend=args.video_backend, num_workers=args.num_workers, log_dir=args.output_dir,
                  max_bad_fraction=args.max_bad_fraction)

    def source(path: str) -> GreyClipSource:
        return GreyClipSource(list_videos(path, args.data_root, args.allow_outside_root), **common)

    val = source(args.val_path or args.data_path)
    train = None
    if need_train:
        same = args.val_path is None or os.path.abspath(args.val_path) == os.path.abspath(args.data_path)
        train = val if same else source(args.data_path)
    windows = protocol_windows(val, args.num_frames, args.sampling_rate, args.val_stride, args.ssv2_sampling_rate)
    return DecorrelationData(train, val, windows)


def run_baselines(args: argparse.Namespace, data: DecorrelationData, device: torch.device,
                  logger: RunLogger) -> dict:
    """Mean |r| of long and short exposure: ``{"long": float, "short": float}`` (also one log.txt line)."""
    results = {}
    for name in ("long", "short"):
        sensor = build_sensor(name, num_frames=args.num_frames, tile_size=args.tile_size).to(device)
        metric, _ = evaluate(sensor, data.val, data.val_windows, args.batch_size, args.tile_size,
                             args.patch_norm_coded, device, logger, desc=name)
        results[name] = metric
        log.info("%6s exposure: val mean |r| = %.4f  (%s)", name, metric, data.describe())
    logger.log_epoch(-1, stats={"stage": "baselines", "long_val_mean_abs_r": results["long"],
                                "short_val_mean_abs_r": results["short"]})
    return results


def run_test(args: argparse.Namespace, data: DecorrelationData, device: torch.device, logger: RunLogger) -> dict:
    """Mean |r| of the pattern file ``--pattern``; writes ``heatmap.png`` into ``--output_dir`` if given.

    Raises:
        snappix.sensor.PatternFileError: the file is missing or holds no binary pattern.
    """
    pattern = load_pattern(args.pattern)
    sensor = CodedExposure(args.num_frames, args.tile_size, init_pattern=pattern, trainable=False,
                           normalize=args.normalize, source=args.pattern).to(device)
    metric, r = evaluate(sensor, data.val, data.val_windows, args.batch_size, args.tile_size,
                         args.patch_norm_coded, device, logger, desc="test")
    record = {"stage": "test_pattern", "pattern": os.path.abspath(args.pattern), "val_mean_abs_r": metric,
              "windows": len(data.val_windows), **pattern_record(sensor)}
    if args.output_dir:
        save_heatmap(r, os.path.join(args.output_dir, "heatmap.png"),
                     f"{os.path.basename(args.pattern)}: mean |off-diag r| = {metric:.4f}")
    logger.log_epoch(-1, stats=record)
    log.info("pattern %s: val mean |r| = %.4f, duty %.4f  (%s)", args.pattern, metric, record["duty_cycle"],
             data.describe())
    return record


def run(args: argparse.Namespace) -> dict:
    """Run the mode selected by ``args`` (module docstring); returns its summary record.

    Raises:
        FlagError: see :func:`check_flags`, an unavailable ``--device``, fewer training windows than a batch.
        snappix.errors.UserError: unreadable data, pattern or resume checkpoint (the message names it).
    """
    check_flags(args)
    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        raise FlagError(str(exc)) from exc
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        save_config(args, args.output_dir)
    training = not (args.only_run_two_baselines or args.test_pattern)
    data = build_data(args, need_train=training)
    with RunLogger(args.output_dir, args.log_dir, enabled=True, progress=args.progress) as logger:
        if args.only_run_two_baselines:
            return run_baselines(args, data, device, logger)
        if args.test_pattern:
            return run_test(args, data, device, logger)
        return Trainer(args, data, device, logger).fit()
