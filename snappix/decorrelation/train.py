"""Training of the coded-exposure pattern by decorrelation (SnapPix, https://arxiv.org/abs/2504.04535).

One :class:`Trainer` holds a run's state: the trainable sensor (pattern logits behind a straight-through
estimator), its AdamW optimiser, the window RNG, the exact second moments when needed, and the stage
reached. :meth:`Trainer.fit` runs SnapPix's sequence -- evaluate the random initial pattern ("init") and
a sparse random one, then per epoch train, evaluate, log, save the pattern -- and optionally a greedy
bit-flip refinement at the end. The resume state goes to ``output_dir/checkpoint-latest.pth`` after every
stage through :func:`snappix.engine.checkpoint.atomic_save` (see ``docs/methods/snappix.md`` section 2
for the objectives).
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from snappix.decorrelation.data import GreyClipSource, Window, protocol_windows, train_windows
from snappix.decorrelation.evaluate import batches, evaluate, pattern_record
from snappix.decorrelation.errors import FlagError
from snappix.engine.args import config_dict
from snappix.engine.checkpoint import LATEST, CheckpointError, atomic_save, load_checkpoint
from snappix.engine.logging import RunLogger
from snappix.engine.precision import NonFiniteLossError
from snappix.sensor import (CodedExposure, correlation_matrix, decorrelation_loss, decorrelation_rows, load_pattern,
                            mean_abs_off_diagonal, save_pattern, sparse_random_pattern)
from snappix.sensor.moments import TileMoments
from snappix.sensor.noise import SensorNoise
from snappix.sensor.refine import greedy_flip_refine

log = logging.getLogger(__name__)

__all__ = ["LOSSES", "DecorrelationData", "Trainer"]

#: ``--loss`` / ``--refine_loss`` name -> loss of a correlation matrix (mean squared / mean absolute off-diagonal r)
LOSSES = {"mse": decorrelation_loss, "l1": mean_abs_off_diagonal}


@dataclass
class DecorrelationData:
    """The clips of a run: training source (None outside training), validation source and its windows."""

    train: GreyClipSource | None
    val: GreyClipSource
    val_windows: list[Window]

    def describe(self) -> str:
        """``"<n> validation windows from <m> videos"``."""
        return f"{len(self.val_windows)} validation windows from {len(self.val)} videos"


class Trainer:
    """State of one training run (sensor, optimiser, RNGs, moments) with atomic save / resume.

    Args:
        args: the parsed flags of ``run_decorrelation_training.py``.
        data: the clips; ``data.train`` must be set.
        device: where clips are coded.
        logger: ``log.txt``, TensorBoard and progress bars.

    Raises:
        FlagError: ``--sensor_noise`` with ``--objective moments``; ``--symmetrize`` without moments.
        snappix.sensor.PatternFileError: an unreadable ``--init_pattern``.
    """

    def __init__(self, args: argparse.Namespace, data: DecorrelationData, device: torch.device, logger: RunLogger):
        self.args, self.data, self.device, self.logger = args, data, device, logger
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        noise = SensorNoise.from_spec(args.sensor_noise)
        if noise is not None and args.objective == "moments":
            raise FlagError("--sensor_noise needs --objective minibatch (moments assume an ideal sensor)")
        init = load_pattern(args.init_pattern) if args.init_pattern else None
        self.sensor = CodedExposure(args.num_frames, args.tile_size, init_pattern=init, trainable=True,
                                    normalize=args.normalize, noise=noise,
                                    generator=torch.Generator().manual_seed(args.seed),
                                    source=args.init_pattern or f"uniform random logits (seed {args.seed})").to(device)
        self.optimizer = torch.optim.AdamW(self.sensor.parameters(), lr=args.lr, weight_decay=args.wd)
        self.loss_fn = LOSSES[args.loss]
        needs_moments = args.objective == "moments" or args.refine_max_flips > 0
        symmetry = getattr(args, "symmetrize", "none")
        if symmetry != "none" and not needs_moments:
            raise FlagError("--symmetrize needs --objective moments or --refine_max_flips > 0")
        self.moments = TileMoments(args.num_frames, args.tile_size, args.patch_norm_coded, device=device,
                                   symmetry=symmetry) if needs_moments else None
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
        """Plain-data resume state: logits ``(1, T, s, s)`` float32, optimiser, stage, RNGs, moments, flags."""
        return {"logits": self.sensor.logits.detach().cpu(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "global_step": self.global_step, "refined": self.refined,
                "rng": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state()},
                "moments": self.moments.state_dict() if self.moments is not None else None,
                "config": config_dict(self.args)}

    def save(self) -> None:
        """Write :meth:`state_dict` atomically to ``output_dir/checkpoint-latest.pth`` (no-op without one)."""
        if self.state_path:
            atomic_save(self.state_dict(), self.state_path)

    def try_resume(self) -> bool:
        """Load ``checkpoint-latest.pth`` when ``--auto_resume`` and it exists; True when resumed.

        Raises:
            CheckpointError: the file is there but cannot be read.
        """
        if not (self.state_path and self.args.auto_resume and os.path.isfile(self.state_path)):
            return False
        try:
            state = load_checkpoint(self.state_path)
        except CheckpointError as exc:
            raise CheckpointError(f"cannot resume: {exc}; remove it or pass --no_auto_resume") from exc
        with torch.no_grad():
            self.sensor.logits.copy_(state["logits"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.refined = bool(state["refined"])
        self.rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        if self.moments is not None and state.get("moments") is not None:
            moments = dict(state["moments"])
            for key in ("sum", "outer"):
                moments[key] = moments[key].to(self.device) if moments[key] is not None else None
            self.moments.load_state_dict(moments)
        log.info("resumed from %s: last completed epoch %d", self.state_path, self.epoch)
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
        self.logger.log_epoch(-1, stats={"stage": "init", "val_mean_abs_r": metric, **pattern_record(self.sensor),
                                         "init_sparse_val_mean_abs_r": sparse_metric,
                                         "init_sparse_sparsity": 1.0 - float(sparse.mean())})
        log.info("init: val mean |r| = %.4f (duty %.3f); sparse random: %.4f; %s", metric,
                 self.sensor.duty_cycle(), sparse_metric, self.data.describe())
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

    def _epoch_batches(self) -> list[list[Window]]:
        a = self.args
        windows = train_windows(self.data.train, a.num_frames, a.sampling_rate, a.num_sample, self.rng,
                                a.ssv2_sampling_rate, self.multiplicity)
        order = self.rng.permutation(len(windows))
        # SnapPix drops the last incomplete batch; the moments objective has no batch statistics, so it keeps it
        out = batches([windows[i] for i in order], a.batch_size, drop_last=a.objective == "minibatch")
        if not out:
            raise FlagError(f"{len(windows)} training windows per epoch (videos x --num_sample) are fewer "
                              f"than --batch_size {a.batch_size}; lower the batch size or raise --num_sample")
        return out

    def train_epoch(self, epoch: int) -> dict:
        """One epoch of the selected objective; returns ``{"loss": mean loss, "windows": clips used}``.

        Raises:
            FlagError: fewer training windows than one batch; NonFiniteLossError: a NaN/inf loss.
        """
        a = self.args
        chunks = self._epoch_batches()
        self.sensor.train()
        losses = []
        if a.objective == "minibatch":
            for chunk in self.logger.progress(chunks, desc=f"epoch {epoch}"):
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
            for chunk in self.logger.progress(chunks, desc=f"epoch {epoch} moments"):
                self.moments.update(self.data.train.batch(chunk, self.device))
            for _ in self.logger.progress(range(a.moment_steps), desc=f"epoch {epoch} steps"):
                loss = self.loss_fn(self.moments.correlation(self.sensor.mask(), a.normalize))
                self._step(loss, epoch)
                losses.append(loss.item())
                self.logger.scalars({"loss": losses[-1]}, self.global_step, prefix="train")
        return {"loss": float(np.mean(losses)), "windows": sum(len(b) for b in chunks)}

    def refine(self) -> dict:
        """Steepest single-flip descent of the final pattern on the exact moments objective."""
        a = self.args

        def flip_losses(pattern: torch.Tensor):
            return self.moments.flip_losses(pattern, a.normalize, a.refine_loss)

        start = self.sensor.get_pattern().to(self.device)
        refined, history = greedy_flip_refine(start, flip_losses, a.refine_max_flips)
        self.sensor.set_pattern(refined)
        log.info("refine: %d flips, train %s %.5f -> %.5f", len(history) - 1, a.refine_loss, history[0], history[-1])
        return {"refine_loss_before": history[0], "refine_loss_after": history[-1], "flips": len(history) - 1}

    def _refine_stage(self) -> dict:
        a = self.args
        stats = self.refine()
        metric, _ = self._val("val refined")
        self._save_pattern("pattern_refined")
        record = self.logger.log_epoch(a.epochs, val={"mean_abs_r": metric},
                                       stats={"stage": "refine", **stats, **pattern_record(self.sensor)})
        log.info("refined: val mean |r| %.4f, duty %.3f", metric, self.sensor.duty_cycle())
        self.refined = True
        self.save()
        return record

    def fit(self) -> dict:
        """Resume or run the init stage, train the remaining epochs, refine if asked, evaluate the final pattern.

        Returns:
            ``{"final_pattern": name, "val_mean_abs_r": metric, "wall_time_s": s, ...last log record}``.
        """
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
                                         stats={**pattern_record(self.sensor), "epoch_time_s": time.time() - t_epoch})
            log.info("epoch %d: train %s %.5f, val mean |r| %.4f, duty %.3f, %.1fs", epoch, a.loss, train["loss"],
                     metric, self.sensor.duty_cycle(), time.time() - t_epoch)
            self.epoch = epoch
            self.save()
        final_name = f"pattern_{a.epochs - 1}" if a.epochs > 0 else "pattern_init"
        if a.refine_max_flips > 0 and not self.refined:
            last = self._refine_stage()
        if self.refined:
            final_name = "pattern_refined"
        metric, _ = self._val("final")
        elapsed = time.time() - t0
        log.info("final pattern: %s -> val mean |r| = %.4f, duty %.4f (%s); wall time of this invocation %.1fs",
                 final_name, metric, self.sensor.duty_cycle(), self.data.describe(), elapsed)
        return {"final_pattern": final_name, "val_mean_abs_r": metric, "wall_time_s": elapsed, **last}
