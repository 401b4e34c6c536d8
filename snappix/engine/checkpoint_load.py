"""Reading checkpoints safely: ``torch.load(weights_only=True)``, so nothing in a file is executed.

:func:`load_checkpoint` turns every failure (missing or truncated file, a pickled global outside the
allow-list, an old non-zip format) into one :class:`~snappix.engine.state_dicts.CheckpointError` naming the
file and the reason. Foreign VideoMAE / VideoMAEv2 / SnapPix checkpoints pickle an ``argparse.Namespace``
next to their weights: ``trusted=True`` (``--trust_checkpoint``) allows that class and numeric numpy values
(:func:`foreign_safe_globals`), and nothing else.
"""

from __future__ import annotations

import os
from argparse import Namespace
from typing import Any

import numpy as np
import torch

from .state_dicts import CheckpointError
from .unsafe_pickle import old_format_refusal

__all__ = ["foreign_safe_globals", "load_checkpoint"]


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
