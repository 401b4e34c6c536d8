"""The training and evaluation loops, shared by every method.

The loop knows nothing about the method: it moves the batch to the device, calls
``model(batch["video"], **{k: batch[k] for k in model_inputs if k in batch})`` (pretraining models
get ``encoder_mask`` / ``decoder_mask`` when the data layer produced them, classifiers get the video
only), hands ``(outputs, batch)`` to the objective, and steps the optimiser.

Per optimiser step ``s`` (global, 0-based) every parameter group gets
``lr = lr_schedule[s] * group["lr_scale"]`` and ``weight_decay = wd_schedule[s] * group["wd_scale"]``.
With ``acc_iters > 1`` each micro-batch loss is divided by ``acc_iters``, gradients accumulate (DDP
skips the all-reduce on non-final micro-batches via ``no_sync``), and the optimiser steps every
``acc_iters`` micro-batches; the lr is set once per update (SnapPix re-set it every micro-step through
an operator-precedence slip, defect §11.11).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .distributed import all_reduce_mean, all_reduce_sum, get_rank, is_dist_avail_and_initialized
from .faults import inject
from .loader_guard import check_bad_videos_all_ranks, loader_errors
from .logging import MetricMeter, RunLogger
from .optim import set_lr_wd
from .precision import LossScaler, autocast, check_finite

log = logging.getLogger(__name__)

#: batch keys passed to the model as keyword arguments when present
MODEL_INPUTS = ("encoder_mask", "decoder_mask")

Objective = Callable[[Any, Mapping[str, Any]], "tuple[torch.Tensor, dict[str, float]]"]
#: ``batch -> batch`` hook run on the device before the forward pass (training only), e.g. mixup
BatchTransform = Callable[[dict], dict]


def move_to_device(batch: Mapping[str, Any], device: torch.device | str, non_blocking: bool = True) -> dict:
    """Tensors of ``batch`` on ``device`` (``non_blocking`` copies from pinned memory); other values as is."""
    return {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def forward(model: nn.Module, batch: Mapping[str, Any], model_inputs: Sequence[str] = MODEL_INPUTS) -> Any:
    """``model(batch["video"], **present model_inputs)``."""
    return model(batch["video"], **{k: batch[k] for k in model_inputs if k in batch})


def _synced_clock(device: torch.device | str) -> float:
    """``time.perf_counter()`` after the device's queued work has finished (CUDA runs asynchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _batch_size(batch: Mapping[str, Any]) -> int:
    return int(batch["video"].shape[0])


def _substituted(batch: Mapping[str, Any]) -> int:
    sub = batch.get("substituted")
    if sub is None:
        return 0
    return int(torch.as_tensor(sub).sum().item())


class NonFiniteBudget:
    """How many optimiser steps with a NaN/inf loss may be skipped over a run (``--skip_nonfinite N``).

    Attributes:
        limit: the allowed number of skipped steps (0: none; the first non-finite loss stops the run).
        used: steps skipped so far (restored from the checkpoint on resume).
        events: ``(epoch, step, lr, loss)`` of each step skipped in this process.
    """

    def __init__(self, limit: int = 0, used: int = 0):
        if limit < 0:
            raise ValueError(f"--skip_nonfinite must be >= 0, got {limit}")
        self.limit, self.used = int(limit), int(used)
        self.events: list[tuple[int, int, float, float]] = []

    def take(self, loss: float, epoch: int, step: int, lr: float) -> bool:
        """Spend one skip on this step (logging it) and return True, or False when none is left."""
        if self.used >= self.limit:
            return False
        self.used += 1
        self.events.append((epoch, step, lr, loss))
        log.warning("loss is %s at epoch %d, optimizer step %d (lr %.4g): step skipped, %d of --skip_nonfinite %d "
                    "used", loss, epoch, step, lr, self.used, self.limit)
        return True

    def exhausted_note(self) -> str:
        return (f" --skip_nonfinite {self.limit}: all {self.used} allowed skips were used." if self.limit else "")


def _agreed_loss(loss: torch.Tensor) -> float:
    """``float(loss)``, or NaN on every rank when the loss of any rank is NaN/inf (so all ranks skip or
    stop together instead of some waiting in a collective)."""
    value = float(loss.detach().float().item())
    if is_dist_avail_and_initialized():
        bad = all_reduce_sum(0.0 if math.isfinite(value) else 1.0)
        if bad and math.isfinite(value):
            return float("nan")
    return value


def _lr_range(optimizer: torch.optim.Optimizer) -> tuple[float, float, float]:
    lrs = [g["lr"] for g in optimizer.param_groups]
    wds = [g["weight_decay"] for g in optimizer.param_groups if g.get("weight_decay", 0) > 0]
    return max(lrs), min(lrs), (max(wds) if wds else 0.0)


