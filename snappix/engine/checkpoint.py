"""Checkpoints: atomic writes, plain-data contents, auto-resume with fallback, reported weight loading.

This module builds and saves the end-of-epoch checkpoint and is the one place to import the checkpoint
API from; the parts live in their own modules and every name is available here:

* :mod:`~snappix.engine.checkpoint_files`: file names (:data:`LATEST`, :func:`checkpoint_path`, ...) and
  atomic writes (:func:`atomic_save`, :func:`atomic_copy`, :func:`remove_stale_temporaries`);
* :mod:`~snappix.engine.checkpoint_load`: safe reading (:func:`load_checkpoint`, :func:`foreign_safe_globals`);
* :mod:`~snappix.engine.checkpoint_resume`: :func:`resume`, :func:`find_resume_checkpoint`, :class:`ResumeInfo`;
* :mod:`~snappix.engine.plain_state`: :func:`to_plain` and the RNG states;
* :mod:`~snappix.engine.state_dicts`: :class:`CheckpointError`, :func:`load_state_dict_report`,
  :func:`require_match`.

File names in ``output_dir`` (epochs are 0-based, as VideoMAE: the last of 300 epochs is 299):

* ``checkpoint-latest.pth``: every epoch (VideoMAE saved only every ``save_ckpt_freq`` epochs, so a
  preemption lost up to freq-1 epochs);
* ``checkpoint-{epoch}.pth``: when ``(epoch + 1) % save_ckpt_freq == 0`` and at the last epoch;
* ``checkpoint-best.pth``: on request (``best=True``).

Every file is written to ``<name>.tmp.<pid>`` in the same directory, flushed, fsynced and moved into
place with ``os.replace``: a checkpoint name never holds a partial file, and a failed save (disk
full, ...) raises :class:`CheckpointError`, removes the temporary file and leaves the previous
checkpoint untouched.

Contents are plain data only, so ``torch.load(path, weights_only=True)`` works (SnapPix stored an
``argparse.Namespace``, which torch >= 2.6 refuses by default)::

    {"model": state_dict, "optimizer": state_dict | None, "scaler": dict | None,
     "epoch": int, "global_step": int, "config": dict, "rng": [per-rank RNG state dicts],
     "meta": {"format": 1, "torch": str, "world_size": int, "time": str}, ...extra}
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any, Mapping

import torch
from torch import nn

from .checkpoint_files import (BEST, LATEST, atomic_copy, atomic_save, checkpoint_names, checkpoint_path,
                               latest_checkpoint, numbered_checkpoints, remove_stale_temporaries)
from .checkpoint_load import foreign_safe_globals, load_checkpoint
from .checkpoint_resume import ResumeInfo, find_resume_checkpoint, restore_rng, resume
from .distributed import all_gather_object, broadcast_object, get_world_size, is_main_process, unwrap_model
from .plain_state import get_rng_state, set_rng_state, to_plain
from .state_dicts import CheckpointError, LoadReport, ModelMismatchError, load_state_dict_report, require_match

log = logging.getLogger(__name__)

__all__ = [
    "BEST", "FORMAT_VERSION", "LATEST", "CheckpointError", "LoadReport", "ModelMismatchError", "ResumeInfo",
    "atomic_copy", "atomic_save", "build_checkpoint", "checkpoint_names", "checkpoint_path", "find_resume_checkpoint",
    "foreign_safe_globals", "get_rng_state", "latest_checkpoint", "load_checkpoint", "load_state_dict_report",
    "numbered_checkpoints", "remove_stale_temporaries", "require_match", "restore_rng", "resume", "save_checkpoint",
    "set_rng_state", "to_plain",
]

FORMAT_VERSION = 1


def build_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, scaler: Any = None,
                     epoch: int = -1, global_step: int = 0, config: Any = None,
                     extra: Mapping[str, Any] | None = None) -> dict:
    """The checkpoint dict (plain data). Collective: gathers every rank's RNG state, so call it on
    all ranks. ``scaler`` is anything with ``state_dict()`` (e.g. :class:`~snappix.engine.precision.LossScaler`)."""
    rng = all_gather_object(get_rng_state())
    state = {
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "global_step": int(global_step),
        "config": to_plain(config) if config is not None else {},
        "rng": rng,
        "meta": {"format": FORMAT_VERSION, "torch": str(torch.__version__), "world_size": get_world_size(),
                 "time": datetime.datetime.now().isoformat(timespec="seconds")},
    }
    for k, v in (extra or {}).items():
        state[k] = to_plain(v)
    return state



def save_checkpoint(output_dir: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    scaler: Any, epoch: int, global_step: int, config: Any = None, num_epochs: int | None = None,
                    save_ckpt_freq: int | None = None, best: bool = False, latest: bool = True,
                    extra: Mapping[str, Any] | None = None) -> list[str]:
    """Save the end-of-epoch checkpoints (see module doc). Call on every rank: the RNG states are
    gathered from all of them, rank 0 writes, and all ranks wait for the write.

    Returns:
        the paths written (on rank 0; ``[]`` elsewhere).

    Raises:
        CheckpointError: a write failed (earlier checkpoints stay intact).
    """
    state = build_checkpoint(model, optimizer, scaler, epoch, global_step, config, extra)
    written: list[str] = []
    error: Exception | None = None
    if is_main_process():
        remove_stale_temporaries(output_dir)
        try:
            tags = checkpoint_names(epoch, num_epochs, save_ckpt_freq, best, latest)
            first = None
            for tag in tags:
                path = checkpoint_path(output_dir, tag)
                if first is None:
                    atomic_save(state, path, fault_context={"epoch": int(epoch)})
                    first = path
                else:
                    atomic_copy(first, path)
                written.append(path)
            log.info("saved %s", ", ".join(written))
        except CheckpointError as e:
            error = e
    # every rank learns about a failed write (and waits for rank 0 as a barrier would), so all stop
    message = broadcast_object(str(error) if error is not None else None)
    if error is not None:
        raise error
    if message is not None:
        raise CheckpointError(f"rank 0 failed to save the checkpoint: {message}")
    return written
