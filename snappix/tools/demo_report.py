"""Results table of a demo: finetuned runs side by side, with parameters and a margin check.

    python -m snappix.tools.demo_report --title "VideoMamba demo" --timings OUT/timings.tsv \\
        --run "VideoMamba=OUT/ft_videomamba" --run "video ViT=OUT/ft_video" \\
        --run "single frame=OUT/ft_short" --baseline "single frame" --margin 15 --out OUT/results.md

Each ``NAME=DIR`` is a ``run_finetuning.py`` output folder; the model is rebuilt from ``DIR/config.yaml``
(never loading weights) and measured as in :mod:`snappix.tools.results_table` (multi-view and one-view
top-1 from ``DIR/test/multiview_summary.json``, tokens and GFLOPs of one clip); the parameter count
includes the head. With ``--baseline NAME --margin M`` every other row is compared with that row and the
margins are printed (the exit status stays 0: a demo reports, it does not judge).
"""

from __future__ import annotations


from snappix.tools import results_table as RT


def count_parameters(run_dir: str) -> int:
    """Parameters of the model ``run_dir/config.yaml`` describes (rebuilt, randomly initialised)."""
    model = RT.build_model_from_config(RT.load_run_config(run_dir))
    return sum(p.numel() for p in model.parameters())


def format_rows(rows: list[RT.RunRow], params: list[int]) -> str:
    lines = ["| model | top-1 (multi-view) | top-1 (1 view) | parameters | tokens/clip | GFLOPs/clip | train time |",
             "|---|---|---|---|---|---|---|"]
    for r, n in zip(rows, params):
        top1 = f"{r.top1:.1f} ({r.views})" if r.top1 is not None else "n/a"
        single = f"{r.single_view_top1:.1f}" if r.single_view_top1 is not None else "n/a"
        train = f"{r.train_s:.0f} s" if r.train_s is not None else "n/a"
        lines.append(f"| {r.name} | {top1} | {single} | {n / 1e6:.2f} M | {r.tokens} | {r.gflops:.3f} | {train} |")
    return "\n".join(lines)


def margins(rows: list[RT.RunRow], baseline: str, margin: float) -> list[str]:
    """One line per non-baseline row: its multi-view top-1 minus the baseline's, against ``margin``."""
    base = next((r for r in rows if r.name == baseline), None)
    if base is None or base.top1 is None:
        return [f"(no multi-view top-1 for the baseline {baseline!r}: no margin computed)"]
    out = []
    for r in rows:
        if r is base or r.top1 is None:
            continue
        gap = r.top1 - base.top1
        verdict = "at least" if gap >= margin else "LESS than"
        out.append(f"{r.name}: {gap:+.1f} points over {baseline} ({verdict} the {margin:g} points asked)")
    return out


def main(argv=None) -> int:
    p = RT.table_parser(__doc__)
    p.add_argument("--baseline", default=None, help="row name the others are compared with")
    p.add_argument("--margin", type=float, default=15.0, help="points over --baseline to report against")
    args = p.parse_args(argv)
    rows = RT.collect_runs(p, args.run, RT.read_timings(args.timings))
    params = [count_parameters(spec.partition("=")[2]) for spec in args.run]
    lines = margins(rows, args.baseline, args.margin) if args.baseline else None
    RT.emit(RT.report(args.title, format_rows(rows, params), lines, args.notes), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
