"""Regression finetuning as a method plug (``run_finetuning.py --task regression --nb_classes 1``):
VideoMamba's LVU like / view tasks (https://arxiv.org/abs/2403.06977; ``docs/methods/videomamba.md``).

The classification plug's pieces are reused (flags, model, datasets, ``--finetune`` loading, the
multi-view test); what differs: ``reg`` lists (``path target``, the float target used exactly as written),
one output per video, mean squared error (:class:`snappix.objectives.regression.RegressionLoss`), no mixup,
and evaluation by MSE and Pearson's r computed over the whole validation / test set (views and windows of a
video averaged first). ``checkpoint-best.pth`` keeps the best validation r.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os

import torch

from snappix.data.datasets import multiple_samples_collate
from snappix.data.lists import read_list
from snappix.engine import args as A
from snappix.engine import distributed as D
from snappix.engine.method import Method
from snappix.engine.multiview import collect_view_scores, gather_views, merge_views
from snappix.objectives.regression import RegressionLoss, regression_metrics

from . import classification_test as T
from .classification import build_model, eval_loader, make_dataset, resolve_lists
from .pretrained import load_pretrained
from .regression_report import RegressionScorer, identity, targets_of

log = logging.getLogger(__name__)


def data_lists(args: argparse.Namespace) -> tuple[list[str | None], str]:
    """The lists the run reads, in the ``reg`` format, for the data doctor (none with ``--eval``)."""
    return ([] if args.eval else list(resolve_lists(args))), "reg"


def check(args: argparse.Namespace) -> None:
    """``--nb_classes`` must be 1 (or unset) and every list must parse as ``path target``.

    Raises:
        snappix.engine.args.ConfigError: another ``--nb_classes``.
        snappix.data.lists.ListFormatError: a malformed row (file and line named).
    """
    if args.nb_classes not in (None, 1):
        raise A.ConfigError(f"--task regression predicts one value per video: --nb_classes must be 1, "
                            f"got {args.nb_classes}")
    for path in resolve_lists(args):
        if path and os.path.isfile(path):
            read_list(path, "reg", args.data_root, args.allow_outside_root)


def build_regressor(args: argparse.Namespace) -> tuple[torch.nn.Module, int]:
    """The ``--model`` classifier with one output (``--nb_classes 1``), freshly initialised."""
    check(args)
    model = build_model(args, 1)
    log.info("model %s: %.2f M parameters, 1 output (regression)", args.model,
             sum(p.numel() for p in model.parameters()) / 1e6)
    return model, 1


def score_views(net: torch.nn.Module, loader, dataset, device, precision: str, logger=None) -> dict[str, float]:
    """MSE and Pearson's r of ``net`` over all of ``loader`` (every rank's views gathered, each video's
    views and windows averaged, then the metrics over all videos at once); identical on every rank.

    Returns:
        ``{"loss": mse, "mse": ..., "r": ..., "num_videos": ...}``.
    """
    records = gather_views(collect_view_scores(net, loader, device, precision, logger, score_fn=identity))
    merged = merge_views(records, len(dataset.entries), (dataset.test_num_segment, dataset.test_num_crop),
                         allow_missing=True, windows=getattr(dataset, "windows_per_row", None))
    metrics = regression_metrics(merged.scores[:, 0], targets_of(dataset)[merged.index])
    return {"loss": metrics["mse"], **metrics, "num_videos": int(len(merged.index))}


def make_eval_fn(args: argparse.Namespace, info: D.DistInfo, val_list: str):
    """Single-view validation (centre clip, centre crop; every window with ``--trimmed``): MSE and r."""
    dataset = make_dataset(args, val_list, "validation", "reg")
    loader = eval_loader(args, info, dataset)

    def eval_fn(net, epoch, logger):
        return score_views(net, loader, dataset, info.device, args.precision, logger)

    return eval_fn


def scoring(dataset) -> dict:
    """``run_test``'s scoring for regression: raw outputs per view, MSE / r reports against the targets."""
    return dict(score_fn=identity, scorer=RegressionScorer(targets_of(dataset)))


def build(args: argparse.Namespace, info: D.DistInfo) -> Method:
    """The regression plug: one-output model (``--finetune`` weights loaded), augmented training set
    (no mixup), MSE, validation by r keeping ``checkpoint-best.pth``.

    Raises:
        snappix.engine.args.ConfigError: ``--nb_classes`` other than 1.
        snappix.engine.state_dicts.ModelMismatchError: ``--finetune`` is another model's checkpoint.
    """
    model, _ = build_regressor(args)
    if args.finetune:
        load_pretrained(model, args.finetune, trusted=args.trust_checkpoint, min_loaded=args.finetune_min_loaded)
    train_list, val_list, _ = resolve_lists(args)
    eval_fn = make_eval_fn(args, info, val_list) if val_list else None
    return Method(model=model, objective=RegressionLoss(), train_set=make_dataset(args, train_list, "train", "reg"),
                  collate_fn=multiple_samples_collate if args.num_sample > 1 else None, model_inputs=(),
                  evaluate=eval_fn, best_metric="r" if eval_fn else None, name="regression")


#: ``--test_best`` after training and ``--eval``: the multi-view test with MSE / r
after_fit = functools.partial(T.after_fit, list_format="reg", scoring=scoring)
evaluate_only = functools.partial(T.evaluate_only, build=build_regressor, list_format="reg", scoring=scoring)
