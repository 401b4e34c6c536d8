"""Supervised finetuning of a video classifier as a method plug (``run_finetuning.py``): SnapPix coded
ViTs, video ViTs, VideoMamba, K-centered ViTs, C3D and SVC2D on Kinetics, SSV2, UCF101, HMDB51, ...

Training clips get VideoMAE's augmentation (random resized crop, RandAugment, random erasing) and, on the
device, mixup / cutmix as the plug's batch transform; the objective is cross-entropy with label smoothing
or mixup's soft targets; validation is one centre view per video (top-1 / top-5), and the multi-view test
(:mod:`snappix.methods.classification_test`) runs after training and with ``--eval``.
VideoMAE's recipe: https://arxiv.org/abs/2203.12602.
"""

from __future__ import annotations

import argparse
import logging
import os

import torch

from snappix.data.datasets import VideoClsDataset, multiple_samples_collate
from snappix.data.lists import read_list
from snappix.data.mixup import build_mixup
from snappix.data.splits import carve_validation
from snappix.data.windowed import WindowedVideoDataset
from snappix.engine import args as A
from snappix.engine import distributed as D
from snappix.engine.loop import evaluate
from snappix.engine.method import Method
from snappix.engine.runner import build_loader
from snappix.models.factory import classifier_from_flags
from snappix.models.probe import freeze_for_linear_probe
from snappix.objectives import ClassificationLoss

from .pretrained import load_pretrained

log = logging.getLogger(__name__)

#: classes per ``--data_set`` (None: any, checked against the labels of the lists only)
DATASETS = {"Kinetics-400": 400, "Kinetics-600": 600, "Kinetics-700": 700, "Kinetics-710": 710, "SSV2": 174,
            "UCF101": 101, "HMDB51": 51, "Kinetics_sparse": 400, "Breakfast": 10, "COIN": 180, "LVU": None,
            "custom": None}
#: datasets the VideoMamba reference samples one frame per segment (TSN), whatever the model
SEGMENT_DATASETS = ("Kinetics_sparse", "Breakfast", "COIN", "LVU")
#: the field's test views (segments x crops) per dataset, used by scripts/precise_val
FIELD_VIEWS = {"Kinetics-400": (5, 3), "SSV2": (2, 3), "UCF101": (3, 3)}