def train_one_epoch(model: nn.Module, objective: Objective, loader: Iterable, optimizer: torch.optim.Optimizer,
                    device: torch.device | str, epoch: int, lr_schedule: Sequence[float] | np.ndarray,
                    wd_schedule: Sequence[float] | np.ndarray | None = None, steps_per_epoch: int | None = None,
                    precision: str = "bf16", acc_iters: int = 1, clip_grad: float | None = None,
                    logger: RunLogger | None = None, scaler: LossScaler | None = None,
                    last_checkpoint: str | None = None, model_inputs: Sequence[str] = MODEL_INPUTS,
                    log_every: int = 1, batch_transform: BatchTransform | None = None,
                    skip_nonfinite: "NonFiniteBudget | int | None" = None) -> dict[str, float]:
    """Train for one epoch of ``steps_per_epoch`` optimiser steps.

    Args:
        model: the model, possibly wrapped in DDP (or a DeepSpeed engine with a
            :class:`~snappix.engine.deepspeed_utils.DeepSpeedScaler`).
        objective: ``objective(outputs, batch) -> (scalar loss tensor, {name: float})``.
        loader: yields batch dicts with ``video`` float ``(B, C, T, H, W)`` and optional masks,
            ``label``, ``index``, ``substituted`` (bool ``(B,)``).
        epoch: 0-based epoch; the global step is ``epoch * steps_per_epoch + step``.
        lr_schedule, wd_schedule: one value per global optimiser step (:mod:`.schedules`).
        steps_per_epoch: optimiser steps per epoch; default ``len(loader) // acc_iters``. The epoch
            stops after ``steps_per_epoch * acc_iters`` micro-batches.
        precision: ``bf16`` / ``fp16`` / ``fp32`` autocast (:mod:`.precision`).
        acc_iters: micro-batches per optimiser step.
        clip_grad: max gradient norm (``None``: no clipping; the norm is still logged).
        logger: TensorBoard/progress (rank-0 no-op elsewhere); ``None`` = silent.
        scaler: backward/step helper, kept across epochs (its fp16 loss scale is checkpointed);
            default a fresh :class:`LossScaler` for ``precision``.
        model_inputs: batch keys passed to the model as keyword arguments when present.
        log_every: TensorBoard per-step scalars every N optimiser steps.
        last_checkpoint: path quoted if the loss becomes non-finite.
        batch_transform: optional ``batch -> batch`` applied on the device before the forward pass
            (outside autocast), e.g. :meth:`snappix.data.mixup.VideoMixup.batch_transform`, which mixes
            the raw clip and adds a soft ``target`` (mixup before the sensor, which is inside the model).
        skip_nonfinite: a :class:`NonFiniteBudget` shared across epochs (``--skip_nonfinite N``), or an int
            limit for this call; ``None``/0: the first non-finite loss stops the run. A skipped step runs
            no backward, drops the step's accumulated gradients, does not step the optimiser, and is
            logged (warning with epoch, step, lr); the schedule still advances.

    Returns:
        epoch means over all ranks: ``loss`` and the objective's metrics (weighted by batch size),
        ``grad_norm`` (finite steps only); plus ``lr`` / ``min_lr`` / ``weight_decay`` of the last step, ``loss_scale``,
        ``clips_per_s`` (all ranks), ``data_time_frac``, ``transform_time_frac`` (share of the epoch spent in
        ``batch_transform``, e.g. a frozen teacher's forward pass), ``substituted`` (clips the data layer
        replaced, summed over ranks), ``steps``, ``skipped_steps`` (non-finite gradients: fp16
        overflow), ``nonfinite_skipped`` (steps skipped for a non-finite loss), and ``global_step`` (the
        next step index).

    Raises:
        NonFiniteLossError: NaN/inf loss on any rank (all ranks raise together) beyond the
            ``skip_nonfinite`` budget; raised before its backward, the weights stay as they were.
        DataLoaderError: a DataLoader worker died or hung past the loader's ``timeout``; the message
            names the items the workers were loading.
        TooManyBadVideos: too many unreadable videos, over all workers (during the epoch) or all ranks
            (at its end, every rank together); see :mod:`snappix.data.bad_videos`.
    """
    if acc_iters < 1:
        raise ValueError(f"acc_iters must be >= 1, got {acc_iters}")
    model.train(True)
    scaler = scaler or LossScaler(precision, device)
    if steps_per_epoch is None:
        steps_per_epoch = len(loader) // acc_iters  # type: ignore[arg-type]
    if steps_per_epoch <= 0:
        raise ValueError(f"no optimiser step per epoch: {len(loader)} batches < acc_iters={acc_iters}")  # type: ignore[arg-type]
    logger = logger or RunLogger(None, enabled=False)
    budget = skip_nonfinite if isinstance(skip_nonfinite, NonFiniteBudget) else NonFiniteBudget(skip_nonfinite or 0)
    run = _Step(model, objective, optimizer, device, precision, acc_iters, clip_grad, scaler, model_inputs,
                batch_transform, budget, last_checkpoint, epoch)
    tally = _Tally()
    micro_total = steps_per_epoch * acc_iters
    scaler.zero_grad(optimizer)
    start = last = time.perf_counter()
    bar = logger.progress_bar(total=micro_total, desc=f"epoch {epoch}")
    with loader_errors(loader):
        iterator = iter(loader)
        for micro in range(micro_total):
            try:
                batch = next(iterator)
            except StopIteration:
                break
            tally.data_time += time.perf_counter() - last
            step = micro // acc_iters
            global_step = epoch * steps_per_epoch + step
            update = (micro + 1) % acc_iters == 0
            if micro % acc_iters == 0:
                run.start_update(global_step, lr_schedule, wd_schedule)
            inject("train_step", epoch=epoch, step=global_step, rank=get_rank())  # tests only; no-op
            if not run.dropped:
                run.micro_step(batch, global_step, update, tally)
            if update:
                run.finish_update(step, global_step, tally, logger, bar, log_every)
            if bar is not None:
                bar.update(1)
            last = time.perf_counter()
    if bar is not None:
        bar.close()
    check_bad_videos_all_ranks(getattr(loader, "dataset", None))
    if tally.done < steps_per_epoch:
        log.warning("epoch %d: the loader ended after %d of %d optimiser steps", epoch, tally.done, steps_per_epoch)
        scaler.zero_grad(optimizer)  # drop a partial accumulation
    return _epoch_stats(run, tally, time.perf_counter() - start, epoch, steps_per_epoch, logger)


