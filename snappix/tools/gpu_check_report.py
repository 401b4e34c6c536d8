"""Summary table of ``scripts/gpu_check.sh``, and its kill-and-resume check.

    python -m snappix.tools.gpu_check_report OUT [--dry_run 0|1]   # table of OUT/steps.tsv + OUT/logs
    python -m snappix.tools.gpu_check_report --check_resume RUN_DIR LOG

The script appends one ``name<TAB>status<TAB>wall seconds`` line per step to ``OUT/steps.tsv`` and logs each
step to ``OUT/logs/<name>.log``; this reads the key figures out of those logs (the lines the benchmarks
print), prints one markdown table, writes it to ``OUT/summary.md`` and exits 1 when a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys

STEP_TITLES = {
    "train_bf16": "bench_train bf16: SDPA vs explicit attention",
    "train_fp16": "bench_train fp16: SDPA vs explicit attention",
    "resume": "torchrun tiny coded MAE, 2 epochs, kill -9 + resume",
    "kcenter": "bench_masking: dense k-center vs pairwise",
    "mamba": "bench_mamba: VideoMamba scan backends",
}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def train_figures(text: str) -> str:
    prec = re.search(r"precision (\w+), torch", text)
    speed = re.search(r"speed-up sdpa / explicit: ([\d.]+)x wall-clock, ([\d.]+)x process CPU", text)
    clips = re.search(r"^\s*sdpa\s+([\d.]+) clips/s", text, re.M)
    if not speed:
        return ""
    out = f"SDPA / explicit {speed.group(1)}x (CPU time {speed.group(2)}x)"
    if clips:
        out += f"; SDPA {clips.group(1)} clips/s"
    return out + (f"; {prec.group(1)}" if prec else "")


def resume_figures(text: str) -> str:
    m = re.search(r"resume check: (.*)", text)
    return m.group(1).strip() if m else ""


def kcenter_figures(text: str) -> str:
    cases = re.findall(r"k-center on (real clips|white noise)", text)
    dense = re.findall(r"ours, dense .*?speed-up\s+([\d.]+)x", text)
    where = re.search(r"k=\d+ batch=\d+ on (\S+)", text)
    if not dense:
        return ""
    parts = [f"{c.split()[0]} {d}x" for c, d in zip(cases, dense)]
    return "dense / pairwise speed-up: " + ", ".join(parts) + (f" (on {where.group(1)})" if where else "")


def mamba_figures(text: str) -> str:
    rows = re.findall(r"^\| (sequential|parallel|cuda) \| [\d.]+ \| [\d.]+ \| ([\d.]+)x \| ([\d.]+)x \|$", text, re.M)
    if not rows:
        return ""
    out = "fwd+bwd vs indexed loop: " + ", ".join(f"{name} {fb}x" for name, _, fb in rows)
    if "device cuda" in text and not any(name == "cuda" for name, _, _ in rows):
        out += "; CUDA scan kernel not installed"
    return out


FIGURES = {"train_bf16": train_figures, "train_fp16": train_figures, "resume": resume_figures,
           "kcenter": kcenter_figures, "mamba": mamba_figures}


def read_steps(out_dir: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in _read(os.path.join(out_dir, "steps.tsv")).splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_line(dry_run: bool) -> str:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return "torch not importable"
    if not dry_run and torch.cuda.is_available():
        dev = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    else:
        dev = f"CPU dry run at tiny sizes ({cpu_model()}, {os.cpu_count()} cores)"
    return f"{dev}, torch {torch.__version__}"


def summary(out_dir: str, dry_run: bool) -> tuple[str, bool]:
    """The markdown table and whether every step that ran succeeded."""
    lines = [f"GPU check: {device_line(dry_run)}", "",
             "| step | what | status | wall s | key figures |", "|---|---|---|---|---|"]
    ok = True
    rows = read_steps(out_dir)
    for name, status, wall in rows:
        figures = ""
        if not status.startswith("skipped"):
            figures = FIGURES.get(name, lambda _: "")(_read(os.path.join(out_dir, "logs", f"{name}.log")))
            if status == "ok" and not figures:
                figures = "(no figures found in the log)"
        ok &= not status.startswith("failed")
        lines.append(f"| {name} | {STEP_TITLES.get(name, '')} | {status} | {wall} | {figures} |")
    if not rows:
        lines.append("| (none) | no step ran | failed | 0 | |")
        ok = False
    lines += ["", f"logs: {os.path.join(out_dir, 'logs')}/<step>.log"]
    return "\n".join(lines) + "\n", ok


def check_resume(run_dir: str, log_path: str) -> int:
    """0 when the rerun says it resumed and log.txt holds epochs [0, 1] exactly once each."""
    starts = re.findall(r"starting at epoch (\d+)", _read(log_path))
    epochs = []
    for line in _read(os.path.join(run_dir, "log.txt")).splitlines():
        try:
            epochs.append(json.loads(line)["epoch"])
        except (ValueError, KeyError, TypeError):
            continue
    resumed = int(starts[-1]) if starts else None
    good = resumed == 1 and epochs == [0, 1]
    print(f"resume check: resumed at epoch {resumed if resumed is not None else 'never'}, "
          f"log.txt epochs {epochs}{'' if good else ' (expected resume at 1 and epochs [0, 1])'}")
    return 0 if good else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", nargs="?")
    p.add_argument("--dry_run", type=int, default=0)
    p.add_argument("--check_resume", nargs=2, metavar=("RUN_DIR", "LOG"))
    args = p.parse_args(argv)
    if args.check_resume:
        return check_resume(*args.check_resume)
    if not args.out_dir:
        p.error("OUT is required")
    table, ok = summary(args.out_dir, bool(args.dry_run))
    with open(os.path.join(args.out_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(table)
    print()
    print(table, end="")
    print(f"summary: {os.path.join(args.out_dir, 'summary.md')}; {'all steps ok' if ok else 'a step FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
