"""Engine: flags and config files (``snappix.engine.args``, ``snappix.engine.config_file``): YAML
defaults and overrides, aliases, typos, boolean spellings, ``config.yaml`` round trip, group default
overrides and the shipped pretraining configs."""

from __future__ import annotations

import argparse
import importlib.util

import pytest
import yaml

from engine_toys import REPO
from snappix.engine import args as A
from snappix.engine import optim as O


# ---------------------------------------------------------------------------------------------------
# flags and config
# ---------------------------------------------------------------------------------------------------
def _parser():
    p = A.build_parser("test")
    A.add_bool_arg(p, "--normalize_target", "--normlize_target", default=True, help="per-patch target norm")
    return p


def test_config_yaml_defaults_flag_override_and_aliases(tmp_path):
    cfg = tmp_path / "exp.yaml"
    # "1e-3" is a *string* for YAML 1.1 (no dot): it must still become a float
    cfg.write_text("lr: 1e-3\nupdate_freq: 8\nopt_betas: [0.9, 0.95]\nnormlize_target: false\n"
                   "no_auto_resume: true\nepochs: 30\nweight_decay_end: null\nprecision: fp32\n")
    args = A.parse_args(_parser(), ["--config", str(cfg), "--epochs", "5"])
    assert args.lr == 1e-3 and isinstance(args.lr, float)
    assert args.acc_iters == 8 and args.opt_betas == [0.9, 0.95]
    assert args.normalize_target is False and args.auto_resume is False
    assert args.epochs == 5  # explicit flag wins
    assert args.precision == "fp32" and args.weight_decay_end is None
    # the parser is left untouched
    assert A.parse_args(_parser(), []).epochs == 300


def test_config_unknown_key_and_bad_value_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1.0e-3\nmask_ratoi: 0.9\n")
    with pytest.raises(SystemExit):
        A.parse_args(_parser(), ["--config", str(bad)])
    err = capsys.readouterr().err
    assert "mask_ratoi" in err and str(bad) in err
    with pytest.raises(A.ConfigError, match="unknown key 'epoch'.*did you mean.*epochs"):
        (tmp_path / "typo.yaml").write_text("epoch: 3\n")
        A.load_config(str(tmp_path / "typo.yaml"), _parser())
    (tmp_path / "choice.yaml").write_text("precision: fp8\n")
    with pytest.raises(A.ConfigError, match="precision"):
        A.load_config(str(tmp_path / "choice.yaml"), _parser())
    (tmp_path / "list.yaml").write_text("- lr\n")
    with pytest.raises(A.ConfigError, match="mapping"):
        A.load_config(str(tmp_path / "list.yaml"), _parser())


def test_bool_flags_and_local_rank_spellings():
    p = _parser()
    assert A.parse_args(p, ["--normlize_target", "False"]).normalize_target is False  # SnapPix's type=bool trap
    assert A.parse_args(p, ["--normalize_target"]).normalize_target is True
    assert A.parse_args(p, ["--pin_mem", "no"]).pin_mem is False
    assert A.parse_args(p, ["--no_pin_mem"]).pin_mem is False
    assert A.parse_args(p, []).pin_mem is True
    assert A.parse_args(p, ["--enable_deepspeed"]).enable_deepspeed is True
    with pytest.raises(SystemExit):
        A.parse_args(p, ["--pin_mem", "Flase"])
    assert A.parse_args(p, ["--local-rank", "3"]).local_rank == 3
    assert A.parse_args(p, ["--local_rank=2"]).local_rank == 2
    assert A.parse_args(p, ["--update_freq", "4"]).acc_iters == 4
    with pytest.raises(SystemExit):  # no prefix abbreviations (SnapPix --cross_model -> --cross_model_path)
        A.parse_args(p, ["--warmup", "3"])


def test_save_config_round_trip(tmp_path):
    p = _parser()
    args = A.parse_args(p, ["--lr", "2e-3", "--opt_betas", "0.9", "0.95", "--output_dir", str(tmp_path),
                            "--no_auto_resume", "--clip_grad", "1", "--data_root", str(tmp_path)])
    path = A.save_config(args, str(tmp_path))
    assert path == str(tmp_path / "config.yaml")
    saved = yaml.safe_load(open(path))
    assert saved["lr"] == 2e-3 and saved["opt_betas"] == [0.9, 0.95] and saved["auto_resume"] is False
    again = A.parse_args(_parser(), ["--config", path])
    assert {k: v for k, v in vars(again).items() if k != "config"} == \
           {k: v for k, v in vars(args).items() if k != "config"}


def test_group_default_overrides():
    p = argparse.ArgumentParser()
    A.add_schedule_args(p, epochs=100, lr=1e-3)
    assert A.parse_args(p, []).epochs == 100
    with pytest.raises(ValueError, match="not in group"):
        A.add_data_args(argparse.ArgumentParser(), epochs=3)


@pytest.mark.parametrize("name", ["coded_vits_snappix", "coded_vitb_snappix", "coded_super_tiny_reconstruction",
                                  "videomae_super_tiny"])
def test_shipped_pretrain_configs_parse(name):
    """Every shipped config parses through run_pretraining.py's own parser (unknown keys would raise)."""
    spec = importlib.util.spec_from_file_location("run_pretraining", REPO / "run_pretraining.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    path = REPO / "configs" / "pretrain" / f"{name}.yaml"
    args = A.parse_args(entry.build_parser(), ["--config", str(path)])
    assert args.task in ("pretrain", "reconstruction")
    total = args.batch_size * args.acc_iters * {"coded_super_tiny_reconstruction": 2}.get(name, 4)
    assert O.scaled_lr(args.lr, args.batch_size, total // (args.batch_size * args.acc_iters), args.acc_iters) == \
        pytest.approx(1e-3 * total / 256)
    if name.startswith("coded_vit"):
        assert total == 2048 and args.warmup_epochs == 30 and args.epochs == 300 and args.opt_betas == [0.9, 0.95]
