"""``--config FILE.yaml`` in and ``config.yaml`` out: YAML defaults for any entry point's parser, and the
resolved flags of a run written once into its output folder.

``--config FILE.yaml``: the file's keys (flag names; aliases such as ``update_freq`` or ``local-rank``
accepted) become defaults, flags given on the command line override them, and a key no flag knows is
an error naming the key and the file. The ``config.yaml`` written by :func:`save_config` can be passed
back through ``--config`` to repeat a run.
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
              "pattern", "pattern_dir", "init_pattern", "class_names", "saliency_root", "scanpath_root",
              "config")
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
