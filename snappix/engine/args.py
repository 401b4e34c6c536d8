"""The one argument-building helper shared by every entry point.

Flags keep the VideoMAE(v2)/SnapPix names so their shell scripts port with little change. Each
``add_*_args(parser, **defaults)`` adds one flag group and returns it (so an entry point can add its
own flags to the group); keyword arguments override that group's defaults per entry point::

    parser = build_parser("snappix pretraining")            # all groups + --config
    add_optimizer_args(parser, ...)                         # or pick groups one by one
    parser.add_argument("--mask_ratio", type=float, default=0.9)
    args = parse_args(parser)                               # --config FILE.yaml handled here
    save_config(args, args.output_dir)                      # output_dir/config.yaml

``--config FILE.yaml``: the file's keys (flag names; aliases such as ``update_freq`` or
``local-rank`` accepted) become defaults, flags given on the command line override them, and a key
no flag knows is an error naming the key and the file. The ``config.yaml`` written by
:func:`save_config` can be passed back through ``--config`` to repeat a run.

Booleans are real booleans: ``add_bool_arg`` accepts ``--flag``, ``--flag true|false|1|0|yes|no``
and (if given) a negative form ``--no_flag``. SnapPix's ``type=bool`` made ``--normlize_target False``
True (any non-empty string is truthy).
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import logging
import os
from typing import Any, Sequence

import yaml

from snappix.errors import UserError

from .checkpoint import to_plain
from .cli import add_debug_arg
from .distributed import broadcast_object, is_main_process

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


class ConfigError(UserError, ValueError):
    """A ``--config`` YAML file is invalid (the message names the file and the key), or flags that cannot
    work together (the message names the flags)."""


def str2bool(value: Any) -> bool:
    """Parse a boolean flag value: true/false, yes/no, on/off, 1/0 (case-insensitive), or a bool.

    Raises:
        argparse.ArgumentTypeError: anything else (so ``--flag Flase`` fails instead of meaning True).
    """
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false, yes/no, 1/0), got {value!r}")


def add_bool_arg(group, name: str, *aliases: str, default: bool = False, negative: str | None = None,
                 help: str = "") -> None:
    """Add a real boolean flag ``name`` (``--x``, ``--x true``, ``--x false``) with alias spellings and
    an optional negative flag (``--no_x``) sharing its destination."""
    dest = name.lstrip("-").replace("-", "_")
    group.add_argument(name, *aliases, dest=dest, type=str2bool, nargs="?", const=True, default=default,
                       metavar="BOOL", help=help)
    if negative:
        group.add_argument(negative, dest=dest, action="store_false", default=argparse.SUPPRESS,
                           help=f"same as {name} false")


def _override(parser: argparse.ArgumentParser, group, defaults: dict) -> None:
    if not defaults:
        return
    known = {a.dest for a in group._group_actions}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise ValueError(f"default overrides for flags not in group '{group.title}': {unknown}")
    parser.set_defaults(**defaults)


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """``--config FILE.yaml`` (YAML defaults, overridden by explicit flags) and ``--debug``."""
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help="YAML file whose keys set flag defaults; explicit flags override it")
    add_debug_arg(parser)


def add_data_args(parser: argparse.ArgumentParser, **defaults):
    """Data and loader flags: list file, root, clip geometry, batch, workers, loader timeout, data check."""
    g = parser.add_argument_group("data")
    g.add_argument("--data_path", default=None, help="list file (VideoMAE/SnapPix format)")
    g.add_argument("--video_backend", default=None, choices=["decord", "pyav", "torchcodec"],
                   help="video decoder (None: decord when installed, else pyav; pyav is the fallback)")
    g.add_argument("--max_bad_fraction", type=float, default=0.01,
                   help="stop when at least 2 distinct videos failed to decode and they are more than this share "
                        "of the distinct videos tried so far, counted over all DataLoader workers (at each failure) "
                        "and all ranks (at each epoch end); failures go to bad_videos.txt")
    g.add_argument("--data_root", default="", help="prefix joined to the paths of the list")
    add_bool_arg(g, "--allow_outside_root", default=False,
                 help="accept list rows whose path is absolute or leads out of --data_root with '..' (refused by "
                      "default: such a row usually means a wrong list or root)")
    g.add_argument("--num_frames", type=int, default=16, help="frames per clip")
    g.add_argument("--sampling_rate", type=int, default=4, help="frame stride of a clip")
    g.add_argument("--input_size", type=int, default=112, help="spatial crop size in pixels")
    g.add_argument("--num_sample", type=int, default=1, help="repeated augmentation: clips per video")
    g.add_argument("--batch_size", type=int, default=64, help="videos per process and micro-batch")
    g.add_argument("--num_workers", type=int, default=10, help="DataLoader workers per process")
    add_bool_arg(g, "--pin_mem", default=True, negative="--no_pin_mem", help="pin host memory in the DataLoader")
    add_bool_arg(g, "--cache_videos", default=False,
                 help="decode each video once and keep its frames in memory (per process and worker; small "
                      "datasets only: the quickstart's 320 clips take about 260 MB); sampling is unchanged")
    g.add_argument("--loader_timeout", type=float, default=600.0, metavar="SECONDS",
                   help="a DataLoader worker that delivers no batch for this long is reported with the item it "
                        "is loading and the run stops (0: wait forever; only with --num_workers > 0)")
    add_bool_arg(g, "--check_data", default=False,
                 help="run the data doctor (python -m snappix.tools.check_data) on the lists first and stop on "
                      "bad rows; reports go to output_dir/data_check/")
    add_bool_arg(g, "--check_data_deep", default=False,
                 help="with --check_data: decode every frame of every video (slow), not only the headers")
    _override(parser, g, defaults)
    return g


def add_model_args(parser: argparse.ArgumentParser, **defaults):
    """Model flags (registered model name); entry points add their method's own model flags."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=None, help="registered model name (timm registry)")
    _override(parser, g, defaults)
    return g


