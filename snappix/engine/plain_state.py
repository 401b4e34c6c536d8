"""Plain data for checkpoints and configs: :func:`to_plain`, and the RNG states of a process.

``torch.load(path, weights_only=True)`` and YAML accept only plain types, so everything a checkpoint
stores besides tensors goes through :func:`to_plain`, and the RNG states are kept as plain dicts.
"""

from __future__ import annotations

import random
from argparse import Namespace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

__all__ = ["get_rng_state", "set_rng_state", "to_plain"]


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
    """Restore states produced by :func:`get_rng_state` (CUDA only when the device count matches).

    Raises:
        KeyError: ``state`` lacks the ``torch``, ``numpy`` or ``python`` entry.
    """
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["bit_generator"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
