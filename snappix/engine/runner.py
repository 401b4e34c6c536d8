"""One training driver for every method: loaders, optimiser, schedules, resume, epochs, checkpoints.

Entry points call :func:`start_run` (distributed set-up, precision, output folder, seed, config), build
the method's plug (:class:`snappix.engine.method.Method`, from :mod:`snappix.methods`) and call
:func:`fit`; everything else -- distributed sampler, lr scaling, warmup + cosine or multi-step
schedules, AdamW / SGD groups, DDP or DeepSpeed, auto-resume, the epoch loop, the method's hooks,
periodic evaluation, atomic checkpoints (model, optimiser and the objective's state), ``log.txt`` and
TensorBoard -- happens here, the same way for every method.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from . import args as A
from . import checkpoint as C
from . import distributed as D
from . import optim as O
from . import precision as P
from . import schedules as S
from .method import EvalFn, Method, check_objective  # noqa: F401  (EvalFn: the evaluate hook's type)
from .loader_guard import TrackedDataset
from .logging import RunLogger, rewind_log
from .loop import NonFiniteBudget, train_one_epoch

log = logging.getLogger(__name__)

def start_run(args: argparse.Namespace, prog: str, evaluation: bool = False) -> D.DistInfo:
    """The prologue every entry point shares, after parsing and the data check.

    Initialises the process group and device (``--device``, ``--local_rank``, ``--dist_url``), resolves
    ``--precision auto`` once, gives a run without ``--output_dir`` ``outputs/<prog>-<time>``, seeds every
    RNG with ``seed + rank``, creates the folder and writes ``config.yaml`` (``eval_config.yaml`` when
    ``evaluation``). Returns the :class:`~snappix.engine.distributed.DistInfo`.
    """
    info = D.init_distributed(args.device, args.local_rank, args.dist_url)
    args.precision = P.resolve_precision(args.precision, info.device)  # auto -> bf16 / fp32, said once
    A.default_output_dir(args, prog)
    D.seed_everything(args.seed)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    A.save_config(args, args.output_dir, evaluation=evaluation)
    return info


def _seed_worker(worker_id: int) -> None:
    import random

    import numpy as np

    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(dataset: Dataset, args: argparse.Namespace, info: D.DistInfo, train: bool = True,
                 collate_fn: Callable | None = None, batch_size: int | None = None) -> tuple[DataLoader, Any]:
    """DataLoader over a ``DistributedSampler`` (also with one process).

    Training shuffles with ``seed + epoch`` (``sampler.set_epoch``) and drops the last partial batch;
    the permutation does not depend on the number of processes, so ``N`` processes with batch ``B``
    see the same clips per step as one process with batch ``N * B``.

    With workers, the dataset is wrapped in a :class:`~snappix.engine.loader_guard.TrackedDataset`
    (attributes fall through to it) so that a worker that dies or hangs longer than
    ``args.loader_timeout`` seconds (0: no limit) is reported with the item it was loading
    (:class:`~snappix.engine.loader_guard.DataLoaderError`, raised by the training / evaluation loops).

    Returns:
        ``(loader, sampler)``.
    """
    sampler = DistributedSampler(dataset, info.world_size, info.rank, shuffle=train, seed=args.seed,
                                 drop_last=train)
    generator = torch.Generator().manual_seed(args.seed + info.rank)  # re-seeded per epoch by fit()
    workers = args.num_workers
    timeout = float(getattr(args, "loader_timeout", 0) or 0) if workers > 0 else 0.0
    if timeout < 0:
        raise ValueError(f"--loader_timeout must be >= 0 seconds (0: no limit), got {timeout:g}")
    loader = DataLoader(TrackedDataset(dataset, workers) if workers > 0 else dataset,
                        batch_size=batch_size or args.batch_size, sampler=sampler,
                        num_workers=workers, pin_memory=args.pin_mem and info.device.type == "cuda",
                        drop_last=train, collate_fn=collate_fn, worker_init_fn=_seed_worker, generator=generator,
                        timeout=timeout)
    return loader, sampler


def check_warmup(args: argparse.Namespace, steps_per_epoch: int) -> None:
    """The warmup must end before the run does; the error speaks in the unit the user set.

    Raises:
        snappix.engine.args.ConfigError: ``--warmup_steps`` (when > 0) not fewer than the run's optimizer
            steps, or ``--warmup_epochs`` not fewer than ``--epochs``.
    """
    total = args.epochs * steps_per_epoch
    if args.warmup_steps is not None and args.warmup_steps > 0:
        if args.warmup_steps >= total:
            raise A.ConfigError(f"--warmup_steps {args.warmup_steps} must be fewer than the run's {total} optimizer "
                                f"steps (--epochs {args.epochs} x {steps_per_epoch} steps per epoch): lower "
                                f"--warmup_steps or raise --epochs")
    elif int(round(args.warmup_epochs * steps_per_epoch)) >= total:
        raise A.ConfigError(f"--warmup_epochs {args.warmup_epochs:g} must be fewer than --epochs {args.epochs}: "
                            f"lower --warmup_epochs (or set --warmup_steps) or raise --epochs")


def _optimization(args: argparse.Namespace, info: D.DistInfo, method: Method, steps: int):
    """Schedules, optimiser, precision, DDP / DeepSpeed wrapping and the resume of a run."""
    check_warmup(args, steps)
    lrs = O.scaled_lrs(args.lr, args.min_lr, args.warmup_lr, args.batch_size, info.world_size, args.acc_iters,
                       args.num_sample, args.lr_scale_with_num_sample, rule=getattr(args, "lr_scale", "linear"))
    try:
        lr_s, wd_s = S.build_schedules(lrs["lr"], lrs["min_lr"], lrs["warmup_lr"], args.weight_decay,
                                       args.weight_decay_end, args.epochs, steps, args.warmup_epochs,
                                       args.warmup_steps, getattr(args, "lr_sched", "cosine"),
                                       getattr(args, "lr_decay_rate", 0.1), getattr(args, "lr_decay_epochs", None),
                                       getattr(args, "lr_decay_steps", None))
    except ValueError as e:
        raise A.ConfigError(str(e)) from None
    log.info("total batch %d videos per step, lr %.3g (base %.3g%s), %d steps per epoch", lrs["total_batch"],
             lrs["lr"], args.lr, ", not scaled" if getattr(args, "lr_scale", "linear") == "none" else "", steps)
    model = method.model.to(info.device)
    if isinstance(method.objective, nn.Module):
        method.objective.to(info.device)
    optimizer = O.create_optimizer(model, lrs["lr"], args.weight_decay, args.opt, args.opt_eps, args.opt_betas,
                                   layer_decay=args.layer_decay, skip=method.skip_weight_decay,
                                   momentum=getattr(args, "momentum", 0.9))
    precision = P.resolve_precision(args.precision, info.device)
    if args.enable_deepspeed:
        from . import deepspeed_utils as DSU

        cfg = DSU.build_deepspeed_config(args.batch_size, args.acc_iters, info.world_size, args.clip_grad,
                                         args.zero_stage, precision, info.device)
        DSU.write_deepspeed_config(cfg, args.output_dir)
        model, optimizer = DSU.initialize_deepspeed(model, optimizer, cfg, info)
        scaler = DSU.DeepSpeedScaler(model)
        res = DSU.resume_deepspeed(model, args.output_dir, args.resume, args.auto_resume)
    else:
        model = D.wrap_ddp(model, info, args.find_unused_parameters)
        scaler = P.LossScaler(precision, info.device)
        res = C.resume(model, optimizer, scaler, args.output_dir, args.resume, args.auto_resume)
    if res.path:
        log.info("resumed from %s: starting at epoch %d", res.path, res.start_epoch)
        method.load_objective_state(res.state.get("objective"), res.path)
    return model, optimizer, scaler, precision, res, lr_s, wd_s


def _save(args: argparse.Namespace, model: nn.Module, optimizer, scaler, method: Method, epoch: int, stats: dict,
          improved: bool, extra: dict) -> None:
    """The end-of-epoch checkpoints: model, optimiser, scaler, RNG, the objective's state and ``extra``."""
    extra = {**extra, "objective": method.objective_state()}
    if args.enable_deepspeed:
        from . import deepspeed_utils as DSU

        DSU.save_deepspeed_checkpoint(model, args.output_dir, epoch, stats["global_step"], A.config_dict(args),
                                      args.epochs, args.save_ckpt_freq, best=improved, extra=extra)
    elif args.output_dir:
        C.save_checkpoint(args.output_dir, model, optimizer, scaler, epoch, stats["global_step"],
                          A.config_dict(args), args.epochs, args.save_ckpt_freq, best=improved, extra=extra)


