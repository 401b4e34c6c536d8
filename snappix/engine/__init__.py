"""Training engine shared by every method: flags, distributed setup, optimiser and schedules,
precision, checkpoints, logging and the train/eval loops.

The engine never imports a model or an objective and never branches on the method: a model maps
``batch["video"]`` (+ the masks present in the batch) to outputs, an objective maps
``(outputs, batch)`` to ``(loss, metrics)``. DeepSpeed is imported only by
:mod:`snappix.engine.deepspeed_utils`, and only when called.
"""

from .checkpoint import (CheckpointError, ResumeInfo, atomic_save, find_resume_checkpoint, load_checkpoint,
                         load_state_dict_report, resume, save_checkpoint)
from .distributed import (DistInfo, all_gather_object, all_reduce_mean, all_reduce_sum, barrier, get_rank,
                          get_world_size, init_distributed, is_dist_avail_and_initialized, is_main_process,
                          seed_everything, unwrap_model, wrap_ddp)
from .loader_guard import DataLoaderError
from .logging import MetricMeter, RunLogger
from .loop import NonFiniteBudget, evaluate, train_one_epoch
from .optim import create_optimizer, param_groups, scaled_lr, scaled_lrs
from .precision import LossScaler, NonFiniteLossError, autocast, resolve_precision
from .schedules import build_schedules, cosine_schedule

__all__ = [
    "CheckpointError", "DataLoaderError", "DistInfo", "LossScaler", "MetricMeter", "NonFiniteBudget",
    "NonFiniteLossError", "ResumeInfo", "RunLogger",
    "all_gather_object", "all_reduce_mean", "all_reduce_sum", "atomic_save", "autocast", "barrier",
    "build_schedules", "cosine_schedule", "create_optimizer", "evaluate", "find_resume_checkpoint", "get_rank",
    "get_world_size", "init_distributed", "is_dist_avail_and_initialized", "is_main_process", "load_checkpoint",
    "load_state_dict_report", "param_groups", "resolve_precision", "resume", "save_checkpoint", "scaled_lr",
    "scaled_lrs", "seed_everything", "train_one_epoch", "unwrap_model", "wrap_ddp",
]