class _Tally:
    """What an epoch counts: metric means, clips, substitutions, skipped steps, data-loading time."""

    def __init__(self):
        self.meter, self.step_meter = MetricMeter(), MetricMeter()
        self.clips = self.substituted = self.skipped = self.done = self.nonfinite_skipped = 0
        self.data_time = 0.0
        self.transform_time = 0.0  # the batch transform's share (a frozen teacher, mixup)
        self.update_losses: list[float] = []


class _Step:
    """One optimiser update of :func:`train_one_epoch`: lr / wd set once, micro-batches forward and
    backward (with the batch transform, autocast, accumulation and the non-finite budget), then logging."""

    def __init__(self, model, objective, optimizer, device, precision, acc_iters, clip_grad, scaler, model_inputs,
                 batch_transform, budget, last_checkpoint, epoch):
        self.model, self.objective, self.optimizer, self.device = model, objective, optimizer, device
        self.precision, self.acc_iters, self.clip_grad, self.scaler = precision, acc_iters, clip_grad, scaler
        self.model_inputs, self.batch_transform, self.budget = model_inputs, batch_transform, budget
        self.last_checkpoint, self.epoch = last_checkpoint, epoch
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.lr = self.wd = self.min_lr = 0.0
        self.dropped = False  # the current optimiser step was dropped: a skipped non-finite loss
        self.norm: float | None = None
        self.metrics: dict = {}

    def start_update(self, global_step: int, lr_schedule, wd_schedule) -> None:
        self.dropped = False
        i = min(global_step, len(lr_schedule) - 1)
        set_lr_wd(self.optimizer, float(lr_schedule[i]), None if wd_schedule is None else float(wd_schedule[i]))
        self.lr, self.min_lr, self.wd = _lr_range(self.optimizer)

    def micro_step(self, batch, global_step: int, update: bool, tally: _Tally) -> None:
        batch = move_to_device(batch, self.device)
        if self.batch_transform is not None:
            start = _synced_clock(self.device)
            batch = self.batch_transform(batch)
            tally.transform_time += _synced_clock(self.device) - start
        with self.scaler.accumulation_context(self.model, update):
            with autocast(self.device, self.precision):
                outputs = forward(self.model, batch, self.model_inputs)
                loss, metrics = self.objective(outputs, batch)
            loss_value = _agreed_loss(loss)
            if math.isfinite(loss_value):
                self.norm = self.scaler(loss / self.acc_iters, self.optimizer, self.params, clip_grad=self.clip_grad,
                                        update=update)
            elif self.budget.take(loss_value, self.epoch, global_step, self.lr):
                self.dropped = True  # no backward; the step's accumulated gradients are dropped
                self.scaler.zero_grad(self.optimizer)
            else:
                check_finite(loss_value, epoch=self.epoch, step=global_step, lr=self.lr,
                             last_checkpoint=self.last_checkpoint, note=self.budget.exhausted_note())
        if not self.dropped:
            n = _batch_size(batch)
            tally.clips += n
            tally.substituted += _substituted(batch)
            self.metrics = metrics or {}
            tally.meter.update(n=n, **{**self.metrics, "loss": loss_value})
            tally.update_losses.append(loss_value)

    def finish_update(self, step: int, global_step: int, tally: _Tally, logger: RunLogger, bar, log_every: int) -> None:
        self.scaler.zero_grad(self.optimizer)
        tally.done += 1
        norm = self.norm
        if self.dropped:
            tally.nonfinite_skipped += 1
        elif norm is not None and math.isfinite(norm):
            tally.step_meter.update(grad_norm=norm)
        else:  # fp16 overflow: the GradScaler skipped this step
            tally.skipped += 1
        if (step + 1) % log_every == 0 and not self.dropped:
            logger.scalars({**self.metrics, "loss": float(np.mean(tally.update_losses))}, global_step, "train")
            logger.scalars({"lr": self.lr, "min_lr": self.min_lr, "weight_decay": self.wd, "grad_norm": norm,
                            "loss_scale": self.scaler.loss_scale}, global_step, "opt")
        tally.update_losses.clear()
        if bar is not None:
            bar.set_postfix_str(f"loss {tally.meter.smoothed().get('loss', float('nan')):.4f} lr {self.lr:.3e}",
                                refresh=False)