def add_optimizer_args(parser: argparse.ArgumentParser, **defaults):
    """Optimiser flags: AdamW hyper-parameters, weight decay, clipping, layer decay, accumulation."""
    g = parser.add_argument_group("optimizer")
    g.add_argument("--opt", default="adamw", choices=["adamw", "sgd"], help="optimizer")
    g.add_argument("--opt_eps", type=float, default=1e-8, help="AdamW epsilon")
    g.add_argument("--opt_betas", type=float, nargs=2, default=[0.9, 0.999], metavar=("BETA1", "BETA2"),
                   help="AdamW betas (SnapPix pretraining: 0.9 0.95)")
    g.add_argument("--weight_decay", type=float, default=0.05, help="weight decay")
    g.add_argument("--weight_decay_end", type=float, default=None,
                   help="final weight decay of a cosine schedule; None = constant --weight_decay")
    g.add_argument("--clip_grad", type=float, default=None, help="max gradient norm; None = no clipping")
    g.add_argument("--layer_decay", type=float, default=1.0, help="layer-wise lr decay (1.0 = off)")
    g.add_argument("--acc_iters", "--update_freq", dest="acc_iters", type=int, default=1,
                   help="gradient accumulation: micro-batches per optimizer step")
    _override(parser, g, defaults)
    return g


def add_schedule_args(parser: argparse.ArgumentParser, **defaults):
    """Schedule flags: epochs, lr values (base, before batch scaling), warmup."""
    g = parser.add_argument_group("schedule")
    g.add_argument("--epochs", type=int, default=300, help="training epochs")
    g.add_argument("--lr", type=float, default=1.5e-4, help="base lr for a total batch of 256 (scaled linearly)")
    g.add_argument("--min_lr", type=float, default=1e-5, help="final lr of the cosine (scaled like --lr)")
    g.add_argument("--warmup_lr", type=float, default=1e-6, help="lr at step 0 of the warmup (scaled like --lr)")
    g.add_argument("--warmup_epochs", type=float, default=40, help="linear warmup epochs")
    g.add_argument("--warmup_steps", type=int, default=-1, help="warmup in optimizer steps (overrides epochs if > 0)")
    g.add_argument("--eval_freq", type=int, default=0,
                   help="evaluate every N epochs and after the last one (0: only where the entry point says)")
    add_bool_arg(g, "--lr_scale_with_num_sample", default=False,
                 help="count num_sample clips in the lr scaling (SnapPix/VideoMAE count videos only)")
    _override(parser, g, defaults)
    return g


def add_precision_args(parser: argparse.ArgumentParser, **defaults):
    """``--precision {auto,bf16,fp16,fp32}`` and ``--skip_nonfinite N``."""
    g = parser.add_argument_group("precision")
    g.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="autocast dtype. auto: bf16 where the device computes it natively (CUDA with bf16, "
                        "CPUs with AMX / AVX-512 BF16), else fp32 (emulated bf16 is several times slower); "
                        "the choice is printed at start-up. fp16 adds a GradScaler (GPU only)")
    g.add_argument("--skip_nonfinite", type=int, default=0, metavar="N",
                   help="skip (and log) up to N optimiser steps whose loss is NaN/inf over the run; the next "
                        "one stops it (0: the first one stops it)")
    _override(parser, g, defaults)
    return g


