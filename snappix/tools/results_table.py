"""Compare finetuned runs in one table: accuracy, tokens, compute, sensor read-out and training time.

    python -m snappix.tools.results_table --run "coded ViT=outputs/quickstart/ft_coded" \\
        --run "long exposure=outputs/quickstart/ft_long" --timings outputs/quickstart/timings.tsv \\
        --out outputs/quickstart/results.md

For each ``NAME=DIR`` (a ``run_finetuning.py`` output folder) it reads ``DIR/config.yaml`` to rebuild
the model (never loads weights) and ``DIR/test/multiview_summary.json`` for the multi-view top-1, and
measures per clip, at batch 1:

* **tokens**: tokens the transformer sees (``prod(model.grid)``, without the class token);
* **GFLOPs**: one forward pass counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls,
  convolutions and attention, 2 FLOPs per multiply-add; element-wise work such as the sensor's
  masked sum is not counted);
* **pixels read out**: what leaves the sensor: the coded / short / long image (``H x W``) for a
  model with a sensor, all ``T x H x W`` frames for a video model.

``--timings`` is a TSV of ``NAME<TAB>seconds`` (training wall time, as the quickstart records it).
The table is printed and written as Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass

import torch
import yaml


@dataclass
class RunRow:
    name: str
    model: str
    sensor: str
    init: str
    top1: float | None
    single_view_top1: float | None
    views: str
    tokens: int
    gflops: float
    pixels: int
    train_s: float | None


def load_run_config(run_dir: str) -> dict:
    """``run_dir/config.yaml`` as a dict (``yaml.safe_load``).

    Raises:
        FileNotFoundError: no config.yaml (not a run_finetuning.py output folder).
    """
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing; is {run_dir} a run_finetuning.py --output_dir?")
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a mapping, got {type(cfg).__name__}")
    return cfg


def build_model_from_config(cfg: dict) -> torch.nn.Module:
    """The classifier a finetuning config describes, randomly initialised (eval mode)."""
    from snappix.models.factory import classifier_from_flags

    return classifier_from_flags(cfg, int(cfg.get("nb_classes") or 2)).eval()


@torch.no_grad()
def measure_model(model: torch.nn.Module, in_chans: int, num_frames: int, size: int) -> tuple[int, float, int]:
    """``(tokens, GFLOPs, pixels read out)`` of one ``(1, in_chans, num_frames, size, size)`` clip."""
    from torch.utils.flop_counter import FlopCounterMode

    clip = torch.zeros(1, in_chans, num_frames, size, size)
    grid = getattr(model, "grid", None)
    tokens = int(math.prod(grid)) if grid is not None else 0
    with FlopCounterMode(display=False) as counter:
        model(clip)
    sensor = getattr(model, "sensor", None)
    pixels = int(sensor(clip).numel()) if sensor is not None else int(clip.numel())
    return tokens, counter.get_total_flops() / 1e9, pixels


def read_summary(run_dir: str) -> dict | None:
    path = os.path.join(run_dir, "test", "multiview_summary.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_timings(path: str | None) -> dict[str, float]:
    """``NAME<TAB>seconds`` lines -> dict (later lines win). Missing file -> ``{}``."""
    out: dict[str, float] = {}
    if not path or not os.path.isfile(path):
        return out
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            name, _, seconds = line.rstrip("\n").rpartition("\t")
            try:
                out[name] = float(seconds)
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: expected NAME<TAB>seconds, got {line!r}") from exc
    return out


def collect(name: str, run_dir: str, timings: dict[str, float]) -> RunRow:
    cfg = load_run_config(run_dir)
    model = build_model_from_config(cfg)
    in_chans = getattr(getattr(model, "patch_embed", None), "in_chans", None) or 1
    sensor = getattr(model, "sensor", None)
    if sensor is not None:
        in_chans = 1
    tokens, gflops, pixels = measure_model(model, in_chans, int(cfg.get("num_frames", 16)),
                                           int(cfg.get("input_size", 112)))
    summary = read_summary(run_dir)
    views = ""
    if summary:
        views = f"{summary.get('num_segments', '?')}x{summary.get('num_crops', '?')}"
    return RunRow(name=name, model=cfg["model"], sensor=cfg.get("coded_type") or "none (16 frames)",
                  init="pretrained" if cfg.get("finetune") else "scratch",
                  top1=summary.get("video_top1") if summary else None,
                  single_view_top1=summary.get("single_view_top1") if summary else None, views=views,
                  tokens=tokens, gflops=gflops, pixels=pixels, train_s=timings.get(name))


def format_table(rows: list[RunRow]) -> str:
    """Markdown table; the read-out column also gives the compression against the largest read-out."""
    most = max((r.pixels for r in rows), default=1)
    lines = ["| model | sensor | init | top-1 (multi-view) | top-1 (1 view) | tokens/clip | GFLOPs/clip "
             "| pixels read out/clip | train time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        top1 = f"{r.top1:.1f} ({r.views})" if r.top1 is not None else "n/a"
        single = f"{r.single_view_top1:.1f}" if r.single_view_top1 is not None else "n/a"
        ratio = f" ({most / r.pixels:.0f}x fewer)" if r.pixels < most else ""
        train = f"{r.train_s:.0f} s" if r.train_s is not None else "n/a"
        lines.append(f"| {r.name} | {r.sensor} | {r.init} | {top1} | {single} | {r.tokens} | {r.gflops:.3f} "
                     f"| {r.pixels:,}{ratio} | {train} |")
    return "\n".join(lines)


def table_parser(description: str | None) -> argparse.ArgumentParser:
    """The flags of a results table: ``--run NAME=DIR`` (repeat), ``--timings``, ``--title``, ``--notes``, ``--out``."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, metavar="NAME=DIR",
                   help="a row: display name and run_finetuning.py output folder (repeat)")
    p.add_argument("--timings", default=None, help="TSV NAME<TAB>seconds of training wall time")
    p.add_argument("--title", default="Results")
    p.add_argument("--notes", default="", help="text printed under the table")
    p.add_argument("--out", default=None, help="write the Markdown here")
    return p


def main(argv=None) -> int:
    p = table_parser(__doc__)
    args = p.parse_args(argv)
    rows = collect_runs(p, args.run, read_timings(args.timings))
    text = f"## {args.title}\n\n{format_table(rows)}\n"
    emit(text + (f"\n{args.notes}\n" if args.notes else ""), args.out)
    return 0


def collect_runs(parser: argparse.ArgumentParser, specs, timings) -> list:
    """One row per ``--run NAME=DIR`` (:func:`collect`); a malformed spec is a usage error of ``parser``."""
    rows = []
    for spec in specs:
        name, sep, run_dir = spec.partition("=")
        if not sep or not name or not run_dir:
            parser.error(f"--run expects NAME=DIR, got {spec!r}")
        rows.append(collect(name, run_dir, timings))
    return rows


def report(title: str, table: str, margin_lines: list[str] | None, notes: str | None) -> str:
    """The Markdown of a demo's results: ``## title``, the table, one bullet per margin line, then the notes."""
    text = f"## {title}\n\n{table}\n"
    if margin_lines:
        text += "\n" + "\n".join(f"- {line}" for line in margin_lines) + "\n"
    if notes:
        text += f"\n{notes}\n"
    return text


def emit(text: str, out: str | None) -> None:
    """Print the Markdown ``text`` and, with ``out``, write it there."""
    print(text)
    if out:
        from snappix.data.lists import write_lines

        write_lines(out, text.splitlines())
        print(f"written to {out}")


if __name__ == "__main__":
    raise SystemExit(main())
