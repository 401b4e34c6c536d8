"""Checkpoints: atomic writes, plain-data contents, auto-resume with fallback, reported weight loading.

File names in ``output_dir`` (epochs are 0-based, as VideoMAE: the last of 300 epochs is 299):

* ``checkpoint-latest.pth``: every epoch (VideoMAE saved only every ``save_ckpt_freq`` epochs, so a
  preemption lost up to freq-1 epochs; ecosystem §6);
* ``checkpoint-{epoch}.pth``: when ``(epoch + 1) % save_ckpt_freq == 0`` and at the last epoch;
* ``checkpoint-best.pth``: on request (``best=True``).

Every file is written to ``<name>.tmp.<pid>`` in the same directory, flushed, fsynced and moved into
place with ``os.replace``: a checkpoint name never holds a partial file, and a failed save (disk
full, ...) raises :class:`CheckpointError`, removes the temporary file and leaves the previous
checkpoint untouched.

Contents are plain data only, so ``torch.load(path, weights_only=True)`` works (SnapPix stored an
``argparse.Namespace``, which torch >= 2.6 refuses by default; defect §11.7)::

    {"model": state_dict, "optimizer": state_dict | None, "scaler": dict | None,
     "epoch": int, "global_step": int, "config": dict, "rng": [per-rank RNG state dicts],
     "meta": {"format": 1, "torch": str, "world_size": int, "time": str}, ...extra}
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import random
import re
import shutil
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from .distributed import (all_gather_object, broadcast_object, get_rank, get_world_size, is_main_process,
                          unwrap_model)
from .faults import inject
from .state_dicts import (CheckpointError, LoadReport, ModelMismatchError, load_state_dict_report,  # noqa: F401
                          require_match)
from .unsafe_pickle import old_format_refusal

log = logging.getLogger(__name__)

LATEST = "checkpoint-latest.pth"
BEST = "checkpoint-best.pth"
_NUMBERED = re.compile(r"^checkpoint-(\d+)\.pth$")
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------------
# plain data
# ---------------------------------------------------------------------------------------------------
def to_plain(obj: Any) -> Any:
    """Convert ``obj`` to types ``torch.load(weights_only=True)`` and YAML accept.

    Namespace/Mapping -> dict with str keys, tuple/set -> list, Path -> str, numpy scalars/arrays ->
    python numbers/lists, torch.device/dtype -> str; tensors are kept; anything else -> ``str(obj)``.
    """
    if isinstance(obj, Namespace):
        obj = vars(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in obj]
    if obj is None or isinstance(obj, torch.Tensor):
        return obj
    for plain in (bool, int, float, str):  # exact types: subclasses (TorchVersion, IntEnum) are not allowed
        if isinstance(obj, plain):
            return plain(obj) if type(obj) is not plain else obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, torch.device, torch.dtype)):
        return str(obj)
    return str(obj)


def get_rng_state() -> dict:
    """This process's RNG states as plain data: torch CPU (uint8 tensor), CUDA (list of uint8 tensors,
    empty without CUDA), numpy's global MT19937 and python's ``random``."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"bit_generator": str(np_state[0]), "keys": [int(k) for k in np_state[1]],
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_version), "internal": [int(x) for x in py_internal], "gauss_next": py_gauss},
    }


def set_rng_state(state: Mapping) -> None:
    """Restore states produced by :func:`get_rng_state` (CUDA only when the device count matches)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["bit_generator"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


# ---------------------------------------------------------------------------------------------------
# atomic files
# ---------------------------------------------------------------------------------------------------
def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, write: Callable[[Any], None], fault_context: Mapping[str, Any] | None = None) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            if fault_context is not None:  # tests only: SNAPPIX_FAULT_INJECT="save:kill@epoch=N"
                inject("save", **fault_context)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as e:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        kept = "the previous file is unchanged" if os.path.exists(path) else "no file was written"
        hint = ""
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = f" (disk full: free space in {directory} or point --output_dir elsewhere, then resume)"
        raise CheckpointError(f"could not save checkpoint {path}: {type(e).__name__}: {e}; {kept}{hint}") from e
    except BaseException:  # KeyboardInterrupt etc.: clean up, re-raise as is
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


def atomic_save(obj: Any, path: str | os.PathLike, fault_context: Mapping[str, Any] | None = None) -> None:
    """``torch.save(obj)`` to ``path`` atomically (temp file in the same dir, fsync, ``os.replace``).

    Args:
        fault_context: context for the ``save`` point of :mod:`snappix.engine.faults` (tests only).

    Raises:
        CheckpointError: the write failed (disk full, permissions, ...); the temporary file is removed
            and an existing ``path`` is left as it was.
    """
    _atomic_write(os.fspath(path), lambda f: torch.save(obj, f), fault_context)


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy a finished checkpoint to another name with the same atomicity as :func:`atomic_save`."""
    def write(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, length=16 << 20)
    _atomic_write(os.fspath(dst), write)


