"""Command line of the claims tool (:mod:`snappix.tools.claims`): run studies, print and write their tables."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from typing import Sequence

from snappix.tools.claims import STUDIES
from snappix.tools.claims.report import command_line, run_header, write_section

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Flags: ``--study``, ``--fast``, ``--work_dir``, ``--out_md``, ``--videos``, ``--seed``."""
    p = argparse.ArgumentParser(prog="python -m snappix.tools.claims", allow_abbrev=False,
                                description="Timed CPU studies of SnapPix's claims (DAC'25); each writes its own "
                                            "section of --out_md and resumes finished parts from --work_dir.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--study", choices=[*STUDIES, "all"], default="all", help="which study to run")
    p.add_argument("--fast", action="store_true", help="small sizes (tests): about a minute per study")
    p.add_argument("--work_dir", default="outputs/claims", help="intermediate results, resumed from")
    p.add_argument("--out_md", default="docs/results/snappix_miniature.md", help="Markdown file of the tables")
    p.add_argument("--videos", default=os.environ.get("SNAPPIX_TEST_VIDEOS"),
                   help="folder of real clips (default $SNAPPIX_TEST_VIDEOS); without it, synthetic clips only")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated clips and of the learning")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected studies; prints each section and writes it into ``--out_md``. Returns 0.

    Raises:
        SystemExit: status 2 on bad flags (argparse).
    """
    args = build_parser().parse_args(argv)
    names = list(STUDIES) if args.study == "all" else [args.study]
    command = command_line(list(argv) if argv is not None else None)
    for name in names:
        module = importlib.import_module(STUDIES[name])
        t0 = time.time()
        result = module.run_study(args.work_dir, args.videos, fast=args.fast, seed=args.seed,
                                  log=lambda msg: print(msg, flush=True))
        header = run_header(command, args.seed, time.time() - t0, result.get("parts_seconds", 0.0))
        body = module.render(result, header)
        print(body, flush=True)
        path = write_section(args.out_md, name, body, order=list(STUDIES))
        print(f"[claims] {name}: section written to {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
