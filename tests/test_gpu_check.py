"""scripts/gpu_check.sh: shell syntax, the summariser on canned logs (fast), and the CPU dry run (slow)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from snappix.tools import gpu_check_report as R

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
STEPS = ["train_bf16", "train_fp16", "resume", "kcenter", "mamba"]

LOGS = {
    "train_bf16": "model m (coded_type=naive), batch 8, device cuda, precision bf16, torch 2.x\n"
                  "  sdpa        412.50 clips/s   (0.02 s/step wall)\n  explicit    200.00 clips/s\n"
                  "  speed-up sdpa / explicit: 2.06x wall-clock, 1.50x process CPU time\n",
    "resume": "== first run\nINFO resumed from x: starting at epoch 1\n"
              "resume check: resumed at epoch 1, log.txt epochs [0, 1]\n",
    "kcenter": "k-center on real clips (8 windows)\n  N=5684 (29x196) D=771 k=980 batch=8 on cuda\n"
               "  ours, dense    (O(N) mem)     0.10 s   peak extra 1.0 MiB   speed-up  4.20x (target >= 3x)\n"
               "k-center on white noise (no low-rank structure)\n"
               "  ours, dense    (O(N) mem)     0.10 s   peak extra 1.0 MiB   speed-up  3.10x (target >= 3x)\n",
    "mamba": "torch 2.x, device cuda, threads 1\n"
             "| scan | forward ms | fwd+bwd ms | forward speed-up | fwd+bwd speed-up |\n|---|---|---|---|---|\n"
             "| sequential | 10 | 20 | 5.0x | 6.0x |\n| parallel | 5 | 10 | 10.0x | 12.0x |\n",
}


def test_script_syntax_and_mode():
    assert os.access(SCRIPT, os.X_OK), "scripts/gpu_check.sh must be executable"
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    help_text = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--dry_run" in help_text and "kill" in help_text


def _canned(out: Path, statuses: dict[str, str]) -> None:
    (out / "logs").mkdir(parents=True)
    with open(out / "steps.tsv", "w") as f:
        for name in STEPS:
            f.write(f"{name}\t{statuses.get(name, 'ok')}\t1.5\n")
    for name, text in LOGS.items():
        (out / "logs" / f"{name}.log").write_text(text)


def test_summary_table_from_canned_logs(tmp_path, capsys):
    _canned(tmp_path, {"train_fp16": "skipped (no CUDA: fp16 autocast needs a CUDA device)"})
    assert R.main([str(tmp_path), "--dry_run", "1"]) == 0
    table = (tmp_path / "summary.md").read_text()
    assert table in capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert set(STEPS) <= set(rows)
    assert "SDPA / explicit 2.06x (CPU time 1.50x); SDPA 412.50 clips/s; bf16" in rows["train_bf16"]
    assert "| skipped (no CUDA" in rows["train_fp16"]
    assert "resumed at epoch 1, log.txt epochs [0, 1]" in rows["resume"]
    assert "dense / pairwise speed-up: real 4.20x, white 3.10x (on cuda)" in rows["kcenter"]
    assert "sequential 6.0x, parallel 12.0x; CUDA scan kernel not installed" in rows["mamba"]


def test_summary_fails_on_a_failed_step(tmp_path):
    _canned(tmp_path, {"kcenter": "failed (timeout 90 s)"})
    assert R.main([str(tmp_path)]) == 1
    assert "| kcenter | bench_masking: dense k-center vs pairwise | failed (timeout 90 s) |" in \
        (tmp_path / "summary.md").read_text()


def test_check_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    log = tmp_path / "resume.log"
    log.write_text("INFO resumed from run/checkpoint-latest.pth: starting at epoch 1\n")
    (run / "log.txt").write_text("\n".join(json.dumps({"epoch": e, "train_loss": 1.0}) for e in (0, 1)) + "\n")
    assert R.main(["--check_resume", str(run), str(log)]) == 0
    (run / "log.txt").write_text(json.dumps({"epoch": 0}) + "\n")
    assert R.main(["--check_resume", str(run), str(log)]) == 1
    log.write_text("no resume here\n")
    (run / "log.txt").write_text("\n".join(json.dumps({"epoch": e}) for e in (0, 1)) + "\n")
    assert R.main(["--check_resume", str(run), str(log)]) == 1


@pytest.mark.slow
def test_cpu_dry_run(tmp_path):
    """The whole script on the CPU at tiny sizes (2.5 minutes on 2 busy cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", str(SCRIPT), "--dry_run", "--out", str(tmp_path / "gc")], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "CPU dry run at tiny sizes" in res.stdout
    table = (tmp_path / "gc" / "summary.md").read_text()
    assert table in res.stdout
    for name in STEPS:
        line = next(ln for ln in table.splitlines() if ln.startswith(f"| {name} |"))
        assert ("| skipped (no CUDA" if name == "train_fp16" else "| ok |") in line, line
    assert "resumed at epoch 1, log.txt epochs [0, 1]" in table
