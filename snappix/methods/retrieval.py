"""Nearest-neighbour video retrieval as an evaluation-only plug: ``run_finetuning.py --task retrieval``.

The protocol of Saccade-VSSL (Lai et al., IEEE TCSVT 2023, https://doi.org/10.1109/TCSVT.2023.3301698; also
VCOP / CoCLR), without the reference's defects (docs/methods/saccade.md, "Evaluation"):

* gallery = the training list (``--data_path``, or ``--gallery_path``), queries = the test list
  (``--test_path`` / ``--val_path`` / ``val.csv``);
* per video ``--retrieval_clips`` (10) clips of ``--num_frames`` frames at uniformly spaced positions,
  each short side resized to ``--short_side_size`` and centre-cropped to ``--input_size``: deterministic, no
  colour jitter at test time; no video dropped by a ``drop_last`` loader;
* the feature of a clip is the checkpoint's projection of the pooled backbone feature when the checkpoint
  has one (``projection.*``, Saccade-VSSL's ``feature_proj``), else the pooled backbone feature
  (``--retrieval_feature`` forces either); L2-normalised, averaged over the clips, L2-normalised again;
* recall@k (``--retrieval_ks``, 1 5 10 20 50): a query is a hit when any of its k nearest gallery videos
  (cosine) has its class. Written to ``output_dir/retrieval.json``, ``retrieval.md`` and
  ``retrieval_neighbours.csv``.

``--finetune`` names the checkpoint (a Saccade-VSSL pretraining checkpoint with ``backbone.*`` /
``projection.*`` keys, or any checkpoint :func:`~snappix.methods.pretrained.load_pretrained` reads); without it
the backbone keeps its random initialisation (a baseline, said in the report).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import torch
from torch import nn

from snappix.engine import distributed as D
from snappix.engine.args import ConfigError
from snappix.engine.checkpoint import load_checkpoint
from snappix.engine.logging import RunLogger
from snappix.engine.retrieval import DEFAULT_KS, VideoFeatures, extract_video_features, recall_at_k
from snappix.models.factory import classifier_from_flags
from snappix.objectives.instance_nce import ProjectionHead

from .classification import eval_loader, make_dataset, resolve_lists
from .pretrained import load_pretrained

log = logging.getLogger(__name__)

RESULT_JSON, RESULT_MD, NEIGHBOURS_CSV = "retrieval.json", "retrieval.md", "retrieval_neighbours.csv"


def add_args(parser: argparse.ArgumentParser) -> None:
    """The retrieval flags (``--task retrieval``); the model, clip and list flags are the finetuning ones."""
    g = parser.add_argument_group("retrieval (--task retrieval)")
    g.add_argument("--gallery_path", default=None,
                   help="gallery list (default: the training list, --data_path or DATA_PATH/train.csv)")
    g.add_argument("--retrieval_clips", type=int, default=10, help="uniformly spaced clips per video (centre crop)")
    g.add_argument("--retrieval_ks", type=int, nargs="+", default=list(DEFAULT_KS), metavar="K",
                   help="recall@k cut-offs")
    g.add_argument("--retrieval_feature", default="auto", choices=["auto", "projection", "backbone"],
                   help="auto: the checkpoint's projection (projection.*) when it has one, else the pooled "
                        "backbone feature")
    g.add_argument("--retrieval_search", default="torch", choices=["torch", "faiss"],
                   help="exact search by float32 matmul (ties: lower gallery row) or faiss IndexFlatIP")


def lists(args: argparse.Namespace) -> tuple[str, str]:
    """``(gallery, queries)`` list paths.

    Raises:
        ConfigError: no query list (pass --test_path or --val_path, or a --data_path folder with val.csv).
    """
    train, _, test = resolve_lists(args)
    if not test:
        raise ConfigError("--task retrieval needs a query list: --test_path (or --val_path, or a --data_path "
                          "folder with val.csv / test.csv)")
    return args.gallery_path or train, test


def data_lists(args: argparse.Namespace) -> tuple[list[str], str]:
    """The gallery and query lists, for the data doctor (``--check_data``)."""
    return list(lists(args)), "cls"


def check(args: argparse.Namespace) -> None:
    """Retrieval only evaluates: ``--eval`` is implied. Checks the cut-offs, clip count and lists.

    Raises:
        ConfigError: a cut-off < 1, ``--retrieval_clips`` < 1, or no query list.
    """
    args.eval = True
    if min(args.retrieval_ks) < 1 or args.retrieval_clips < 1:
        raise ConfigError(f"--retrieval_ks must be >= 1 and --retrieval_clips >= 1, got {args.retrieval_ks} and "
                          f"{args.retrieval_clips}")
    lists(args)


def build(args: argparse.Namespace, info: D.DistInfo):
    """Never called (``check`` implies ``--eval``): retrieval trains nothing.

    Raises:
        ConfigError: always.
    """
    raise ConfigError("--task retrieval only evaluates (--eval is implied)")


class Embedder(nn.Module):
    """``video (B, C, T, H, W) -> (B, D)``: ``backbone(video)`` (a ``num_classes=0`` model: its pooled feature),
    then ``projection`` when given (e.g. :class:`~snappix.objectives.instance_nce.ProjectionHead`)."""

    def __init__(self, backbone: nn.Module, projection: nn.Module | None = None):
        super().__init__()
        self.backbone, self.projection = backbone, projection

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        feat = self.backbone(video)
        return self.projection(feat) if self.projection is not None else feat


def load_projection(path: str, trusted: bool = False) -> ProjectionHead | None:
    """The ``projection.linear.{weight,bias}`` of a checkpoint (Saccade-VSSL's ``feature_proj``; the
    ``model`` / ``module`` / ``state_dict`` sub-dict and a ``module.`` prefix are looked through), or None.

    Raises:
        snappix.engine.checkpoint.CheckpointError: an unreadable file.
    """
    state = load_checkpoint(path, trusted=trusted)
    for key in ("model", "module", "state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    weights = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    w, b = weights.get("projection.linear.weight"), weights.get("projection.linear.bias")
    if w is None or w.dim() != 2:
        return None
    head = ProjectionHead(w.shape[1], w.shape[0])
    head.linear.weight.data.copy_(w)
    if b is not None:
        head.linear.bias.data.copy_(b)
    return head


def build_embedder(args: argparse.Namespace) -> tuple[Embedder, str]:
    """The feature model of ``--model`` (``num_classes=0``) with the ``--finetune`` weights, and a label of the
    feature used (``projection``, ``backbone`` or ``backbone (random init)``).

    Raises:
        ConfigError: ``--retrieval_feature projection`` with a checkpoint that has no projection.
        snappix.engine.state_dicts.ModelMismatchError: a checkpoint of another model (``--finetune_min_loaded``).
    """
    backbone = classifier_from_flags(vars(args), 0)
    projection, label = None, "backbone (random init)"
    if args.finetune:
        load_pretrained(backbone, args.finetune, trusted=args.trust_checkpoint, min_loaded=args.finetune_min_loaded)
        label = "backbone"
        if args.retrieval_feature != "backbone":
            projection = load_projection(args.finetune, args.trust_checkpoint)
            if projection is not None:
                label = "projection"
    elif args.retrieval_feature != "projection":
        log.warning("--task retrieval without --finetune: the backbone keeps its random initialisation")
    if args.retrieval_feature == "projection" and projection is None:
        raise ConfigError(f"--retrieval_feature projection: {args.finetune or 'no --finetune'} has no "
                          f"projection.linear.* weights (use --retrieval_feature backbone)")
    return Embedder(backbone, projection), label


def _features(args, info, model, path: str, logger, what: str) -> tuple[VideoFeatures, list]:
    clip_args = argparse.Namespace(**{**vars(args), "test_num_segment": args.retrieval_clips, "test_num_crop": 1})
    dataset = make_dataset(clip_args, path, "test")
    log.info("%s: %d videos x %d clips from %s", what, len(dataset.entries), args.retrieval_clips, path)
    feats = extract_video_features(model, eval_loader(args, info, dataset), info.device, args.precision,
                                   logger=logger)
    return feats, dataset.entries


def evaluate_only(args: argparse.Namespace, info: D.DistInfo) -> dict:
    """Extract gallery and query features, compute recall@k, write the report (rank 0); returns the summary
    (the same on every rank)."""
    start = time.perf_counter()
    gallery_path, query_path = lists(args)
    embedder, feature = build_embedder(args)
    model = embedder.to(info.device)
    logger = RunLogger(args.output_dir, tensorboard=False, progress=args.progress)
    gal, gal_entries = _features(args, info, model, gallery_path, logger, "gallery")
    qry, qry_entries = _features(args, info, model, query_path, logger, "queries")
    gal_labels = [gal_entries[i].label for i in gal.index]
    qry_labels = [qry_entries[i].label for i in qry.index]
    result = recall_at_k(qry.features, qry_labels, gal.features, gal_labels, args.retrieval_ks, args.retrieval_search)
    summary = {
        "recall": {str(k): v for k, v in result.recall.items()}, "feature": feature,
        "checkpoint": args.finetune, "model": args.model, "clips_per_video": args.retrieval_clips,
        "num_frames": args.num_frames, "sampling_rate": args.sampling_rate, "input_size": args.input_size,
        "short_side_size": args.short_side_size, "search": args.retrieval_search, "precision": args.precision,
        "gallery": {"list": gallery_path, "videos": len(gal_entries), "with_feature": int(len(gal.index)),
                    "unreadable": [gal_entries[i].rel_path for i in gal.unreadable]},
        "queries": {"list": query_path, "videos": len(qry_entries), "with_feature": int(len(qry.index)),
                    "unreadable": [qry_entries[i].rel_path for i in qry.unreadable]},
        "feature_dim": int(qry.features.shape[1]), "time_s": round(time.perf_counter() - start, 1),
    }
    if D.is_main_process():
        print(format_summary(summary), flush=True)
        if args.output_dir:
            write_report(args.output_dir, summary, result, qry, qry_entries, gal, gal_entries)
    return {"retrieval": summary}


def format_summary(summary: dict) -> str:
    """A markdown report: the recall table and what was measured."""
    ks = list(summary["recall"])
    lines = [f"# Retrieval: {summary['model']}, {summary['feature']} features", "",
             "| " + " | ".join(f"R@{k}" for k in ks) + " |", "|" + "---:|" * len(ks),
             "| " + " | ".join(f"{summary['recall'][k]:.2f}" for k in ks) + " |", ""]
    g, q = summary["gallery"], summary["queries"]
    lines += [f"- checkpoint: {summary['checkpoint'] or 'none (random initialisation)'}",
              f"- gallery: {g['with_feature']} of {g['videos']} videos of {g['list']}",
              f"- queries: {q['with_feature']} of {q['videos']} videos of {q['list']}",
              f"- {summary['clips_per_video']} uniformly spaced clips of {summary['num_frames']} frames (stride "
              f"{summary['sampling_rate']}) per video, short side {summary['short_side_size']}, centre crop "
              f"{summary['input_size']}; {summary['feature_dim']}-d features, L2 / mean / L2, cosine, "
              f"{summary['search']} search, {summary['precision']}; {summary['time_s']} s"]
    for name, part in (("gallery", g), ("query", q)):
        if part["unreadable"]:
            lines.append(f"- unreadable {name} videos left out ({len(part['unreadable'])}): "
                         f"{', '.join(part['unreadable'][:5])}")
    return "\n".join(lines)


def write_report(out_dir: str, summary: dict, result, qry: VideoFeatures, qry_entries, gal: VideoFeatures,
                 gal_entries) -> None:
    """``retrieval.json``, ``retrieval.md`` and ``retrieval_neighbours.csv`` (per query: label, hit at the
    smallest cut-off and the 5 nearest gallery videos with their labels)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, RESULT_JSON), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(out_dir, RESULT_MD), "w", encoding="utf-8") as f:
        f.write(format_summary(summary) + "\n")
    with open(os.path.join(out_dir, NEIGHBOURS_CSV), "w", encoding="utf-8") as f:
        f.write(f"query,label,hit@{result.ks[0]},neighbours (path:label)\n")
        for row, q in enumerate(qry.index):
            e = qry_entries[q]
            nn_ = [gal_entries[gal.index[j]] for j in result.neighbours[row, :5]]
            f.write(f"{e.rel_path},{e.label},{int(result.hits[row, 0])},"
                    f"{' '.join(f'{n.rel_path}:{n.label}' for n in nn_)}\n")
    log.info("retrieval report in %s", out_dir)
