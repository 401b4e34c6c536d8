"""What every training entry point does, once: the parser with the shared flag groups and the plugs'
own flags, then check -> data doctor -> :func:`~snappix.engine.runner.start_run` -> plug -> fit.

    parser = build_parser("masked video pretraining", PRETRAINING, default_task="pretrain")
    args = parse(parser, argv)
    return run(args, PRETRAINING[args.task])
"""

from __future__ import annotations

import argparse
from typing import Mapping, Sequence

from snappix.data.check_list import check_lists_for_training
from snappix.engine import args as A
from snappix.engine import distributed as D
from snappix.engine.runner import fit, start_run

from . import Plug


def build_parser(description: str, plugs: Mapping[str, Plug], default_task: str) -> argparse.ArgumentParser:
    """The engine's flag groups, the shared sensor and k-center groups, ``--task`` (the keys of ``plugs``)
    and each plug's own flags (each ``add_args`` once)."""
    parser = A.build_parser(description)
    A.add_sensor_args(parser)
    A.add_kcenter_args(parser)
    parser.add_argument("--task", default=default_task, choices=list(plugs),
                        help="the method to train (its plug in snappix.methods)")
    seen = []
    for plug in plugs.values():
        if plug.add_args not in seen:
            seen.append(plug.add_args)
            plug.add_args(parser)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None,
          required: Sequence[str] = ("model", "data_path")) -> argparse.Namespace:
    """Parse ``argv`` (with ``--config``) and require ``required`` flags, directly or through ``--config``."""
    args = A.parse_args(parser, argv)
    missing = [f"--{name}" for name in required if not getattr(args, name, None)]
    if missing:
        parser.error(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                     f"(directly or through --config)")
    return args


def _check_data(args: argparse.Namespace, plug: Plug) -> None:
    lists, fmt = plug.data_lists(args)
    if args.check_data and lists:  # the data doctor first (rank 0; reports in output_dir/data_check)
        check_lists_for_training(lists, fmt, args.data_root, args.output_dir, args.check_data_deep, args.num_frames,
                                 progress=args.progress)


def run(args: argparse.Namespace, plug: Plug) -> dict:
    """Check the flags, run the data doctor (``--check_data``), set the run up, build the method and train
    it (or only evaluate with ``--eval`` when the plug can); returns the history (or the results)."""
    if plug.check is not None:
        plug.check(args)
    evaluation = bool(getattr(args, "eval", False)) and plug.evaluate_only is not None
    if not evaluation:
        _check_data(args, plug)
    info = start_run(args, plug.prog, evaluation=evaluation)
    if evaluation:
        result = plug.evaluate_only(args, info)
    else:
        result = fit(args, info, plug.build(args, info))
        if plug.after_fit is not None:
            result = plug.after_fit(args, info, result)
    D.cleanup()
    return result
