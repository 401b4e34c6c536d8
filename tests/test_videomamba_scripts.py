"""VideoMamba launchers, recipes and the CPU demo: every finetuning config parses, every script is
executable and names a recipe that exists, the models build for grey input, and (slow) the demo runs."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess

import pytest

from engine_toys import REPO
from snappix.engine import args as A
from snappix.models.factory import classifier_from_flags
from snappix.tools import demo_report
from snappix.tools.results_table import RunRow

FINETUNE_CONFIGS = sorted((REPO / "configs" / "finetune").glob("*.yaml"))
MAMBA_SCRIPTS = sorted((REPO / "scripts" / "finetune").glob("videomamba_*.sh")) + \
    sorted((REPO / "scripts" / "precise_val").glob("*/videomamba_*.sh"))


def _finetuning_entry():
    spec = importlib.util.spec_from_file_location("run_finetuning", REPO / "run_finetuning.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    return entry


@pytest.mark.parametrize("path", FINETUNE_CONFIGS, ids=lambda p: p.stem)
def test_shipped_finetune_configs_parse(path):
    """Every shipped finetuning config parses through run_finetuning.py's own parser (unknown keys raise)."""
    args = A.parse_args(_finetuning_entry().build_parser(), ["--config", str(path)])
    assert args.model and args.epochs > 0 and args.lr > 0


def test_videomamba_recipes():
    """The reference values that matter: sizes, frames, views, LVU windows and the regression task."""
    parser = _finetuning_entry().build_parser()
    cfg = {p.stem: A.parse_args(parser, ["--config", str(p)]) for p in FINETUNE_CONFIGS}
    for size in ("tiny", "small", "middle"):
        k400, ssv2 = cfg[f"videomamba_{size}_k400"], cfg[f"videomamba_{size}_ssv2"]
        assert k400.model == ssv2.model == f"videomamba_{size}"
        assert k400.num_frames == ssv2.num_frames == 8 and k400.input_size == 224
        assert (k400.test_num_segment, k400.test_num_crop) == (4, 3)
        assert (ssv2.test_num_segment, ssv2.test_num_crop) == (2, 3)
        assert k400.data_set == "Kinetics_sparse" and ssv2.data_set == "SSV2" and k400.num_sample == 2
    ti = cfg["videomamba_tiny_k400"]
    assert (ti.lr, ti.epochs, ti.warmup_epochs, ti.drop_path, ti.weight_decay) == (2e-4, 70, 5, 0.1, 0.1)
    assert ti.batch_size * ti.acc_iters * 2 == 512 and ti.lr_scale_with_num_sample
    assert (cfg["videomamba_small_k400"].drop_path, cfg["videomamba_middle_k400"].drop_path) == (0.35, 0.8)
    for name in ("videomamba_tiny_lvu_class", "videomamba_tiny_lvu_regression"):
        lvu = cfg[name]
        assert (lvu.trimmed, lvu.time_stride, lvu.num_frames, lvu.lr, lvu.drop_path) == (60, 16, 32, 4e-4, 0.15)
    assert cfg["videomamba_tiny_lvu_regression"].task == "regression"
    assert cfg["videomamba_tiny_lvu_regression"].nb_classes == 1
    assert (cfg["videomamba_tiny_breakfast"].test_num_segment, cfg["videomamba_tiny_coin"].test_num_segment) == (4, 10)


@pytest.mark.parametrize("path", MAMBA_SCRIPTS + [REPO / "scripts" / "demos" / "videomamba.sh"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_scripts_are_executable_and_name_existing_recipes(path):
    assert os.access(path, os.X_OK), f"{path} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True)
    for recipe in re.findall(r"(videomamba_\w+_(?:k400|ssv2|breakfast|coin|lvu_class|lvu_regression))\b",
                             path.read_text()):
        assert (REPO / "configs" / "finetune" / f"{recipe}.yaml").is_file(), recipe


def test_expected_launchers_exist():
    names = {p.stem for p in MAMBA_SCRIPTS if p.parent.name == "finetune"}
    assert names == {f"videomamba_{s}_{d}" for s in ("tiny", "small", "middle") for d in ("k400", "ssv2")} | \
        {f"videomamba_tiny_{d}" for d in ("breakfast", "coin", "lvu_class", "lvu_regression")}
    for dataset in ("K400", "SSV2"):
        for size in ("tiny", "small", "middle"):
            assert (REPO / "scripts" / "precise_val" / dataset / f"videomamba_{size}.sh").is_file()


def test_finetuning_builds_videomamba_for_grey_clips():
    """run_finetuning.py's loader yields one channel: every VideoMamba it builds takes grey clips."""
    import torch

    tiny = classifier_from_flags(dict(model="videomamba_tiny", input_size=32, num_frames=2, drop_path=0.1), 5)
    assert tiny.in_chans == 1 and tiny.grid == (2, 2, 2)
    demo = classifier_from_flags(dict(model="videomamba_super_tiny", input_size=64, num_frames=16, drop_path=0.0,
                                      init_scale=1.0), 8)
    assert demo.in_chans == 1 and demo.grid == (4, 2, 2) and demo.embed_dim == 96 and len(demo.blocks) == 4
    assert demo.global_pool == "avg" and tiny.global_pool == "token"
    assert demo(torch.rand(2, 1, 16, 64, 64)).shape == (2, 8)


def test_global_pool_avg_reads_the_mean_of_the_patch_tokens():
    import torch

    from snappix.models.videomamba import VideoMamba

    model = VideoMamba(num_classes=3, img_size=32, num_frames=2, in_chans=1, embed_dim=16, depth=1,
                       global_pool="avg").eval()
    tokens = torch.randn(2, 1 + 2 * 2 * 2, 16)
    assert torch.allclose(model.forward_head(tokens, pre_logits=True), tokens[:, 1:].mean(1))
    with pytest.raises(ValueError, match="global_pool"):
        VideoMamba(num_classes=3, img_size=32, num_frames=2, in_chans=1, embed_dim=16, depth=1, global_pool="max")


def test_demo_report_margins():
    def row(name, top1):
        return RunRow(name=name, model="m", sensor="none", init="scratch", top1=top1, single_view_top1=top1,
                      views="2x3", tokens=64, gflops=0.1, pixels=1, train_s=10.0)

    rows = [row("mamba", 60.0), row("vit", 20.0), row("frame", 12.5)]
    lines = demo_report.margins(rows, "frame", 15)
    assert lines[0].startswith("mamba: +47.5 points") and "at least" in lines[0]
    assert lines[1].startswith("vit: +7.5 points") and "LESS than" in lines[1]
    table = demo_report.format_rows(rows, [206088, 1, 2])
    assert "| mamba | 60.0 (2x3) | 60.0 | 0.21 M | 64 | 0.100 | 10 s |" in table


@pytest.mark.slow
def test_videomamba_demo_fast(tmp_path):
    """The demo end to end with tiny settings (32 clips, 1 epoch): three rows with measured numbers."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demos" / "videomamba.sh"), "--fast", "--out", "demo"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (tmp_path / "demo" / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [r.split("|")[1].strip() for r in rows] == ["VideoMamba (16 frames)", "video ViT (16 frames)",
                                                       "single frame (short exposure)"]
    for r in rows:
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert cells[1] != "n/a" and 0.0 <= float(cells[1].split()[0]) <= 100.0
        assert float(cells[5]) > 0
    assert "VideoMamba demo" in proc.stdout