def foreign_safe_globals() -> list:
    """The allow-list used with ``trusted=True`` (``--trust_checkpoint``), on top of torch's own
    plain-data types: ``argparse.Namespace`` (VideoMAE / VideoMAEv2 / SnapPix pickled their flags in
    ``args``) and what rebuilds plain numeric numpy arrays and scalars (``np.float64`` metrics)."""
    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed: list = [Namespace, np.ndarray, np.dtype,
                     (reconstruct, "numpy.core.multiarray._reconstruct"),
                     (reconstruct, "numpy._core.multiarray._reconstruct"),
                     (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    for t in (np.float16, np.float32, np.float64, np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_):
        allowed.append(type(np.dtype(t)))
    return allowed


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", trusted: bool = False) -> dict:
    """Read a checkpoint with ``torch.load(path, weights_only=True)``: nothing in the file is executed.

    Args:
        path: the checkpoint file.
        map_location: passed to ``torch.load``.
        trusted: also allow the globals of :func:`foreign_safe_globals` (``argparse.Namespace`` and
            numeric numpy values), which foreign VideoMAE / VideoMAEv2 / SnapPix checkpoints pickled
            next to their weights (``--trust_checkpoint``). Still ``weights_only=True``: a file that
            needs any other global (``os.system``, ``builtins.eval``, ...) is refused.

    Returns:
        the checkpoint dict (tensors on ``map_location``).

    Raises:
        CheckpointError: missing, truncated or unreadable file; a global outside the allow-list (the
            message names it and, when ``trusted`` would help, says to pass ``--trust_checkpoint``);
            content that is not a dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist" if not os.path.isdir(path)
                              else f"checkpoint {path} is a directory, not a file")
    try:
        with torch.serialization.safe_globals(foreign_safe_globals() if trusted else []):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        unsafe = next((ln for ln in lines if "Unsupported global" in ln or "unsupported GLOBAL" in ln), None)
        if unsafe is not None:
            reason = unsafe.split(" Please use")[0].split(" To allowlist")[0].rstrip(". ")
            if not trusted and "argparse.Namespace" in unsafe:
                hint = ("; it pickled an argparse.Namespace, as VideoMAE / VideoMAEv2 / SnapPix checkpoints do: "
                        "if you trust this file, pass --trust_checkpoint (load_checkpoint(..., trusted=True)), "
                        "which allows that class and numeric numpy values only")
            elif trusted:
                hint = ("; refused even with --trust_checkpoint: only argparse.Namespace and numeric numpy values "
                        "are allowed beyond tensors and plain data")
            else:
                hint = "; only tensors and plain data are allowed (weights_only=True)"
            raise CheckpointError(f"refusing to load checkpoint {path}: {reason}{hint}. Nothing in the file was "
                                  f"executed") from e
        old_format = old_format_refusal(path)
        if old_format is not None:
            raise CheckpointError(f"refusing to load checkpoint {path}: {old_format}; only tensors and plain data "
                                  f"are allowed (weights_only=True). Nothing in the file was executed") from e
        reason = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0] if lines else "")
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a torch checkpoint?): "
                              f"{type(e).__name__}: {reason}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a dict")
    return obj


# ---------------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------------
def checkpoint_path(output_dir: str | os.PathLike, tag: int | str) -> str:
    """``output_dir/checkpoint-{tag}.pth`` (tag: epoch number, ``"latest"`` or ``"best"``)."""
    return os.path.join(os.fspath(output_dir), f"checkpoint-{tag}.pth")


def latest_checkpoint(output_dir: str | os.PathLike | None) -> str | None:
    """``output_dir/checkpoint-latest.pth`` if it exists (for error messages), else ``None``."""
    if not output_dir:
        return None
    path = checkpoint_path(output_dir, "latest")
    return path if os.path.isfile(path) else None


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


def checkpoint_names(epoch: int, num_epochs: int | None = None, save_ckpt_freq: int | None = None,
                     best: bool = False, latest: bool = True) -> list[str]:
    """Tags written at the end of 0-based ``epoch``: ``latest``; ``{epoch}`` every ``save_ckpt_freq``
    epochs and at the last epoch; ``best`` on request."""
    tags: list[str] = ["latest"] if latest else []
    last = num_epochs is not None and epoch + 1 == num_epochs
    if (save_ckpt_freq and save_ckpt_freq > 0 and (epoch + 1) % save_ckpt_freq == 0) or last:
        tags.append(str(epoch))
    if best:
        tags.append("best")
    return tags


_TEMPORARY = re.compile(r"^checkpoint-[^/]*\.pth\.tmp\.(\d+)$")


def remove_stale_temporaries(output_dir: str | os.PathLike) -> list[str]:
    """Delete ``checkpoint-*.pth.tmp.<pid>`` files left by a process killed mid-save (not this
    process's own). They never hold a checkpoint name, so nothing is lost; this only frees the disk.

    Returns:
        the paths removed.
    """
    removed = []
    if not os.path.isdir(output_dir):
        return removed
    for name in os.listdir(output_dir):
        m = _TEMPORARY.match(name)
        if m and int(m.group(1)) != os.getpid():
            path = os.path.join(output_dir, name)
            try:
                os.remove(path)
            except OSError:
                continue
            removed.append(path)
            log.info("removed %s, left by an interrupted save", path)
    return removed


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


# ---------------------------------------------------------------------------------------------------
# resuming
# ---------------------------------------------------------------------------------------------------
def numbered_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, str]]:
    """``[(epoch, path)]`` of ``checkpoint-{epoch}.pth`` files, highest epoch first."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), os.path.join(output_dir, name))
             for name in os.listdir(output_dir) if (m := _NUMBERED.match(name))]
    return sorted(found, reverse=True)


def _readable(path: str, map_location: Any) -> dict | None:
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
