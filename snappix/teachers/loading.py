"""Reading a teacher's weights file and loading it strictly, with errors that name the file and the keys.

Every failure is a :class:`~snappix.teachers.base.TeacherLoadError` raised while the teacher is built, i.e.
before training starts.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any, Mapping

import torch
from torch import nn

from snappix.teachers.base import TeacherLoadError

__all__ = ["read_weights", "state_dict_of", "load_strict", "MAX_KEYS_SHOWN"]

#: how many missing / unexpected / mismatched keys an error message lists
MAX_KEYS_SHOWN = 10


def _check_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TeacherLoadError(f"teacher weights file {path!r} does not exist")
    if not os.path.isfile(path):
        raise TeacherLoadError(f"teacher weights path {path!r} is not a file")
    return path


def read_weights(path: str | os.PathLike) -> Any:
    """Load a weights file on the CPU without executing pickled code.

    * ``*.safetensors``: :func:`safetensors.torch.load_file`;
    * anything else: ``torch.load(path, map_location="cpu", weights_only=True)`` (plain checkpoints: a state
      dict, a ``{"model": ...}`` / ``{"state_dict": ...}`` wrapper, open_clip ``*.bin`` files);
    * a TorchScript archive (OpenAI's released ``ViT-B-16.pt``), which ``weights_only`` refuses:
      ``torch.jit.load(path, map_location="cpu").state_dict()`` (TorchScript, not pickled Python code).

    Returns:
        what the file holds (a dict in every supported case).

    Raises:
        TeacherLoadError: a missing path, or a file none of the readers accepts (the message names it).
    """
    path = _check_path(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        if _is_torchscript(path):
            return dict(torch.jit.load(path, map_location="cpu").state_dict())
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every reader's failure becomes one clear message
        raise TeacherLoadError(f"cannot read teacher weights file {path!r}: {type(e).__name__}: {e}") from e


def _is_torchscript(path: str) -> bool:
    """A TorchScript archive: a zip file with ``<name>/constants.pkl`` and ``<name>/code/`` entries."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def state_dict_of(obj: Any, path: str) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded file: unwraps ``{"model": sd}`` / ``{"state_dict": sd}`` (also
    nested once) and a ``module.`` prefix carried by every key (DDP); drops non-tensor entries.

    Raises:
        TeacherLoadError: nothing that looks like a state dict (the message names ``path``).
    """
    for _ in range(2):
        if isinstance(obj, Mapping):
            for key in ("model", "state_dict"):
                if isinstance(obj.get(key), Mapping):
                    obj = obj[key]
                    break
    if not isinstance(obj, Mapping):
        raise TeacherLoadError(f"teacher weights file {path!r} holds a {type(obj).__name__}, not a state dict")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise TeacherLoadError(f"teacher weights file {path!r} holds no tensors (keys: {_first(list(obj))})")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _first(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > MAX_KEYS_SHOWN else "")


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path: str, what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with a readable error.

    Args:
        module: the network to fill.
        state: its state dict, already converted to ``module``'s key layout.
        path: the file ``state`` came from (named in errors).
        what: the network in words (named in errors), e.g. ``"timm model 'vit_base_patch16_clip_224'"``.

    Raises:
        TeacherLoadError: missing keys, unexpected keys or shape mismatches; the message names ``path`` and the
            first :data:`MAX_KEYS_SHOWN` keys of each kind.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_first(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches (file vs model): {_first(shapes)}")
        raise TeacherLoadError(f"teacher weights file {path!r} does not fit the {what}; " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