def _no_grad_transform(method: Method, model: nn.Module) -> Callable[[dict], dict] | None:
    """The loop's ``batch -> batch`` hook: the method's ``batch_transform(batch, model)`` under no_grad."""
    if method.batch_transform is None:
        return None
    net = D.unwrap_model(model)

    def transform(batch: dict) -> dict:
        with torch.no_grad():
            return method.batch_transform(batch, net)

    return transform


def fit(args: argparse.Namespace, info: D.DistInfo, method: Method) -> dict:
    """Train ``method`` (a :class:`~snappix.engine.method.Method`) for ``args.epochs`` epochs, resuming
    where a run stopped.

    ``args`` is the namespace from :func:`snappix.engine.args.parse_args` (optimiser, schedule,
    precision, checkpoint, distributed and logging groups). The loader is built from
    ``method.train_set`` (:func:`build_loader`). Checkpoints: ``checkpoint-latest.pth`` every epoch,
    ``checkpoint-{epoch}.pth`` every ``save_ckpt_freq`` and at the end; each holds the model, optimiser,
    scaler, RNG states and, when the objective is an ``nn.Module``, its ``state_dict()`` (restored on
    resume). ``method.evaluate`` runs every ``eval_freq`` epochs and after the last one. With
    ``method.best_metric`` ``checkpoint-best.pth`` is written whenever it improves; the best value
    survives resumes. ``method.on_epoch_start`` runs before every epoch, ``method.batch_transform``
    on every training batch (on the device, under no_grad).

    ``args.skip_nonfinite`` (``--skip_nonfinite N``) lets up to N optimiser steps with a NaN/inf loss be
    skipped and logged over the whole run (the count survives resumes) before the run stops.

    Returns:
        ``{"start_epoch", "train": {epoch: stats}, "val": {epoch: metrics}, "best": value or None,
        "model": unwrapped model}``.

    Raises:
        snappix.engine.precision.NonFiniteLossError: a NaN/inf loss beyond ``--skip_nonfinite`` (the step,
            lr and last good checkpoint are named; that checkpoint is left intact).
        snappix.engine.loader_guard.DataLoaderError: a DataLoader worker died or hung (items named).
        snappix.engine.checkpoint.CheckpointError: a checkpoint could not be saved (previous one intact).
        snappix.engine.args.ConfigError: no optimizer step per epoch, a warmup as long as the run, or bad
            lr decay milestones.
        snappix.engine.method.ObjectiveStateError: the resumed checkpoint's objective state does not fit.
        ValueError: an objective with trainable parameters.
    """
    check_objective(method.objective)
    loader, sampler = build_loader(method.train_set, args, info, train=True, collate_fn=method.collate_fn)
    steps = len(loader) // args.acc_iters
    if steps < 1:
        raise A.ConfigError(f"an epoch has {len(loader)} batches, fewer than --acc_iters {args.acc_iters}: "
                            f"lower --batch_size or --acc_iters, or add data")
    model, optimizer, scaler, precision, res, lr_s, wd_s = _optimization(args, info, method, steps)
    best = res.state.get("best_value") if res.state else None
    budget = NonFiniteBudget(getattr(args, "skip_nonfinite", 0) or 0,
                             used=int(res.state.get("nonfinite_skipped", 0)) if res.state else 0)
    history: dict = {"start_epoch": res.start_epoch, "train": {}, "val": {}, "best": best}
    if args.auto_resume or args.resume:  # epochs logged but not checkpointed before a crash are redone
        rewind_log(args.output_dir, res.start_epoch)
    transform = _no_grad_transform(method, model)
    with RunLogger(args.output_dir, args.log_dir, progress=args.progress) as logger:
        for epoch in range(res.start_epoch, args.epochs):
            sampler.set_epoch(epoch)
            if hasattr(loader.dataset, "set_epoch"):  # per-item augmentation = f(seed, epoch, item)
                loader.dataset.set_epoch(epoch, args.seed)
            if method.on_epoch_start is not None:  # before the re-seed: a hook that reads the loader
                method.on_epoch_start(epoch, D.unwrap_model(model), loader)  # leaves training's draws alone
            if loader.generator is not None:  # shuffle order and worker seeds depend on the epoch only,
                loader.generator.manual_seed(args.seed + info.rank + 100_003 * epoch)  # so a resume replays it
            stats = train_one_epoch(model, method.objective, loader, optimizer, info.device, epoch, lr_s, wd_s, steps,
                                    precision, args.acc_iters, args.clip_grad, logger, scaler=scaler,
                                    last_checkpoint=C.latest_checkpoint(args.output_dir),
                                    model_inputs=method.model_inputs, batch_transform=transform,
                                    skip_nonfinite=budget)
            history["train"][epoch] = stats
            val = None
            if method.evaluate is not None and (epoch + 1 == args.epochs
                                                or (args.eval_freq and (epoch + 1) % args.eval_freq == 0)):
                val = history["val"][epoch] = method.evaluate(model, epoch, logger)
            metric = method.best_metric
            improved = bool(metric and val and (best is None or val[metric] > best))
            if improved:
                best = history["best"] = val[metric]
                log.info("epoch %d: best %s so far: %.4f", epoch, metric, best)
            logger.log_epoch(epoch, train=stats, val=val)
            _save(args, model, optimizer, scaler, method, epoch, stats, improved,
                  {"best_metric": metric, "best_value": best, "nonfinite_skipped": budget.used})
    history["model"] = D.unwrap_model(model)
    return history
