"""Resuming a run: finding the newest readable checkpoint of ``output_dir`` and restoring model,
optimiser, loss scaler, RNG states, epoch and global step from it (:func:`resume`).

``checkpoint-latest.pth`` is preferred; when it is missing, truncated or older, the highest-numbered
``checkpoint-N.pth`` that loads is used, each unreadable file skipped with a warning.
``checkpoint-best.pth`` is never a resume candidate.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from .checkpoint_files import LATEST, numbered_checkpoints
from .checkpoint_load import load_checkpoint
from .distributed import get_rank, get_world_size, unwrap_model
from .plain_state import set_rng_state
from .state_dicts import CheckpointError, require_match

# one logger for the whole checkpoint subsystem, as before it was split into modules
log = logging.getLogger("snappix.engine.checkpoint")

__all__ = ["ResumeInfo", "find_resume_checkpoint", "restore_rng", "resume"]


def _readable(path: str, map_location: Any) -> dict | None:
    """The training checkpoint at ``path``, or None (with a warning, never an error) when it does not load
    or lacks the ``model`` / ``epoch`` entries."""
    try:
        state = load_checkpoint(path, map_location=map_location)
    except CheckpointError as e:
        log.warning("skipping unreadable checkpoint: %s", e)
        return None
    if "model" not in state or "epoch" not in state:
        log.warning("skipping %s: no 'model'/'epoch' entry (not a snappix training checkpoint)", path)
        return None
    return state


def find_resume_checkpoint(output_dir: str | os.PathLike, map_location: Any = "cpu") -> tuple[str, dict] | None:
    """The newest readable training checkpoint in ``output_dir``: ``checkpoint-latest.pth``, or (when it
    is missing, truncated or older) the highest-numbered ``checkpoint-N.pth`` that loads; each
    unreadable file is skipped with a warning. ``checkpoint-best.pth`` is never a resume candidate.

    Returns:
        ``(path, state)`` or ``None`` when nothing usable exists.
    """
    output_dir = os.fspath(output_dir)
    numbered = numbered_checkpoints(output_dir)
    latest_path = os.path.join(output_dir, LATEST)
    latest = _readable(latest_path, map_location) if os.path.exists(latest_path) else None
    for number, path in numbered:
        if latest is not None and latest["epoch"] >= number:
            break
        state = _readable(path, map_location)
        if state is not None:
            if os.path.exists(latest_path):
                log.warning("resuming from %s instead of %s", path, latest_path)
            return path, state
    return (latest_path, latest) if latest is not None else None


@dataclass
class ResumeInfo:
    """Outcome of :func:`resume`.

    Attributes:
        start_epoch: first epoch to train (saved epoch + 1, or 0 when starting fresh).
        global_step: optimiser steps done so far.
        path: the checkpoint used, or ``None``.
        state: the loaded checkpoint dict (empty when starting fresh), e.g. for ``best`` metrics kept in ``extra``.
    """

    start_epoch: int = 0
    global_step: int = 0
    path: str | None = None
    state: dict = field(default_factory=dict)


def restore_rng(state: Mapping) -> bool:
    """Restore this rank's RNG from a checkpoint's ``rng`` list; False (with a warning) when the world
    size changed or the states are missing, in which case the seeded RNG is kept."""
    rng = state.get("rng")
    rank, world = get_rank(), get_world_size()
    if not rng or len(rng) != world:
        log.warning("checkpoint RNG states are for %s processes, this run has %d: keeping the seeded RNG",
                    len(rng) if rng else 0, world)
        return False
    set_rng_state(rng[rank])
    return True


def resume(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, scaler: Any = None,
           output_dir: str | os.PathLike | None = None, resume_path: str | None = None, auto_resume: bool = True,
           map_location: Any = "cpu") -> ResumeInfo:
    """Restore a run: ``--resume FILE`` if given (must load), else (unless ``--no_auto_resume``) the
    newest readable checkpoint of ``output_dir`` (:func:`find_resume_checkpoint`).

    Restores the model (strict), optimiser, scaler, this rank's RNG states, and returns the epoch to
    start at (saved epoch + 1) and the global step. A checkpoint without optimiser state (weights
    only) restores the model and warns.

    Raises:
        CheckpointError: ``resume_path`` unreadable; :class:`ModelMismatchError` (a ``CheckpointError``): the
            checkpoint's weights are not this model's (counts and the first differing keys named).
    """
    if resume_path:
        path, state = os.fspath(resume_path), load_checkpoint(resume_path, map_location=map_location)
        if "model" not in state:
            raise CheckpointError(f"{path} has no 'model' entry; to start from foreign/pretrained weights use "
                                  "the model converter and load_state_dict_report instead of --resume")
    elif auto_resume and output_dir is not None:
        found = find_resume_checkpoint(output_dir, map_location=map_location)
        if found is None:
            log.info("no checkpoint to resume from in %s: starting from scratch", output_dir)
            return ResumeInfo()
        path, state = found
    else:
        return ResumeInfo()
    require_match(model, state["model"], path, "--resume")
    unwrap_model(model).load_state_dict(state["model"], strict=True)
    if optimizer is not None:
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        else:
            log.warning("%s has no optimizer state: the optimizer starts fresh", path)
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng(state)
    epoch = int(state.get("epoch", -1))
    info = ResumeInfo(start_epoch=epoch + 1, global_step=int(state.get("global_step", 0)), path=path, state=state)
    log.info("resumed from %s (epoch %d done, global step %d)", path, epoch, info.global_step)
    return info