def add_args(parser: argparse.ArgumentParser) -> None:
    """The finetuning flags (VideoMAEv2 / SnapPix names), the multi-view test's, and the K-centered ViT's
    own (the k-center selection flags themselves come from :func:`snappix.engine.args.add_kcenter_args`)."""
    g = parser.add_argument_group("finetuning")
    g.add_argument("--finetune", default=None, help="pretrained checkpoint to start from (ours, VideoMAE, SnapPix)")
    g.add_argument("--finetune_min_loaded", type=float, default=0.5, metavar="SHARE",
                   help="stop before training when less than this share (0-1) of the model's weights outside the "
                        "new head load from --finetune (a checkpoint of another model); 0 disables the check")
    A.add_bool_arg(g, "--trust_checkpoint", default=False,
                   help="allow --finetune files that pickled Python objects (e.g. argparse.Namespace); "
                        "only for files you trust")
    g.add_argument("--data_set", default="custom", choices=sorted(DATASETS),
                   help="dataset name: fixes the class count and list names (custom: any)")
    g.add_argument("--nb_classes", type=int, default=None, help="number of classes (checked against --data_set)")
    g.add_argument("--val_path", default=None, help="validation list when --data_path is a file")
    g.add_argument("--test_path", default=None, help="test list when --data_path is a file (default: val)")
    g.add_argument("--sampling", default=None, choices=["dense", "segment"],
                   help="dense num_frames x sampling_rate clips (SnapPix, all datasets) or one frame per "
                        "segment (TSN); default: segment for " + ", ".join(SEGMENT_DATASETS) + ", for SSV2 "
                        "with a videomamba_* model (the VideoMamba reference) and with --trimmed; else dense")
    g.add_argument("--trimmed", type=float, default=None, metavar="SECONDS",
                   help="long videos: every row becomes sliding windows of this many seconds (VideoMamba LVU: "
                        "60), each tested and trained as its own clip; the multi-view test averages all "
                        "windows of a video (off by default)")
    g.add_argument("--time_stride", type=float, default=16.0, metavar="SECONDS",
                   help="with --trimmed: seconds between window starts (VideoMamba LVU: 16)")
    g.add_argument("--short_side_size", type=int, default=112,
                   help="validation / test: resize the short side to this before the crop")
    g.add_argument("--drop_path", type=float, default=0.1, help="stochastic depth rate")
    g.add_argument("--patch_size", type=int, default=None,
                   help="spatial patch side of the classifier (default: the registered model's), e.g. 16 for a "
                        "videomamba_super_tiny distilled from a patch-16 teacher")
    g.add_argument("--tubelet_size", type=int, default=None,
                   help="frames per token of the video classifiers (default: the registered model's)")
    g.add_argument("--in_chans", type=int, default=1,
                   help="input channels of the classifier: 1 for the grey clips the data layer delivers")
    g.add_argument("--init_scale", type=float, default=0.001,
                   help="multiplier of the freshly initialised head (VideoMAE/SnapPix 0.001; 1 for short "
                        "schedules, where a near-zero head delays learning)")
    g.add_argument("--width", type=int, default=None,
                   help="stem width of the saccade_r3d / saccade_r21d backbones (default: the registered 64; "
                        "narrow networks for CPU demos)")
    g.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    g.add_argument("--mixup", type=float, default=0.8, help="mixup alpha (0: off)")
    g.add_argument("--cutmix", type=float, default=1.0, help="cutmix alpha (0: off)")
    g.add_argument("--cutmix_minmax", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="cutmix box area ratio range (overrides --cutmix alpha)")
    g.add_argument("--mixup_prob", type=float, default=1.0, help="probability of mixup or cutmix per batch")
    g.add_argument("--mixup_switch_prob", type=float, default=0.5,
                   help="probability of cutmix instead of mixup when both are on")
    g.add_argument("--mixup_mode", default="batch", choices=["batch", "pair", "elem"],
                   help="one mixing draw per batch, per pair or per element")
    g.add_argument("--reprob", type=float, default=0.25, help="random erasing probability")
    g.add_argument("--aa", default="rand-m7-n4-mstd0.5-inc1", help="RandAugment policy ('' or none: off)")
    g.add_argument("--train_crop_scale", type=float, nargs=2, default=(0.08, 1.0), metavar=("MIN", "MAX"),
                   help="area range of the training random resized crop (VideoMAE: 0.08 1.0)")
    g.add_argument("--train_crop_ratio", type=float, nargs=2, default=(3 / 4, 4 / 3), metavar=("MIN", "MAX"),
                   help="aspect-ratio range of the training random resized crop (VideoMAE: 0.75 1.333); 1 1 "
                        "keeps square crops, so motion directions and speeds are not distorted")
    g.add_argument("--flip", default="auto", choices=["auto", "on", "off"], help="horizontal flip (auto: off for SSV2)")
    g.add_argument("--test_num_segment", type=int, default=2, help="multi-view test: temporal views per video")
    g.add_argument("--test_num_crop", type=int, default=3, help="multi-view test: spatial crops per view")
    parser.set_defaults(eval_freq=1, layer_decay=0.65, min_lr=1e-6, warmup_epochs=5, opt_betas=[0.9, 0.999])
    A.add_bool_arg(g, "--eval", default=False, help="only run the multi-view test (checkpoint-best.pth by default)")
    A.add_bool_arg(g, "--test_best", default=True, negative="--no_test_best",
                   help="after training, run the multi-view test of checkpoint-best.pth")
    A.add_bool_arg(g, "--dist_eval", default=True, negative="--no_dist_eval",
                   help="shard evaluation across ranks (else every rank evaluates everything)")
    g.add_argument("--test_unreadable", default="skip", choices=["skip", "wrong"],
                   help="an unreadable test video (named in the summary and test/unreadable_videos.csv) is left "
                        "out of the multi-view scores (skip) or counted as a wrong prediction (wrong)")
    g.add_argument("--class_names", default=None, help="text file, one class name per line (for the report)")
    g.add_argument("--val_split", type=float, default=0.0, metavar="FRACTION",
                   help="--task finetune: hold out this share of the training list (per class, seeded by --seed; "
                        "written to OUTPUT_DIR/val_split/) to validate on and select checkpoint-best.pth, instead "
                        "of the val list; the test list is then only tested, with the last and the selected "
                        "epoch (0: off)")
    A.add_bool_arg(g, "--linear_probe", default=False,
                   help="train the head only: every other weight frozen, and the modules outside the head kept "
                        "in eval mode (BatchNorm statistics frozen too, unless --probe_bn_train)")
    A.add_bool_arg(g, "--probe_bn_train", default=False,
                   help="with --linear_probe: BatchNorm layers follow train mode (batch statistics, running "
                        "statistics updated), as Saccade-VSSL's reference probe")
    g.add_argument("--head_drop_rate", type=float, default=None,
                   help="dropout before the classifier head (default: the model's; Saccade-VSSL finetuning: 0.7)")
    k = parser.add_argument_group("k-centered patch sampling: the kcenter_vit_* models")
    k.add_argument("--kcenter_num_patches", type=int, default=None,
                   help="tokens per clip incl. hybrid frames (default: a quarter of all patches)")
    k.add_argument("--kcenter_hybrid_frames", type=int, default=1, help="whole frames kept (paper: 3 of 32)")


