"""Decorrelation pattern learning: the loop behind ``run_decorrelation_training.py`` (SnapPix, DAC'25, §2).

Three modes:

* training (default): SnapPix's sequence -- evaluate the random initial pattern ("init") and a sparse
  random one, then per epoch train, evaluate, log, save the pattern; optionally finish with a greedy
  bit-flip refinement (:mod:`snappix.sensor.refine`);
* ``--only_run_two_baselines``: evaluate long and short exposure;
* ``--test_pattern --pattern FILE``: evaluate a pattern file and write ``heatmap.png`` (mean |r|).

Objective (``--objective``):

* ``minibatch`` (SnapPix): per batch of clips, correlation of the coded tile pixels pooled over the
  batch, loss = mean squared off-diagonal r (``--loss l1``: mean |r|), AdamW on the pattern logits through
  the STE;
* ``moments``: the clips of each epoch are folded into running second moments
  (:class:`snappix.sensor.moments.TileMoments`); then ``--moment_steps`` AdamW steps on the *exact*
  correlation over every clip seen so far. Same objective without mini-batch noise, and each step
  costs ~1 M multiply-adds instead of coding a batch.

The reported metric is always the mean |off-diagonal r| of the correlation pooled over *all* tiles of
*all* validation windows (:class:`snappix.sensor.decorrelation.CorrelationAccumulator`), so it does
not depend on the batch size.

Output directory: ``pattern_init.{pth,png}``, ``pattern_init_sparse.{pth,png}``, ``pattern_{epoch}.{pth,png}``
(0-based epochs, like SnapPix's pattern_0..pattern_4), ``pattern_refined.{pth,png}``, ``log.txt`` (one
JSON line per stage/epoch: ``train_loss``, ``val_mean_abs_r``, ``duty_cycle``, ``sparsity``, ...),
TensorBoard scalars in ``tb/``, ``config.yaml``, ``checkpoint-latest.pth`` (resume state, written
atomically every epoch: logits, optimiser, epoch, RNG states, moments) and, in test mode, ``heatmap.png``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from snappix.data.datasets import TooManyBadVideos
from snappix.data.lists import ListFormatError
from snappix.engine.args import add_bool_arg, add_config_arg, add_logging_args, config_dict, parse_args, save_config
from snappix.engine.checkpoint import LATEST, CheckpointError, atomic_save, load_checkpoint
from snappix.engine.cli import user_errors
from snappix.engine.decorrelation_data import (PREPROCESS_MODES, GreyClipSource, Window, list_videos,
                                               protocol_windows, train_windows)
from snappix.engine.logging import RunLogger
from snappix.engine.precision import NonFiniteLossError
from snappix.sensor import (CodedExposure, CorrelationAccumulator, PatternFileError, build_sensor, correlation_matrix,
                            decorrelation_loss, decorrelation_rows, load_pattern, mean_abs_off_diagonal,
                            save_pattern, sparse_random_pattern)
from snappix.sensor.moments import TileMoments
from snappix.sensor.noise import SensorNoise
from snappix.sensor.refine import greedy_flip_refine

log = logging.getLogger(__name__)

__all__ = ["build_parser", "evaluate", "save_heatmap", "run", "main"]

LOSSES = {"mse": decorrelation_loss, "l1": mean_abs_off_diagonal}


# ----------------------------------------------------------------------------------------------- flags
def build_parser() -> argparse.ArgumentParser:
    """Flags of ``run_decorrelation_training.py``: SnapPix's names and defaults, plus ours."""
    p = argparse.ArgumentParser(
        description="SnapPix decorrelation training: learn a binary coded-exposure pattern whose coded pixels "
                    "are decorrelated (SnapPix, DAC'25).", allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arg(p)
    g = p.add_argument_group("data")
    g.add_argument("--data_path", required=False, default=None,
                   help="training videos: a pretraining list (path 0 -1) or a folder of videos")
    g.add_argument("--val_path", default=None, help="validation videos (list or folder); default: --data_path")
    g.add_argument("--data_root", default="", help="prefix joined to the paths of the lists")
    g.add_argument("--num_frames", type=int, default=16, help="T, frames per coded image")
    g.add_argument("--sampling_rate", type=int, default=4, help="frame step of a window")
    g.add_argument("--ssv2_sampling_rate", type=int, default=None,
                   help="step for paths containing ssv2_processed/SomethingV2 (SnapPix: 2); default: no override")
    g.add_argument("--input_size", type=int, default=112, help="side of the centre crop")
    g.add_argument("--num_sample", type=int, default=1, help="random training windows per video per epoch")
    g.add_argument("--train_sampling", choices=["per_video", "per_window"], default="per_video",
                   help="per_video: --num_sample windows per video (SnapPix); per_window: --num_sample per validation "
                        "window of the video (long videos weigh as in the validation protocol)")
    g.add_argument("--val_stride", type=int, default=32,
                   help="validation window starts 0, s, 2s, ... that fit; 0 = one window per video (SnapPix)")
    g.add_argument("--preprocess", choices=PREPROCESS_MODES, default="none",
                   help="none: videos already preprocessed (grey = channel 0); snappix: raw videos -> linear grey, "
                        "short side --input_size, at load time")
    add_bool_arg(g, "--cache", default=True, negative="--no_cache", help="decode every video once into memory")
    g.add_argument("--video_backend", default=None, help="decord, pyav, ... (default: snappix.data.video's)")
    g.add_argument("--num_workers", type=int, default=2, help="threads decoding videos when filling the cache")
    g.add_argument("--max_bad_fraction", type=float, default=0.01,
                   help="stop when more than this share of the listed videos cannot be read (all are read at start-up)")
    g.add_argument("--batch_size", type=int, default=64, help="clips per step (minibatch) / per moment update")

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
    g.add_argument("--sensor_noise", default="none",
                   help="noise model during training/validation, e.g. full_well=10000,read_noise=2,adc_bits=10 "
                        "(minibatch objective only)")

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
    add_logging_args(p)
    return p


# ----------------------------------------------------------------------------------------------- helpers
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batches(items: list, size: int, drop_last: bool) -> list[list]:
    n = len(items) // size if drop_last else math.ceil(len(items) / size)
    return [items[i * size:(i + 1) * size] for i in range(n)]


@torch.no_grad()
def evaluate(sensor: torch.nn.Module, source: GreyClipSource, windows: list[Window], batch_size: int,
             tile_size: int, patch_norm: bool, device: torch.device, logger: RunLogger | None = None,
             desc: str = "val") -> tuple[float, torch.Tensor]:
    """Mean |off-diagonal r| of the coded tile pixels pooled over all tiles of all ``windows``.

    Returns:
        ``(metric, R)``: the metric in [0, 1] and the ``(s*s, s*s)`` float64 correlation matrix (CPU).
    """
    was_training = sensor.training
    sensor.eval()
    acc = CorrelationAccumulator()
    chunks = _batches(windows, batch_size, drop_last=False)
    for chunk in (logger.progress(chunks, desc=desc) if logger else chunks):
        clip = source.batch(chunk, device)
        acc.update(decorrelation_rows(sensor(clip), clip, tile_size, patch_norm))
    sensor.train(was_training)
    r = acc.correlation().cpu()
    return float(mean_abs_off_diagonal(r)), r


def save_heatmap(r: torch.Tensor, path: str, title: str) -> str:
    """PNG of ``|R|`` (colour range 0-1), as SnapPix's ``heatmap.png``; written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(r.abs().numpy(), cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="|r|")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("coded pixel in tile (row-major)")
    ax.set_ylabel("coded pixel in tile (row-major)")
    fig.tight_layout()
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), "." + os.path.basename(path) + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _pattern_record(sensor: CodedExposure) -> dict:
    duty = sensor.duty_cycle()
    return {"duty_cycle": duty, "sparsity": 1.0 - duty}


@dataclass
class _Data:
    train: GreyClipSource | None
    val: GreyClipSource
    val_windows: list[Window]


def _build_data(args: argparse.Namespace, need_train: bool) -> _Data:
    common = dict(input_size=args.input_size, preprocess=args.preprocess, cache=args.cache,
                  backend=args.video_backend, num_workers=args.num_workers, log_dir=args.output_dir,
                  max_bad_fraction=args.max_bad_fraction)
    val_path = args.val_path or args.data_path
    if val_path is None:
        raise SystemExit("error: --data_path (or --val_path) is required")
    val = GreyClipSource(list_videos(val_path, args.data_root), **common)
    train = None
    if need_train:
        if args.data_path is None:
            raise SystemExit("error: --data_path is required for training")
        same = args.val_path is None or os.path.abspath(args.val_path) == os.path.abspath(args.data_path)
        train = val if same else GreyClipSource(list_videos(args.data_path, args.data_root), **common)
    windows = protocol_windows(val, args.num_frames, args.sampling_rate, args.val_stride, args.ssv2_sampling_rate)
    return _Data(train, val, windows)


def _describe(data: _Data) -> str:
    return f"{len(data.val_windows)} validation windows from {len(data.val)} videos"


# ----------------------------------------------------------------------------------------------- modes
def _run_baselines(args, data: _Data, device, logger: RunLogger) -> dict:
    results = {}
    for name in ("long", "short"):
        sensor = build_sensor(name, num_frames=args.num_frames, tile_size=args.tile_size).to(device)
        metric, _ = evaluate(sensor, data.val, data.val_windows, args.batch_size, args.tile_size,
                             args.patch_norm_coded, device, logger, desc=name)
        results[name] = metric
        print(f"{name:>6s} exposure: val mean |r| = {metric:.4f}  ({_describe(data)})")
    logger.log_epoch(-1, stats={"stage": "baselines", "long_val_mean_abs_r": results["long"],
                                "short_val_mean_abs_r": results["short"]})
    return results


def _run_test(args, data: _Data, device, logger: RunLogger) -> dict:
    if not args.pattern:
        raise SystemExit("error: --test_pattern needs --pattern FILE")
    pattern = load_pattern(args.pattern)
    sensor = CodedExposure(args.num_frames, args.tile_size, init_pattern=pattern, trainable=False,
                           normalize=args.normalize, source=args.pattern).to(device)
    metric, r = evaluate(sensor, data.val, data.val_windows, args.batch_size, args.tile_size,
                         args.patch_norm_coded, device, logger, desc="test")
    record = {"stage": "test_pattern", "pattern": os.path.abspath(args.pattern), "val_mean_abs_r": metric,
              "windows": len(data.val_windows), **_pattern_record(sensor)}
    if args.output_dir:
        save_heatmap(r, os.path.join(args.output_dir, "heatmap.png"),
                     f"{os.path.basename(args.pattern)}: mean |off-diag r| = {metric:.4f}")
    logger.log_epoch(-1, stats=record)
    print(f"pattern {args.pattern}: val mean |r| = {metric:.4f}, duty {record['duty_cycle']:.4f}  ({_describe(data)})")
    return record


class _Trainer:
    """State of one training run (sensor, optimiser, RNGs, moments) with atomic save / resume."""

    def __init__(self, args, data: _Data, device: torch.device, logger: RunLogger):
        self.args, self.data, self.device, self.logger = args, data, device, logger
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        noise = SensorNoise.from_spec(args.sensor_noise)
        if noise is not None and args.objective == "moments":
            raise SystemExit("error: --sensor_noise needs --objective minibatch (moments assume an ideal sensor)")
        init = load_pattern(args.init_pattern) if args.init_pattern else None
        self.sensor = CodedExposure(args.num_frames, args.tile_size, init_pattern=init, trainable=True,
                                    normalize=args.normalize, noise=noise,
                                    generator=torch.Generator().manual_seed(args.seed),
                                    source=args.init_pattern or f"uniform random logits (seed {args.seed})").to(device)
        self.optimizer = torch.optim.AdamW(self.sensor.parameters(), lr=args.lr, weight_decay=args.wd)
        self.loss_fn = LOSSES[args.loss]
        needs_moments = args.objective == "moments" or args.refine_max_flips > 0
        self.moments = TileMoments(args.num_frames, args.tile_size, args.patch_norm_coded, device=device) \
            if needs_moments else None
        self.multiplicity = None
        if args.train_sampling == "per_window":
            wins = protocol_windows(data.train, args.num_frames, args.sampling_rate, args.val_stride,
                                    args.ssv2_sampling_rate)
            self.multiplicity = np.bincount([v for v, _ in wins], minlength=len(data.train)).tolist()
        self.epoch = -2          # last completed stage: -2 nothing, -1 init, k epoch k
        self.refined = False
        self.global_step = 0
        self.state_path = os.path.join(args.output_dir, LATEST) if args.output_dir else None

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {"logits": self.sensor.logits.detach().cpu(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "global_step": self.global_step, "refined": self.refined,
                "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()},
                "moments": self.moments.state_dict() if self.moments is not None else None,
                "config": config_dict(self.args)}

    def save(self) -> None:
        if self.state_path:
            atomic_save(self.state_dict(), self.state_path)

    def try_resume(self) -> bool:
        if not (self.state_path and self.args.auto_resume and os.path.isfile(self.state_path)):
            return False
        try:
            state = load_checkpoint(self.state_path)
        except CheckpointError as exc:
            raise SystemExit(f"error: cannot resume: {exc}; remove it or pass --no_auto_resume") from exc
        with torch.no_grad():
            self.sensor.logits.copy_(state["logits"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.refined = bool(state["refined"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        if self.moments is not None and state.get("moments") is not None:
            moments = dict(state["moments"])
            moments["sum"] = moments["sum"].to(self.device) if moments["sum"] is not None else None
            moments["outer"] = moments["outer"].to(self.device) if moments["outer"] is not None else None
            self.moments.load_state_dict(moments)
        print(f"resumed from {self.state_path}: last completed epoch {self.epoch}")
        return True

    # ---------------------------------------------------------------- stages
    def _val(self, desc: str) -> tuple[float, torch.Tensor]:
        a = self.args
        return evaluate(self.sensor, self.data.val, self.data.val_windows, a.batch_size, a.tile_size,
                        a.patch_norm_coded, self.device, self.logger, desc)

    def _save_pattern(self, name: str, pattern: torch.Tensor | None = None) -> None:
        if self.args.output_dir:
            save_pattern(self.sensor.get_pattern() if pattern is None else pattern,
                         os.path.join(self.args.output_dir, name))

    def init_stage(self) -> None:
        """SnapPix's "init" and "init_sparse" evaluations (before any training)."""
        a = self.args
        metric, _ = self._val("init")
        sparse = sparse_random_pattern(a.num_frames, a.tile_size, generator=torch.Generator().manual_seed(a.seed))
        probe = CodedExposure(a.num_frames, a.tile_size, init_pattern=sparse, trainable=False,
                              normalize=a.normalize).to(self.device)
        sparse_metric, _ = evaluate(probe, self.data.val, self.data.val_windows, a.batch_size, a.tile_size,
                                    a.patch_norm_coded, self.device, self.logger, "init_sparse")
        self._save_pattern("pattern_init")
        self._save_pattern("pattern_init_sparse", sparse)
        self.logger.log_epoch(-1, stats={"stage": "init", "val_mean_abs_r": metric, **_pattern_record(self.sensor),
                                         "init_sparse_val_mean_abs_r": sparse_metric,
                                         "init_sparse_sparsity": 1.0 - float(sparse.mean())})
        print(f"init: val mean |r| = {metric:.4f} (duty {self.sensor.duty_cycle():.3f}); "
              f"sparse random: {sparse_metric:.4f}; {_describe(self.data)}")
        self.epoch = -1
        self.save()

    def _step(self, loss: torch.Tensor, epoch: int) -> None:
        if not torch.isfinite(loss):
            last = self.state_path if self.state_path and os.path.isfile(self.state_path) else "none"
            raise NonFiniteLossError(f"non-finite decorrelation loss {float(loss)} at epoch {epoch}, step "
                                     f"{self.global_step}, lr {self.args.lr}; last good state: {last}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.global_step += 1

    def train_epoch(self, epoch: int) -> dict:
        a = self.args
        windows = train_windows(self.data.train, a.num_frames, a.sampling_rate, a.num_sample, self.rng,
                                a.ssv2_sampling_rate, self.multiplicity)
        order = self.rng.permutation(len(windows))
        # SnapPix drops the last incomplete batch; the moments objective has no batch statistics, so it keeps it
        batches = _batches([windows[i] for i in order], a.batch_size, drop_last=a.objective == "minibatch")
        if not batches:
            raise SystemExit(f"error: {len(windows)} training windows per epoch (videos x --num_sample) are fewer "
                             f"than --batch_size {a.batch_size}; lower the batch size or raise --num_sample")
        self.sensor.train()
        losses = []
        if a.objective == "minibatch":
            for chunk in self.logger.progress(batches, desc=f"epoch {epoch}"):
                clip = self.data.train.batch(chunk, self.device)
                coded = self.sensor(clip)
                r = correlation_matrix(decorrelation_rows(coded, clip, a.tile_size, a.patch_norm_coded))
                loss = self.loss_fn(r)
                self._step(loss, epoch)
                losses.append(loss.item())
                if self.moments is not None:
                    self.moments.update(clip)
                self.logger.scalars({"loss": losses[-1]}, self.global_step, prefix="train")
        else:
            for chunk in self.logger.progress(batches, desc=f"epoch {epoch} moments"):
                self.moments.update(self.data.train.batch(chunk, self.device))
            for _ in self.logger.progress(range(a.moment_steps), desc=f"epoch {epoch} steps"):
                loss = self.loss_fn(self.moments.correlation(self.sensor.mask(), a.normalize))
                self._step(loss, epoch)
                losses.append(loss.item())
                self.logger.scalars({"loss": losses[-1]}, self.global_step, prefix="train")
        return {"loss": float(np.mean(losses)), "windows": sum(len(b) for b in batches)}

    def refine(self) -> dict:
        """Steepest single-flip descent of the final pattern on the exact moments objective."""
        a = self.args

        def flip_losses(pattern: torch.Tensor):
            return self.moments.flip_losses(pattern, a.normalize, a.refine_loss)

        start = self.sensor.get_pattern().to(self.device)
        refined, history = greedy_flip_refine(start, flip_losses, a.refine_max_flips)
        self.sensor.set_pattern(refined)
        print(f"refine: {len(history) - 1} flips, train {a.refine_loss} {history[0]:.5f} -> {history[-1]:.5f}")
        return {"refine_loss_before": history[0], "refine_loss_after": history[-1], "flips": len(history) - 1}

    def fit(self) -> dict:
        a = self.args
        t0 = time.time()
        if not self.try_resume():
            self.init_stage()
        last = {}
        for epoch in range(self.epoch + 1, a.epochs):
            t_epoch = time.time()
            train = self.train_epoch(epoch)
            metric, _ = self._val(f"val {epoch}")
            self._save_pattern(f"pattern_{epoch}")
            last = self.logger.log_epoch(epoch, train=train, val={"mean_abs_r": metric},
                                         stats={**_pattern_record(self.sensor), "epoch_time_s": time.time() - t_epoch})
            print(f"epoch {epoch}: train {a.loss} {train['loss']:.5f}, val mean |r| {metric:.4f}, "
                  f"duty {self.sensor.duty_cycle():.3f}, {time.time() - t_epoch:.1f}s")
            self.epoch = epoch
            self.save()
        final_name = f"pattern_{a.epochs - 1}" if a.epochs > 0 else "pattern_init"
        if a.refine_max_flips > 0 and not self.refined:
            stats = self.refine()
            metric, _ = self._val("val refined")
            self._save_pattern("pattern_refined")
            last = self.logger.log_epoch(a.epochs, val={"mean_abs_r": metric},
                                         stats={"stage": "refine", **stats, **_pattern_record(self.sensor)})
            print(f"refined: val mean |r| {metric:.4f}, duty {self.sensor.duty_cycle():.3f}")
            self.refined = True
            self.save()
        if self.refined:
            final_name = "pattern_refined"
        metric, _ = self._val("final")
        elapsed = time.time() - t0
        print(f"final pattern: {final_name} -> val mean |r| = {metric:.4f}, duty {self.sensor.duty_cycle():.4f} "
              f"({_describe(self.data)}); wall time of this invocation {elapsed:.1f}s")
        return {"final_pattern": final_name, "val_mean_abs_r": metric, "wall_time_s": elapsed, **last}


# ----------------------------------------------------------------------------------------------- entry
def run(args: argparse.Namespace) -> dict:
    """Run the mode selected by ``args`` (see module docstring); returns its summary record."""
    for name in ("num_frames", "sampling_rate", "input_size", "batch_size", "tile_size", "num_sample"):
        if getattr(args, name) < 1:
            raise SystemExit(f"error: --{name} must be >= 1")
    if args.input_size % args.tile_size:
        raise SystemExit(f"error: --input_size {args.input_size} is not divisible by --tile_size {args.tile_size}")
    device = _device(args.device)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        save_config(args, args.output_dir)
    training = not (args.only_run_two_baselines or args.test_pattern)
    try:
        data = _build_data(args, need_train=training)
        with RunLogger(args.output_dir, args.log_dir, enabled=True, progress=args.progress) as logger:
            if args.only_run_two_baselines:
                return _run_baselines(args, data, device, logger)
            if args.test_pattern:
                return _run_test(args, data, device, logger)
            return _Trainer(args, data, device, logger).fit()
    except (PatternFileError, TooManyBadVideos, FileNotFoundError, ListFormatError) as exc:
        raise SystemExit(f"error: {exc}") from exc


@user_errors
def main(argv: list[str] | None = None) -> int:
    """CLI entry point of ``run_decorrelation_training.py``; prints a JSON summary line last."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parse_args(parser, argv)
    summary = run(args)
    print(json.dumps({k: v for k, v in summary.items() if isinstance(v, (int, float, str))}))
    return 0
