"""Initialise a model from a pretraining checkpoint file: safe loading, key conversion, a load report.

The key mapping (ours, VideoMAE, VideoMAEv2, SnapPix) lives with the models in
:mod:`snappix.models.convert`; this module adds the file I/O (always ``weights_only=True``; ``trusted`` adds a small allow-list) and
reports missing / unexpected / mismatched keys.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from torch import nn

from snappix.models.convert import ConversionReport, convert_state_dict

from .checkpoint import LoadReport, load_checkpoint, load_state_dict_report
from .distributed import is_main_process

log = logging.getLogger(__name__)


def load_pretrained(model: nn.Module, path: str | os.PathLike | Mapping[str, Any], trusted: bool = False, *,
                    strict: bool = False, verbose: bool = True, **convert_kwargs) -> ConversionReport:
    """Load pretrained weights from a checkpoint file (or an in-memory checkpoint) into ``model``.

    Args:
        model: the classifier to initialise (e.g. ``coded_vit_small_patch8_112``), possibly DDP-wrapped.
        path: a checkpoint file (ours, VideoMAE, VideoMAEv2, SnapPix) or an already loaded dict.
        trusted: also allow ``argparse.Namespace`` and numeric numpy values while unpickling
            (:func:`~snappix.engine.checkpoint.foreign_safe_globals`; ``--trust_checkpoint``), which foreign
            VideoMAE / VideoMAEv2 / SnapPix checkpoints need. Still ``weights_only=True``: any other pickled
            global is refused before it runs.
        strict: raise ``RuntimeError`` if anything is missing, unexpected or mismatched.
        verbose: print the summary (main process only); it is also logged.
        **convert_kwargs: forwarded to :func:`convert_state_dict` (``norm_to_fc_norm``, ``old_grid``, ...).

    Returns:
        :class:`ConversionReport` with ``missing`` / ``unexpected`` / ``mismatched`` keys filled.
        Finetuning a SnapPix / our coded MAE checkpoint into a coded ViT leaves only ``fc_norm.*`` and
        ``head.*`` missing.

    Raises:
        CheckpointError: an unreadable file, or one that pickled globals outside the allow-list; for an
            ``argparse.Namespace`` without ``trusted`` the message says to pass ``--trust_checkpoint``
            (``trusted=True``).
        ValueError: see :func:`convert_state_dict`.
        RuntimeError: ``strict`` and the weights do not match.
    """
    if isinstance(path, Mapping):
        state, source = path, "<state dict>"
    else:
        source = os.fspath(path)
        state = load_checkpoint(source, trusted=trusted)
    converted, report = convert_state_dict(model, state, report=ConversionReport(source=source), **convert_kwargs)
    result: LoadReport = load_state_dict_report(model, converted, strip_prefixes=(), strict=False)
    report.missing, report.unexpected, report.mismatched = result.missing, result.unexpected, result.mismatched
    text = report.summary()
    log.info("%s", text)
    if verbose and is_main_process():
        print(text, flush=True)
    if strict and not report.ok:
        raise RuntimeError(f"pretrained weights do not match the model:\n{text}")
    return report