def add_checkpoint_args(parser: argparse.ArgumentParser, **defaults):
    """Output and checkpoint flags: output dir, save frequency, resume."""
    g = parser.add_argument_group("checkpoint")
    g.add_argument("--output_dir", default=None,
                   help="checkpoints, log.txt, config.yaml (default: outputs/<entry point>-<date-time>, printed)")
    g.add_argument("--save_ckpt_freq", type=int, default=20, help="keep checkpoint-{epoch}.pth every N epochs")
    add_bool_arg(g, "--auto_resume", default=True, negative="--no_auto_resume",
                 help="resume from the newest readable checkpoint in --output_dir")
    g.add_argument("--resume", default=None, metavar="FILE", help="resume from this checkpoint")
    _override(parser, g, defaults)
    return g


def add_distributed_args(parser: argparse.ArgumentParser, **defaults):
    """Device, seed and distributed flags (torchrun first; DeepSpeed optional)."""
    g = parser.add_argument_group("distributed")
    g.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cuda:N or cpu")
    g.add_argument("--seed", type=int, default=0, help="random seed (each rank uses seed + rank)")
    g.add_argument("--dist_url", default="env://", help="init_method of the process group")
    g.add_argument("--local_rank", "--local-rank", dest="local_rank", type=int, default=-1,
                   help="set by torch.distributed.launch; torchrun uses LOCAL_RANK")
    add_bool_arg(g, "--find_unused_parameters", default=False, help="DDP find_unused_parameters")
    add_bool_arg(g, "--enable_deepspeed", default=False, help="train through DeepSpeed (imported only then)")
    g.add_argument("--zero_stage", type=int, default=0, choices=[0, 1, 2], help="DeepSpeed ZeRO stage")
    _override(parser, g, defaults)
    return g


def add_logging_args(parser: argparse.ArgumentParser, **defaults):
    """Logging flags: TensorBoard directory, progress bars."""
    g = parser.add_argument_group("logging")
    g.add_argument("--log_dir", default=None, help="TensorBoard directory; None = output_dir/tb")
    add_bool_arg(g, "--progress", default=True, negative="--no_progress", help="tqdm progress bars on rank 0")
    _override(parser, g, defaults)
    return g


GROUPS = {"data": add_data_args, "model": add_model_args, "optimizer": add_optimizer_args,
          "schedule": add_schedule_args, "precision": add_precision_args, "checkpoint": add_checkpoint_args,
          "distributed": add_distributed_args, "logging": add_logging_args}


def build_parser(description: str = "", groups: Sequence[str] = tuple(GROUPS)) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with ``--config`` and the named flag groups (default: all).

    ``allow_abbrev`` is off: SnapPix's ``--cross_model`` silently resolved to ``--cross_model_path``
    (defect §11.18).
    """
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_config_arg(parser)
    for name in groups:
        GROUPS[name](parser)
    return parser


# ---------------------------------------------------------------------------------------------------
# YAML config
# ---------------------------------------------------------------------------------------------------
def _option_map(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """YAML key -> action: every option string (dashes stripped, ``-`` -> ``_``) and every dest."""
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in ("help", argparse.SUPPRESS):
            continue
        for opt in action.option_strings:
            out.setdefault(opt.lstrip("-").replace("-", "_"), action)
        out.setdefault(action.dest, action)
    return out


def _coerce(action: argparse.Action, key: str, value: Any, path: str) -> Any:
    def one(v):
        if v is None:
            return None
        if action.type is not None and (isinstance(v, str) or action.type in (float, str2bool)):
            try:
                v = action.type(v)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
                raise ConfigError(f"{path}: key '{key}': {e}") from None
        if action.choices is not None and v not in action.choices:
            raise ConfigError(f"{path}: key '{key}': {v!r} is not one of {list(action.choices)}")
        return v

    many = action.nargs not in (None, "?", 0) and action.nargs != argparse.OPTIONAL
    if many:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)):
            value = [value]
        if isinstance(action.nargs, int) and len(value) != action.nargs:
            raise ConfigError(f"{path}: key '{key}' takes {action.nargs} values, got {len(value)}")
        return [one(v) for v in value]
    return one(value)


def load_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read ``path`` (``yaml.safe_load``) and map its keys to parser destinations with typed values.

    Keys are flag names or aliases (``update_freq`` -> ``acc_iters``, ``local-rank`` ->
    ``local_rank``, ``no_auto_resume: true`` -> ``auto_resume = False``); a ``config`` key is ignored.

    Raises:
        ConfigError: unreadable file, not a mapping, unknown key (with close matches), bad value.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of flag names to values, got {type(data).__name__}")
    options = _option_map(parser)
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).lstrip("-").replace("-", "_")
        if key == "config":
            continue
        action = options.get(key)
        if action is None:
            close = difflib.get_close_matches(key, list(options), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{path}: unknown key '{raw_key}'{hint}; keys must be flags of this entry point")
        if action.nargs == 0:  # store_true / store_false / store_const
            flag = str2bool(value) if value is not None else True
            if key == action.dest:
                out[action.dest] = flag
            elif isinstance(action.const, bool):
                out[action.dest] = action.const if flag else not action.const
            elif flag:
                out[action.dest] = action.const
            continue
        out[action.dest] = _coerce(action, str(raw_key), value, path)
    return out


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``) with ``--config`` YAML defaults applied first.

    Exits through ``parser.error`` (status 2, message naming the file and key) on a bad config.
    """
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    values: dict[str, Any] = {}
    if known.config:
        try:
            values = load_config(known.config, parser)
        except ConfigError as e:
            parser.error(str(e))
    saved_actions = {id(a): a.default for a in parser._actions if a.dest in values}
    saved_defaults = dict(parser._defaults)
    parser.set_defaults(**values)
    try:
        return parser.parse_args(argv)
    finally:  # leave the parser as it was (it may be reused, e.g. in tests)
        for a in parser._actions:
            if id(a) in saved_actions:
                a.default = saved_actions[id(a)]
        parser._defaults.clear()
        parser._defaults.update(saved_defaults)