def data_lists(args: argparse.Namespace) -> tuple[list[str | None], str]:
    """The lists the run reads and their format, for the data doctor (``--check_data``; not with ``--eval``)."""
    return ([] if args.eval else list(resolve_lists(args))), "cls"


def resolve_lists(args) -> tuple[str, str | None, str | None]:
    """``(train, val, test)`` list paths from ``--data_path`` (folder or file), ``--val_path``, ``--test_path``."""
    if os.path.isdir(args.data_path):
        train, val, test = (os.path.join(args.data_path, f"{n}.csv") for n in ("train", "val", "test"))
        val = args.val_path or (val if os.path.isfile(val) else None)
        test = args.test_path or (test if os.path.isfile(test) else val)
        return train, val, test
    return args.data_path, args.val_path, args.test_path or args.val_path


def check_classes(args, lists) -> int:
    """``--nb_classes`` against ``--data_set`` and against every label of the lists.

    Raises:
        snappix.engine.args.ConfigError (a ValueError): a mismatch, naming the flag values or the file and
            line of the offending label.
    """
    expected = DATASETS[args.data_set]
    nb = args.nb_classes if args.nb_classes is not None else expected
    if nb is None:
        raise A.ConfigError(f"--data_set {args.data_set} needs --nb_classes N (the number of classes of the lists)")
    if expected is not None and nb != expected:
        raise A.ConfigError(f"--nb_classes {nb} does not match --data_set {args.data_set} ({expected} classes)")
    for path in lists:
        if path and os.path.isfile(path):
            for e in read_list(path, "cls", args.data_root, args.allow_outside_root):
                if e.label >= nb:
                    raise A.ConfigError(f"{path}:{e.line_no}: label {e.label} out of range for --nb_classes {nb}")
    return nb


def default_sampling(args: argparse.Namespace) -> str:
    """``--sampling``, else ``segment`` for :data:`SEGMENT_DATASETS`, for SSV2 with a ``videomamba_*``
    model (VideoMamba samples SSV2 by segments, SnapPix densely) and with ``--trimmed``; else ``dense``."""
    if args.sampling:
        return args.sampling
    videomamba_ssv2 = args.data_set == "SSV2" and str(args.model).startswith("videomamba")
    segment = args.data_set in SEGMENT_DATASETS or videomamba_ssv2 or getattr(args, "trimmed", None)
    return "segment" if segment else "dense"


def make_dataset(args, path: str, mode: str, list_format: str = "cls") -> VideoClsDataset:
    """The dataset of one list (``cls`` labels or ``reg`` targets); a :class:`WindowedVideoDataset` of
    ``--trimmed`` / ``--time_stride`` windows when ``--trimmed`` is given."""
    flip = {"on": True, "off": False}.get(args.flip, args.data_set != "SSV2")
    gray = "first" if getattr(args, "in_chans", 1) == 1 else None  # RGB clips for 3-channel models
    windows = {}
    if getattr(args, "trimmed", None):
        windows = dict(trimmed=args.trimmed, time_stride=args.time_stride)
    cls = WindowedVideoDataset if windows else VideoClsDataset
    return cls(path, args.data_root, mode=mode, num_frames=args.num_frames, list_format=list_format, **windows,
               sampling_rate=args.sampling_rate, sampling=default_sampling(args), input_size=args.input_size,
               short_side_size=args.short_side_size, num_sample=args.num_sample,
               test_num_segment=args.test_num_segment, test_num_crop=args.test_num_crop,
               aa=args.aa if args.aa and args.aa != "none" else None, reprob=args.reprob, flip=flip,
               video_backend=args.video_backend, max_bad_fraction=args.max_bad_fraction,
               log_dir=args.output_dir, cache_videos=args.cache_videos, gray=gray,
               allow_outside_root=args.allow_outside_root,
               crop_scale=tuple(args.train_crop_scale), crop_ratio=tuple(args.train_crop_ratio))


