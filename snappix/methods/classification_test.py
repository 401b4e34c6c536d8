"""The multi-view test of a finetuned classifier: after training (``--test_best``, on
``checkpoint-best.pth``) and alone (``--eval``): every test video x ``--test_num_segment`` x
``--test_num_crop`` views, softmax averaged per video, gathered across ranks
(:func:`snappix.engine.multiview.multiview_test`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os

from snappix.engine import checkpoint as C
from snappix.engine import distributed as D
from snappix.engine.multiview import multiview_test

from .classification import build_classifier, eval_loader, make_dataset, resolve_lists
from .pretrained import load_pretrained

log = logging.getLogger(__name__)


def find_eval_checkpoint(output_dir: str | None) -> str | None:
    """``checkpoint-best.pth`` if present, else the newest readable checkpoint, else None."""
    if not output_dir:
        return None
    best = C.checkpoint_path(output_dir, "best")
    return best if os.path.isfile(best) else C.latest_checkpoint(output_dir)


def run_test(args, info, model, test_path: str, checkpoint: str | None, tag: str, list_format: str = "cls",
             scoring=None) -> dict:
    """Load ``checkpoint`` (if given) into ``model`` and run the multi-view test; returns the summary.

    ``list_format`` (``cls`` / ``reg``) and ``scoring`` (``dataset -> dict(score_fn=..., scorer=...)`` for
    :func:`snappix.engine.multiview.multiview_test`; default: softmax and top-k) let another finetuning
    plug (regression) reuse this test."""
    if checkpoint:
        state = C.load_checkpoint(checkpoint)
        if "model" not in state:
            raise C.CheckpointError(f"{checkpoint} has no 'model' entry: not a checkpoint of run_finetuning.py "
                                    "(pretrained weights go to --finetune)")
        C.require_match(model, state["model"], checkpoint, "--resume" if checkpoint == args.resume else "--eval")
        report = C.load_state_dict_report(D.unwrap_model(model), state["model"])
        log.info("testing %s (epoch %s)%s", checkpoint, state.get("epoch"), "" if report.ok else f": {report}")
    names = None
    if args.class_names:
        with open(args.class_names) as f:
            names = [line.strip() for line in f if line.strip()]
    dataset = make_dataset(args, test_path, "test", list_format)
    out = os.path.join(args.output_dir, tag) if args.output_dir else None
    return multiview_test(model.to(info.device), eval_loader(args, info, dataset), info.device, args.precision,
                          output_dir=out, class_names=names, unreadable=args.test_unreadable,
                          **(scoring(dataset) if scoring else {}))


def after_fit(args: argparse.Namespace, info: D.DistInfo, history: dict, **test_kw) -> dict:
    """``--test_best``: the multi-view test of ``checkpoint-best.pth`` (else the final weights) after
    training, stored as ``history["test"]`` and in ``output_dir/test``. With ``--val_split`` (the best epoch
    chosen on a split of the training list) the last epoch's weights are tested first (``history["test_last"]``,
    ``output_dir/test_last``) and both are summarised in ``output_dir/selection.json`` / ``selection.md``."""
    test_list = resolve_lists(args)[2]
    if args.test_best and test_list:
        if getattr(args, "val_split", 0):
            history["test_last"] = run_test(args, info, history["model"], test_list, None, "test_last", **test_kw)
        best = C.checkpoint_path(args.output_dir, "best") if args.output_dir else None
        history["test"] = run_test(args, info, history["model"], test_list,
                                   best if best and os.path.isfile(best) else None, "test", **test_kw)
        if "test_last" in history and args.output_dir and D.is_main_process():
            selected = C.load_checkpoint(best).get("epoch") if best and os.path.isfile(best) else None
            write_selection(args.output_dir, history, test_list, args.epochs - 1, selected)
    return history


def write_selection(out_dir: str, history: dict, test_list: str, last: int | None, selected: int | None,
                    key: str = "acc1") -> dict:
    """``selection.json`` / ``selection.md``: the test numbers of the ``last`` epoch and of the ``selected`` one
    (``checkpoint-best.pth``: the best validation ``key`` on the ``--val_split`` list), side by side.
    ``history``: :func:`snappix.engine.runner.fit`'s, with ``test`` and ``test_last`` summaries."""
    scored = {e: m.get(key) for e, m in (history.get("val") or {}).items() if isinstance(m, dict)}
    pick = {k: v for k, v in history["test"].items() if not isinstance(v, (list, dict))}
    pick_last = {k: v for k, v in history["test_last"].items() if not isinstance(v, (list, dict))}
    out = {"test_list": test_list, "val_split_list": os.path.join(out_dir, "val_split", "val.csv"),
           "last": {"epoch": last, f"val_{key}": scored.get(last), "test": pick_last},
           "selected": {"epoch": selected, f"val_{key}": scored.get(selected), "test": pick}}
    with open(os.path.join(out_dir, "selection.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, default=float)
    metrics = [m for m in ("video_top1", "video_top5", "clip_top1") if m in pick]
    rows = ["| weights | epoch | val " + key + " | " + " | ".join(f"test {m}" for m in metrics) + " |",
            "|---|---:|---:|" + "---:|" * len(metrics)]
    for name, part in (("last epoch", out["last"]), ("selected on the validation split", out["selected"])):
        v = part[f"val_{key}"]
        rows.append(f"| {name} | {part['epoch']} | {'-' if v is None else f'{v:.2f}'} | "
                    + " | ".join(f"{float(part['test'][m]):.2f}" for m in metrics) + " |")
    with open(os.path.join(out_dir, "selection.md"), "w", encoding="utf-8") as f:
        f.write(f"# Test list {test_list}: last versus selected epoch\n\n" + "\n".join(rows) + "\n")
    log.info("last versus selected epoch:\n%s", "\n".join(rows))
    return out


def evaluate_only(args: argparse.Namespace, info: D.DistInfo, build=None, **test_kw) -> dict:
    """``--eval``: the multi-view test of ``--resume``, else the run's best / latest checkpoint, else the
    ``--finetune`` weights. ``build`` (``args -> (model, outputs)``, default the classifier) and ``test_kw``
    (:func:`run_test`'s ``list_format`` / ``scoring``) serve other finetuning plugs.

    Raises:
        FileNotFoundError: no checkpoint in ``--output_dir`` and no ``--resume`` / ``--finetune``.
    """
    model, _ = (build or build_classifier)(args)
    checkpoint = args.resume or find_eval_checkpoint(args.output_dir)
    if checkpoint is None and args.finetune:
        load_pretrained(model, args.finetune, trusted=args.trust_checkpoint, min_loaded=args.finetune_min_loaded)
    elif checkpoint is None:
        raise FileNotFoundError(f"--eval: no checkpoint-best.pth or checkpoint-latest.pth in {args.output_dir} "
                                "and no --resume / --finetune given")
    return {"test": run_test(args, info, model, resolve_lists(args)[2], checkpoint, "test", **test_kw)}
