"""Results table of retrieval runs side by side (``run_finetuning.py --task retrieval`` output folders).

    python -m snappix.tools.retrieval_report --title "Saccade-VSSL demo" --timings OUT/timings.tsv \\
        --run "random init=OUT/ret_random" --run "Saccade-VSSL=OUT/ret_saccade" \\
        --baseline "random init" --margin 10 --out OUT/results.md

Each ``NAME=DIR`` row reads ``DIR/retrieval.json``: recall@k for every k it holds (percent of the queries with a
same-class gallery video among their k nearest), the feature used, the gallery and query counts and the
extraction time. ``--timings`` (``NAME<TAB>seconds`` lines) gives the pretraining wall time of a row of the same
name. With ``--baseline NAME --margin M`` every other row's recall@1 is compared with that row's (the exit status
stays 0: a demo reports, it does not judge).
"""

from __future__ import annotations

import json
import os

from snappix.tools import results_table as RT


def read_run(parser, spec: str) -> tuple[str, dict]:
    """``NAME=DIR`` -> (name, the retrieval summary of ``DIR/retrieval.json``); a usage error when it is missing."""
    name, sep, run_dir = spec.partition("=")
    if not sep or not name or not run_dir:
        parser.error(f"--run expects NAME=DIR, got {spec!r}")
    path = os.path.join(run_dir, "retrieval.json")
    if not os.path.isfile(path):
        parser.error(f"--run {spec}: {path} does not exist (run_finetuning.py --task retrieval --output_dir {run_dir})")
    with open(path) as f:
        data = json.load(f)
    return name, data.get("retrieval", data)


def format_rows(runs: list[tuple[str, dict]], timings: dict[str, float]) -> str:
    """A Markdown table: one row per run, one recall column per k (the ks of the first run)."""
    ks = list(runs[0][1]["recall"])
    head = "| run | " + " | ".join(f"R@{k}" for k in ks) + " | feature | gallery / queries | pretraining | retrieval |"
    lines = [head, "|---|" + "---:|" * len(ks) + "---|---|---:|---:|"]
    for name, s in runs:
        recall = " | ".join(f"{s['recall'][k]:.1f}" if k in s["recall"] else "n/a" for k in ks)
        pre = f"{timings[name]:.0f} s" if name in timings else "none"
        lines.append(f"| {name} | {recall} | {s.get('feature', '?')} | {s['gallery']['with_feature']} / "
                     f"{s['queries']['with_feature']} | {pre} | {s.get('time_s', float('nan')):.0f} s |")
    return "\n".join(lines)


def margins(runs: list[tuple[str, dict]], baseline: str, margin: float) -> list[str]:
    """One line per non-baseline row: its recall@1 minus the baseline's, against ``margin`` points."""
    base = dict(runs).get(baseline)
    if base is None or "1" not in base["recall"]:
        return [f"(no recall@1 for the baseline {baseline!r}: no margin computed)"]
    out = []
    for name, s in runs:
        if name == baseline or "1" not in s["recall"]:
            continue
        gap = s["recall"]["1"] - base["recall"]["1"]
        verdict = "at least" if gap >= margin else "LESS than"
        out.append(f"{name}: {gap:+.1f} recall@1 points over {baseline} ({verdict} the {margin:g} points asked)")
    return out


def main(argv=None) -> int:
    p = RT.table_parser(__doc__)
    p.add_argument("--baseline", default=None, help="row name the others are compared with")
    p.add_argument("--margin", type=float, default=10.0, help="recall@1 points over --baseline to report against")
    args = p.parse_args(argv)
    runs = [read_run(p, spec) for spec in args.run]
    lines = margins(runs, args.baseline, args.margin) if args.baseline else None
    RT.emit(RT.report(args.title, format_rows(runs, RT.read_timings(args.timings)), lines, args.notes), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