def build_model(args: argparse.Namespace, num_classes: int) -> torch.nn.Module:
    """The classifier of ``--model`` (:func:`snappix.models.factory.classifier_from_flags`), freshly initialised."""
    return classifier_from_flags(vars(args), num_classes)


def eval_loader(args: argparse.Namespace, info: D.DistInfo, dataset):
    """A non-shuffling loader over ``dataset``: sharded across ranks with ``--dist_eval``, else whole on each."""
    if args.dist_eval or not info.distributed:
        return build_loader(dataset, args, info, train=False)[0]
    whole = D.DistInfo(rank=0, world_size=1, local_rank=info.local_rank, distributed=False, backend=info.backend,
                       device=info.device, source=info.source)
    return build_loader(dataset, args, whole, train=False)[0]


def make_eval_fn(args: argparse.Namespace, info: D.DistInfo, val_list: str):
    """Single-view validation (centre clip, centre crop): loss, top-1, top-5 over all ranks."""
    val_loader = eval_loader(args, info, make_dataset(args, val_list, "validation"))
    objective = ClassificationLoss(0.0)

    def eval_fn(net, epoch, logger):
        return evaluate(net, objective, val_loader, info.device, args.precision, logger, desc=f"val {epoch}",
                        model_inputs=())

    return eval_fn


def build_classifier(args: argparse.Namespace) -> tuple[torch.nn.Module, int]:
    """The classifier with ``--nb_classes`` checked against ``--data_set`` and the lists' labels."""
    num_classes = check_classes(args, list(resolve_lists(args)))
    model = build_model(args, num_classes)
    log.info("model %s: %.2f M parameters, %d classes", args.model,
             sum(p.numel() for p in model.parameters()) / 1e6, num_classes)
    return model, num_classes


def build(args: argparse.Namespace, info: D.DistInfo) -> Method:
    """The finetuning plug: classifier (``--finetune`` weights loaded), augmented training set, mixup /
    cutmix as batch transform, cross-entropy, single-view validation keeping ``checkpoint-best.pth`` by top-1.

    Raises:
        snappix.engine.args.ConfigError: class counts that do not match (:func:`check_classes`).
        snappix.engine.state_dicts.ModelMismatchError: ``--finetune`` is another model's checkpoint.
    """
    model, num_classes = build_classifier(args)
    if args.finetune:
        load_pretrained(model, args.finetune, trusted=args.trust_checkpoint, min_loaded=args.finetune_min_loaded)
    if args.linear_probe:
        log.info("linear probe: training %s only", freeze_for_linear_probe(model, bn_train=args.probe_bn_train))
    train_list, val_list, _ = resolve_lists(args)
    if args.val_split:
        train_list, val_list = carve_validation(train_list, args.val_split, args.seed, args.output_dir,
                                                args.data_root, args.allow_outside_root)
        log.info("--val_split %g: training on %s, selecting on %s", args.val_split, train_list, val_list)
    mixup = build_mixup(num_classes, args.mixup, args.cutmix, args.cutmix_minmax, args.mixup_prob,
                        args.mixup_switch_prob, args.mixup_mode, args.smoothing)
    transform = None if mixup is None else (lambda batch, _model: mixup.batch_transform(batch))
    eval_fn = make_eval_fn(args, info, val_list) if val_list else None
    return Method(model=model, objective=ClassificationLoss(args.smoothing, mixup_active=mixup is not None),
                  train_set=make_dataset(args, train_list, "train"),
                  collate_fn=multiple_samples_collate if args.num_sample > 1 else None, model_inputs=(),
                  batch_transform=transform, evaluate=eval_fn, best_metric="acc1" if eval_fn else None,
                  name="finetune")
