"""Training methods as plugs for the engine (:class:`snappix.engine.method.Method`).

One module per method builds its plug from the parsed flags; the entry points pick one by ``--task``
(:data:`PRETRAINING` for ``run_pretraining.py``, :data:`FINETUNING` for ``run_finetuning.py``) and hand it
to :func:`snappix.methods.launch.run`. A new method adds a module with ``add_args`` / ``data_lists`` /
``build`` and one :class:`Plug` line below; the engine and the entry points stay as they are
(``docs/architecture.md``).

Layer: above the engine (imports data, sensor, masking, models, objectives and engine), below the entry points.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from snappix.engine.distributed import DistInfo
from snappix.engine.method import Method

from . import classification, classification_test, distillation, masked_video, regression, saccade
from . import retrieval  # evaluation-only plug: nearest-neighbour retrieval, recall@k


@dataclass(frozen=True)
class Plug:
    """How an entry point reaches a method.

    Attributes:
        add_args: adds the method's own flags to the parser (called once per function, even when several
            tasks share it).
        data_lists: ``args -> (list paths, list format)`` for the data doctor (``--check_data``).
        build: ``(args, info) -> Method`` (after :func:`snappix.engine.runner.start_run`).
        check: optional ``args -> None`` run before anything is written (flag / list consistency).
        after_fit: optional ``(args, info, history) -> history`` (e.g. the multi-view test of the best checkpoint).
        evaluate_only: optional ``(args, info) -> results`` for ``--eval``.
        prog: the name of the default output folder (``outputs/<prog>-<time>``).
    """

    add_args: Callable[[argparse.ArgumentParser], None]
    data_lists: Callable[[argparse.Namespace], tuple]
    build: Callable[[argparse.Namespace, DistInfo], Method]
    check: Callable[[argparse.Namespace], None] | None = None
    after_fit: Callable[[argparse.Namespace, DistInfo, dict], dict] | None = None
    evaluate_only: Callable[[argparse.Namespace, DistInfo], dict] | None = None
    prog: str = "run"


def _check_classes(args: argparse.Namespace) -> None:
    classification.check_classes(args, list(classification.resolve_lists(args)))


_MASKED = dict(add_args=masked_video.add_args, data_lists=masked_video.data_lists, build=masked_video.build,
               check=masked_video.check, prog="pretrain")
#: ``run_pretraining.py --task``
PRETRAINING: dict[str, Plug] = {
    "pretrain": Plug(**_MASKED), "reconstruction": Plug(**_MASKED),
    # masked distillation from a frozen teacher (UMT / VideoMamba); shares the masking and clip flags
    "distill": Plug(distillation.add_args, masked_video.data_lists, distillation.build, check=distillation.check,
                    prog="distill"),
    # Saccade-VSSL: fixation clips from scanpaths, memory-bank NCE + PixPro + PCL prototypes on R3D / R(2+1)D
    "saccade": Plug(saccade.add_args, saccade.data_lists, saccade.build, check=saccade.check, prog="saccade"),
}
#: ``run_finetuning.py --task``
FINETUNING: dict[str, Plug] = {
    "finetune": Plug(classification.add_args, classification.data_lists, classification.build, check=_check_classes,
                     after_fit=classification_test.after_fit, evaluate_only=classification_test.evaluate_only,
                     prog="finetune"),
    # one value per video (LVU like / view), MSE and Pearson r; shares the finetuning flags
    "regression": Plug(classification.add_args, regression.data_lists, regression.build, check=regression.check,
                       after_fit=regression.after_fit, evaluate_only=regression.evaluate_only, prog="regression"),
    # evaluation only (--eval implied): recall@k of test videos against the training gallery (Saccade-VSSL, VCOP)
    "retrieval": Plug(retrieval.add_args, retrieval.data_lists, retrieval.build, check=retrieval.check,
                      evaluate_only=retrieval.evaluate_only, prog="retrieval"),
}

__all__ = ["Plug", "PRETRAINING", "FINETUNING", "Method"]