def config_dict(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed flags as plain data (lists, numbers, strings), as stored in checkpoints."""
    return to_plain(vars(args))


#: flags whose values are file or folder paths: stored absolute in config.yaml, so ``--config`` works from
#: any working directory (an empty --data_root, i.e. list paths relative to the working directory, is
#: stored as that directory)
PATH_FLAGS = ("data_path", "data_root", "val_path", "test_path", "output_dir", "log_dir", "finetune", "resume",
              "pattern", "pattern_dir", "init_pattern", "class_names", "saliency_root", "config")
EVAL_CONFIG_FILE = "eval_config.yaml"


def default_output_dir(args: argparse.Namespace, prog: str, base: str = "outputs") -> str:
    """Give a run without ``--output_dir`` one: ``base/<prog>-<YYYYmmdd-HHMMSS>`` (absolute), the same on
    every rank (rank 0's name is broadcast; call after ``init_distributed``), printed on rank 0.

    Without it a run saved nothing (no checkpoint, no log) and exited 0. Returns ``args.output_dir``.
    """
    if args.output_dir:
        return args.output_dir
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.output_dir = broadcast_object(os.path.abspath(os.path.join(base, f"{prog}-{stamp}")))
    if is_main_process():
        print(f"no --output_dir given: writing checkpoints, log.txt and config.yaml to {args.output_dir}",
              flush=True)
    return args.output_dir


def _absolute_paths(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for key in PATH_FLAGS:
        value = out.get(key)
        if isinstance(value, str) and (value or key == "data_root") and "://" not in value:
            out[key] = os.path.abspath(value) if value else os.getcwd()
    return out


def _has_checkpoint(output_dir: str) -> bool:
    try:
        return any(n.startswith("checkpoint-") and n.endswith(".pth") for n in os.listdir(output_dir))
    except OSError:
        return False


def _write_yaml(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=False, default_flow_style=None)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _append_resume_note(path: str, config: dict[str, Any]) -> None:
    """Append a ``# ...`` line to ``path`` saying the run was launched again and which flags differ."""
    try:
        with open(path, encoding="utf-8") as f:
            before = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        before = {}
    changed = [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in config.items()
               if k != "config" and isinstance(before, dict) and before.get(k) != v]
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    note = f"# {stamp}: launched again in this folder (resume); "
    note += ("changed flags: " + "; ".join(changed)) if changed else "same flags"
    with open(path, "a", encoding="utf-8") as f:
        f.write(note.replace("\n", " ") + "\n")


def save_config(args: argparse.Namespace, output_dir: str | None, evaluation: bool = False) -> str | None:
    """Write the resolved flags to ``output_dir/config.yaml`` (rank 0, atomic). Returns the path.

    * A training run writes ``config.yaml`` once: when the folder already holds a checkpoint and the run
      resumes (auto-resume or ``--resume``), the file is kept and a ``# <time>: launched again ...`` comment naming the changed flags is
      appended instead.
    * ``evaluation=True`` (``--eval``) writes ``eval_config.yaml`` and leaves ``config.yaml`` alone.
    * Path flags (:data:`PATH_FLAGS`) are stored absolute.

    Keep derived values (scaled lr, ranks, ...) out of ``args``: every key written here must be a flag
    so the file can be fed back through ``--config``.
    """
    if not output_dir or not is_main_process():
        return None
    os.makedirs(output_dir, exist_ok=True)
    config = _absolute_paths(config_dict(args))
    path = os.path.join(output_dir, EVAL_CONFIG_FILE if evaluation else CONFIG_FILE)
    resuming = bool(getattr(args, "auto_resume", True) or getattr(args, "resume", None))
    if not evaluation and resuming and os.path.isfile(path) and _has_checkpoint(output_dir):
        _append_resume_note(path, config)
    else:
        _write_yaml(path, config)
    return path
