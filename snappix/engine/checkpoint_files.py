"""Checkpoint files on disk: their names, and atomic writes that never leave a partial file under a name.

Every file is written to ``<name>.tmp.<pid>`` in the same directory, flushed, fsynced and moved into
place with ``os.replace``: a checkpoint name never holds a partial file, and a failed save (disk
full, ...) raises :class:`~snappix.engine.state_dicts.CheckpointError`, removes the temporary file and
leaves the previous checkpoint untouched. Temporary files of a process killed mid-save are removed by
:func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from typing import Any, Callable, Mapping

import torch

from .faults import inject
from .state_dicts import CheckpointError

# one logger for the whole checkpoint subsystem, as before it was split into modules
log = logging.getLogger("snappix.engine.checkpoint")

__all__ = ["BEST", "LATEST", "atomic_copy", "atomic_save", "checkpoint_names", "checkpoint_path", "latest_checkpoint",
           "numbered_checkpoints", "remove_stale_temporaries"]

LATEST = "checkpoint-latest.pth"
BEST = "checkpoint-best.pth"
_NUMBERED = re.compile(r"^checkpoint-(\d+)\.pth$")
_TEMPORARY = re.compile(r"^checkpoint-[^/]*\.pth\.tmp\.(\d+)$")


# ---------------------------------------------------------------------------------------------------
# names
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


def numbered_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, str]]:
    """``[(epoch, path)]`` of ``checkpoint-{epoch}.pth`` files, highest epoch first."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), os.path.join(output_dir, name))
             for name in os.listdir(output_dir) if (m := _NUMBERED.match(name))]
    return sorted(found, reverse=True)


def remove_stale_temporaries(output_dir: str | os.PathLike) -> list[str]:
    """Delete ``checkpoint-*.pth.tmp.<pid>`` files left by a process killed mid-save (not this
    process's own). They never hold a checkpoint name, so nothing is lost; this only frees the disk.
    A file that cannot be removed is left as it is (no error).

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


# ---------------------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------------------
def _fsync_dir(directory: str) -> None:
    """fsync ``directory`` so the rename is on disk; errors (e.g. a filesystem without it) are ignored."""
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
    """Write ``path`` through ``write(file)`` on a temporary file moved into place.

    Raises:
        CheckpointError: ``write`` or the move failed (any ``Exception``); the temporary file is removed.
        BaseException: a ``KeyboardInterrupt`` and the like are re-raised as they are, after the cleanup.
    """
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
    """Copy a finished checkpoint to another name with the same atomicity as :func:`atomic_save`.

    Raises:
        CheckpointError: ``src`` could not be read or ``dst`` written; an existing ``dst`` is left as it was.
    """
    def write(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, length=16 << 20)
    _atomic_write(os.fspath(dst), write)
