"""Finetuning and precise (multi-view) evaluation of video classifiers: SnapPix coded ViTs, video ViTs,
C3D and SVC2D on Kinetics, SSV2, UCF101, HMDB51, ... (VideoMAEv2 / SnapPix flags).

    python run_finetuning.py --model coded_vit_small_patch8_112 --data_set UCF101 --nb_classes 101 \
        --data_path LISTS_DIR --data_root VIDEOS --finetune PRETRAIN/checkpoint-299.pth --output_dir OUT
    python run_finetuning.py ... --eval                     # multi-view test of checkpoint-best.pth

``--data_path`` is a folder with ``train.csv`` / ``val.csv`` / ``test.csv`` (VideoMAE convention; test
falls back to val) or a single training list with ``--val_path`` / ``--test_path``. Training validates
one view per video every epoch and keeps ``checkpoint-best.pth``; ``--test_best`` (after training) and
``--eval`` run the full test: every video x ``--test_num_segment`` x ``--test_num_crop`` views, softmax
averaged per video, gathered across ranks in memory.
"""

from __future__ import annotations

import logging
import os

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from snappix.data.datasets import VideoClsDataset, multiple_samples_collate
from snappix.data.lists import read_list
from snappix.data.mixup import build_mixup
from snappix.engine import args as A
from snappix.engine import checkpoint as C
from snappix.engine import distributed as D
from snappix.engine.cli import user_errors
from snappix.engine.loop import evaluate
from snappix.engine.precision import resolve_precision
from snappix.engine.multiview import multiview_test
from snappix.engine.pretrained import load_pretrained
from snappix.engine.runner import build_loader, fit
from snappix.models.factory import classifier_from_flags
from snappix.objectives import ClassificationLoss
from snappix.tools.check_data import check_lists_for_training

log = logging.getLogger("run_finetuning")

#: classes per ``--data_set`` (None: any, checked against the labels of the lists only)
DATASETS = {"Kinetics-400": 400, "Kinetics-600": 600, "Kinetics-700": 700, "Kinetics-710": 710, "SSV2": 174,
            "UCF101": 101, "HMDB51": 51, "Kinetics_sparse": 400, "Breakfast": 10, "COIN": 180, "LVU": None,
            "custom": None}
#: the field's test views (segments x crops) per dataset, used by scripts/precise_val
FIELD_VIEWS = {"Kinetics-400": (5, 3), "SSV2": (2, 3), "UCF101": (3, 3)}


def build_parser():
    parser = A.build_parser("finetuning and multi-view evaluation of video classifiers")
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
                        "segment (VideoMAE SSV2, Kinetics_sparse); default: segment for Kinetics_sparse")
    g.add_argument("--short_side_size", type=int, default=112,
                   help="validation / test: resize the short side to this before the crop")
    g.add_argument("--drop_path", type=float, default=0.1, help="stochastic depth rate")
    g.add_argument("--init_scale", type=float, default=0.001,
                   help="multiplier of the freshly initialised head (VideoMAE/SnapPix 0.001; 1 for short "
                        "schedules, where a near-zero head delays learning)")
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
    g.add_argument("--coded_type", default=None, help="sensor pattern of coded models")
    g.add_argument("--pattern", default=None, help="exposure pattern file")
    g.add_argument("--pattern_dir", default=None, help="folder with SnapPix's released patterns")
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
    k = parser.add_argument_group("k-centered patch sampling (kcenter_vit_* models)")
    k.add_argument("--kcenter_num_patches", type=int, default=None,
                   help="tokens per clip incl. hybrid frames (default: a quarter of all patches)")
    k.add_argument("--kcenter_hybrid_frames", type=int, default=1, help="whole frames kept (paper: 3 of 32)")
    k.add_argument("--kcenter_time_division", type=int, default=1, help="K-center ViT: temporal cells")
    k.add_argument("--kcenter_space_division", type=int, default=1, help="K-center ViT: spatial cells per side")
    k.add_argument("--kcenter_temporal_coef", type=float, default=1.0,
                   help="K-center ViT: weight of time in the distance")
    k.add_argument("--kcenter_spatial_coef", type=float, default=1.0,
                   help="K-center ViT: weight of position in the distance")
    k.add_argument("--kcenter_first_center", default="auto", choices=["auto", "random", "center"],
                   help="first k-center centre: auto = random in training, fixed centre patch in evaluation")
    return parser


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


def make_dataset(args, path: str, mode: str) -> VideoClsDataset:
    sampling = args.sampling or ("segment" if args.data_set == "Kinetics_sparse" else "dense")
    flip = {"on": True, "off": False}.get(args.flip, args.data_set != "SSV2")
    return VideoClsDataset(path, args.data_root, mode=mode, num_frames=args.num_frames,
                           sampling_rate=args.sampling_rate, sampling=sampling, input_size=args.input_size,
                           short_side_size=args.short_side_size, num_sample=args.num_sample,
                           test_num_segment=args.test_num_segment, test_num_crop=args.test_num_crop,
                           aa=args.aa if args.aa and args.aa != "none" else None, reprob=args.reprob, flip=flip,
                           video_backend=args.video_backend, max_bad_fraction=args.max_bad_fraction,
                           log_dir=args.output_dir, cache_videos=args.cache_videos,
                           allow_outside_root=args.allow_outside_root,
                           crop_scale=tuple(args.train_crop_scale),
                           crop_ratio=tuple(args.train_crop_ratio))