def _epoch_stats(run: _Step, tally: _Tally, elapsed: float, epoch: int, steps_per_epoch: int,
                 logger: RunLogger) -> dict[str, float]:
    """The epoch's means over all ranks (see :func:`train_one_epoch`), also sent to TensorBoard."""
    elapsed = max(elapsed, 1e-9)
    tally.meter.synchronize()
    tally.step_meter.synchronize()
    stats = {**tally.meter.averages(), **tally.step_meter.averages(), "lr": run.lr, "min_lr": run.min_lr,
             "weight_decay": run.wd, "loss_scale": run.scaler.loss_scale,
             "clips_per_s": all_reduce_sum(float(tally.clips)) / all_reduce_mean(elapsed),
             "data_time_frac": all_reduce_mean(tally.data_time / elapsed),
             "transform_time_frac": all_reduce_mean(tally.transform_time / elapsed),
             "substituted": int(all_reduce_sum(float(tally.substituted))),
             "steps": tally.done, "skipped_steps": tally.skipped, "nonfinite_skipped": tally.nonfinite_skipped,
             "global_step": epoch * steps_per_epoch + tally.done}
    logger.scalars({k: stats[k] for k in ("clips_per_s", "data_time_frac", "transform_time_frac")}, epoch, "perf")
    logger.scalars({"substituted": stats["substituted"]}, epoch, "data")
    return stats


@torch.no_grad()
def evaluate(model: nn.Module, objective: Objective, loader: Iterable, device: torch.device | str,
             precision: str = "bf16", logger: RunLogger | None = None, desc: str = "eval",
             model_inputs: Sequence[str] = MODEL_INPUTS, max_batches: int | None = None,
             batch_transform: Callable[[dict], dict] | None = None) -> dict[str, float]:
    """Run ``objective`` over ``loader`` without gradients; return batch-size-weighted means over all ranks.

    ``batch_transform``: optional ``batch -> batch`` applied on the device before the forward pass (outside
    autocast), as in training (e.g. a frozen teacher that adds targets and the mask).

    Returns:
        ``{"loss": ..., <objective metrics>..., "substituted": int}`` (e.g. ``psnr`` for the
        reconstruction study, ``acc1``/``acc5`` for a classification objective).
    """
    was_training = model.training
    model.eval()
    meter = MetricMeter()
    substituted = 0
    logger = logger or RunLogger(None, enabled=False)
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    if max_batches is not None and total is not None:
        total = min(total, max_batches)
    with loader_errors(loader):
        for i, batch in enumerate(logger.progress(loader, total=total, desc=desc)):
            if max_batches is not None and i >= max_batches:
                break
            batch = move_to_device(batch, device)
            if batch_transform is not None:
                batch = batch_transform(batch)
            with autocast(device, precision):
                outputs = forward(model, batch, model_inputs)
                loss, metrics = objective(outputs, batch)
            meter.update(n=_batch_size(batch), **{**(metrics or {}), "loss": loss})
            substituted += _substituted(batch)
    check_bad_videos_all_ranks(getattr(loader, "dataset", None))
    meter.synchronize()
    model.train(was_training)
    return {**meter.averages(), "substituted": int(all_reduce_sum(float(substituted)))}
