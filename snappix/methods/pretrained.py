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

from snappix.engine.checkpoint import load_checkpoint
from snappix.engine.distributed import is_main_process, unwrap_model
from snappix.engine.state_dicts import LoadReport, ModelMismatchError, load_state_dict_report, loaded_share
from snappix.models.convert import ConversionReport, convert_state_dict

log = logging.getLogger(__name__)


def load_pretrained(model: nn.Module, path: str | os.PathLike | Mapping[str, Any], trusted: bool = False, *,
                    strict: bool = False, verbose: bool = True, min_loaded: float = 0.0,
                    **convert_kwargs) -> ConversionReport:
    """Load pretrained weights from a checkpoint file (or an in-memory checkpoint) into ``model``.

    Args:
        model: the classifier to initialise (e.g. ``coded_vit_small_patch8_112``), possibly DDP-wrapped.
        path: a checkpoint file (ours, VideoMAE, VideoMAEv2, SnapPix) or an already loaded dict.
        trusted: also allow ``argparse.Namespace`` and numeric numpy values while unpickling
            (:func:`~snappix.engine.checkpoint.foreign_safe_globals`; ``--trust_checkpoint``), which foreign
            VideoMAE / VideoMAEv2 / SnapPix checkpoints need. Still ``weights_only=True``: any other pickled
            global is refused before it runs.
        strict: raise ``RuntimeError`` if anything is missing, unexpected or mismatched.
        min_loaded: the smallest share (0-1) of the model's weights outside the new head (``head.*``,
            ``fc_norm.*``) that must load (``--finetune_min_loaded``); below it the file is another model's.
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
        ModelMismatchError: fewer than ``min_loaded`` of the weights loaded (the message names the
            counts and a few keys that did not load); raised before anything else is trained.
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
    loaded, total = loaded_share(result, model)
    if total and loaded < min_loaded * total:
        failed = [f"{k} {s} vs {m}" for k, s, m in result.mismatched[:3]] or result.missing[:3]
        raise ModelMismatchError(
            f"{source} (--finetune): only {loaded} of {total} weights of {type(unwrap_model(model)).__name__} "
            f"(without its head) loaded, below --finetune_min_loaded {min_loaded:g}; e.g. not loaded: "
            f"{', '.join(failed)}; {len(result.unexpected)} checkpoint keys unused. Is it a checkpoint of "
            f"another model? Pass the matching --model, or --finetune_min_loaded 0 to start anyway")
    if verbose and is_main_process():
        print(text, flush=True)
    if strict and not report.ok:
        raise RuntimeError(f"pretrained weights do not match the model:\n{text}")
    return report