def build_model(args, num_classes: int) -> torch.nn.Module:
    return classifier_from_flags(vars(args), num_classes)


def eval_loader(args, info, dataset):
    if args.dist_eval or not info.distributed:
        return build_loader(dataset, args, info, train=False)[0]
    whole = D.DistInfo(rank=0, world_size=1, local_rank=info.local_rank, distributed=False, backend=info.backend,
                       device=info.device, source=info.source)
    return build_loader(dataset, args, whole, train=False)[0]


def make_eval_fn(args, info, val_list: str):
    """Single-view validation (centre clip, centre crop): loss, top-1, top-5 over all ranks."""
    val_loader = eval_loader(args, info, make_dataset(args, val_list, "validation"))
    objective = ClassificationLoss(0.0)

    def eval_fn(net, epoch, logger):
        return evaluate(net, objective, val_loader, info.device, args.precision, logger, desc=f"val {epoch}",
                        model_inputs=())

    return eval_fn


def find_eval_checkpoint(output_dir: str | None) -> str | None:
    """``checkpoint-best.pth`` if present, else the newest readable checkpoint, else None."""
    if not output_dir:
        return None
    best = C.checkpoint_path(output_dir, "best")
    return best if os.path.isfile(best) else C.latest_checkpoint(output_dir)


def run_test(args, info, model, test_path: str, checkpoint: str | None, tag: str) -> dict:
    """Load ``checkpoint`` (if given) into ``model`` and run the multi-view test; returns the summary."""
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
    dataset = make_dataset(args, test_path, "test")
    out = os.path.join(args.output_dir, tag) if args.output_dir else None
    return multiview_test(model.to(info.device), eval_loader(args, info, dataset), info.device, args.precision,
                          output_dir=out, class_names=names, unreadable=args.test_unreadable)


@record  # under torchrun: the failing rank's error is shown in the launcher's summary
@user_errors  # inside @record: a user error is one line and exit status 2 on its rank (--debug: traceback)
def main(argv=None) -> dict:
    parser = build_parser()
    args = A.parse_args(parser, argv)
    if not args.model or not args.data_path:
        parser.error("--model and --data_path are required (directly or through --config)")
    train_list, val_list, test_list = resolve_lists(args)
    num_classes = check_classes(args, [train_list, val_list, test_list])
    if args.check_data and not args.eval:  # the data doctor first (rank 0; reports in output_dir/data_check)
        check_lists_for_training([train_list, val_list, test_list], "cls", args.data_root, args.output_dir,
                                 args.check_data_deep, args.num_frames, progress=args.progress)
    info = D.init_distributed(args.device, args.local_rank, args.dist_url)
    args.precision = resolve_precision(args.precision, info.device)  # auto -> bf16 / fp32, said once
    A.default_output_dir(args, "finetune")
    D.seed_everything(args.seed)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    A.save_config(args, args.output_dir, evaluation=args.eval)
    model = build_model(args, num_classes)
    log.info("model %s: %.2f M parameters, %d classes", args.model,
             sum(p.numel() for p in model.parameters()) / 1e6, num_classes)
    if args.eval:
        checkpoint = args.resume or find_eval_checkpoint(args.output_dir)
        if checkpoint is None and args.finetune:
            load_pretrained(model, args.finetune, trusted=args.trust_checkpoint,
                            min_loaded=args.finetune_min_loaded)
        elif checkpoint is None:
            raise FileNotFoundError(f"--eval: no checkpoint-best.pth or checkpoint-latest.pth in {args.output_dir} "
                                    "and no --resume / --finetune given")
        result = {"test": run_test(args, info, model, test_list, checkpoint, "test")}
        D.cleanup()
        return result
    if args.finetune:
        load_pretrained(model, args.finetune, trusted=args.trust_checkpoint, min_loaded=args.finetune_min_loaded)
    train_set = make_dataset(args, train_list, "train")
    collate = multiple_samples_collate if args.num_sample > 1 else None
    loader, sampler = build_loader(train_set, args, info, train=True, collate_fn=collate)
    mixup = build_mixup(num_classes, args.mixup, args.cutmix, args.cutmix_minmax, args.mixup_prob,
                        args.mixup_switch_prob, args.mixup_mode, args.smoothing)
    objective = ClassificationLoss(args.smoothing, mixup_active=mixup is not None)
    eval_fn = make_eval_fn(args, info, val_list) if val_list else None

    history = fit(args, info, model, objective, loader, sampler, eval_fn, model_inputs=(),
                  batch_transform=mixup.batch_transform if mixup is not None else None,
                  best_metric="acc1" if eval_fn else None)
    if args.test_best and test_list:
        best = C.checkpoint_path(args.output_dir, "best") if args.output_dir else None
        history["test"] = run_test(args, info, history["model"], test_list,
                                   best if best and os.path.isfile(best) else None, "test")
    D.cleanup()
    return history


if __name__ == "__main__":
    main()
