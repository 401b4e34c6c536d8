"""Errors a user causes are one clear line (file / flag and the fix), exit status 2, no traceback.

Also: unknown model names list close names; messages name only real flags and speak in the unit the user
set; every flag of the entry points has a help text and shows its default; a CSV list points to the
converter; raw colour video read as grey is warned about once; preprocessing failure reasons say
empty / not a video / truncated / broken link; an old-format pickle is refused like a zip one.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, synthetic_frames, write_lossless_video
from snappix.data.datasets import VideoClsDataset
from snappix.data.lists import ListFormatError, read_list
from snappix.engine.checkpoint import CheckpointError, load_checkpoint

pytestmark = pytest.mark.bad_input
sys.path.insert(0, str(REPO))  # the entry points


def _run(script: str, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("SNAPPIX_DEBUG", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(REPO / script), *args], env=env, capture_output=True, text=True,
                          timeout=180)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def test_missing_list_is_one_line_and_debug_shows_the_traceback(tmp_path):
    args = ("--model", "video_vit_super_tiny_patch8_112", "--nb_classes", "2",
            "--data_path", str(tmp_path / "nope.csv"), "--output_dir", str(tmp_path / "out"), "--device", "cpu", "--num_workers", "0")
    line = _one_error_line(_run("run_finetuning.py", *args))
    assert "nope.csv" in line
    debug = _run("run_finetuning.py", *args, "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    env_debug = _run("run_finetuning.py", *args, env_extra={"SNAPPIX_DEBUG": "1"})
    assert "Traceback" in env_debug.stderr


def test_unknown_model_lists_close_names(tmp_path):
    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "l.csv").write_text("v.mp4 0 -1\n")
    line = _one_error_line(_run("run_pretraining.py", "--model", "pretrain_coded_videomae_super_tiny_patch8",
                                "--data_path", str(tmp_path / "l.csv"), "--data_root", str(tmp_path),
                                "--output_dir", str(tmp_path / "out"), "--device", "cpu"))
    assert "--model 'pretrain_coded_videomae_super_tiny_patch8'" in line
    assert "pretrain_coded_videomae_super_tiny_patch8_112" in line, line


def test_warmup_error_speaks_in_the_unit_the_user_set():
    from snappix.engine.args import ConfigError
    from snappix.engine.runner import check_warmup

    with pytest.raises(ConfigError, match=r"--warmup_epochs 5 must be fewer than --epochs 3") as err:
        check_warmup(argparse.Namespace(epochs=3, warmup_epochs=5, warmup_steps=-1), 10)
    assert "steps" not in str(err.value).split(":")[0]
    with pytest.raises(ConfigError, match=r"--warmup_steps 40 must be fewer than the run's 30 optimizer steps"):
        check_warmup(argparse.Namespace(epochs=3, warmup_epochs=0, warmup_steps=40), 10)
    check_warmup(argparse.Namespace(epochs=3, warmup_epochs=2, warmup_steps=-1), 10)  # fine


def _parsers():
    import run_finetuning
    import run_pretraining
    from snappix.decorrelation import cli as decorrelation
    from snappix.tools import check_data, preprocess_cli, scanpaths

    return {"run_pretraining.py": run_pretraining.build_parser(), "run_finetuning.py": run_finetuning.build_parser(),
            "run_decorrelation_training.py": decorrelation.build_parser(),
            "preprocess_data.py": preprocess_cli.build_parser(), "check_data": check_data.build_parser(),
            "scanpaths": scanpaths.build_parser()}


def test_every_flag_has_help_and_shows_its_default():
    missing = []
    for name, parser in _parsers().items():
        parser.format_help()  # renders (no bad % in a help text)
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                continue
            text = (action.help or "").strip()
            shown = formatter._get_help_string(action) if text else ""
            if action.default is argparse.SUPPRESS:  # --no_x: same as --x false
                ok = bool(text)
            else:
                ok = bool(text) and ("%(default)" in shown or "default" in text.lower())
            if not ok:
                missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, missing
    assert all("--debug" in p.format_help() for name, p in _parsers().items() if name not in ("check_data", "scanpaths"))


def _message_flags() -> list[tuple[str, str]]:
    """``(file:line, --flag)`` of every flag named in a raise / error / warning message of the code."""
    out = []
    for path in [*(REPO / "snappix").rglob("*.py"), *REPO.glob("run_*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            is_msg = isinstance(node, ast.Raise) or (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("error", "warning", "exception"))
            if not is_msg:
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9_]+", sub.value):
                        out.append((f"{path.relative_to(REPO)}:{sub.lineno}", flag))
    return out


def _own_flags(path: Path) -> set[str]:
    """Flags a file defines itself (``add_argument("--x", ...)``: the small tools with their own parser), plus
    those of :mod:`snappix.tools.results_table` for the tools built on its ``table_parser``."""
    text = path.read_text()
    flags = set(re.findall(r"add_argument\(\s*\"(--[a-z][a-z0-9_]+)\"", text))
    shared = path.parent / "results_table.py"
    if "results_table" in text and path != shared and shared.is_file():
        flags |= _own_flags(shared)
    return flags


def test_messages_name_only_real_flags():
    known = {"--nproc_per_node", "--kill-on-bad-exit"}
    for parser in _parsers().values():
        for action in parser._actions:
            known.update(action.option_strings)
    unknown = [(where, flag) for where, flag in _message_flags()
               if flag not in known and flag not in _own_flags(REPO / where.split(":")[0])]
    assert not unknown, unknown


def test_kinetics_csv_fails_at_line_one_pointing_to_the_converter(tmp_path):
    (tmp_path / "k.csv").write_text("path,label\nabc.mp4,3\n")
    with pytest.raises(ListFormatError) as err:
        read_list(tmp_path / "k.csv", "cls")
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'k.csv'}:1:") and "dataset/kinetics_list.py --csv" in msg, msg
    assert "'path,label' CSV" in msg and "--data_root" in msg and "tr , " not in msg, msg  # the converter, no one-liner


def test_raw_colour_video_read_as_grey_is_warned_once(tmp_path, caplog):
    grey = synthetic_frames(8, height=32, width=32, seed=1)
    grey[..., 1] = grey[..., 2] = grey[..., 0]
    write_lossless_video(tmp_path / "grey.mp4", grey)
    for i in range(2):
        write_lossless_video(tmp_path / f"colour{i}.mp4", synthetic_frames(8, height=32, width=32, seed=i))
    kw = dict(mode="validation", num_frames=4, sampling_rate=1, input_size=32, short_side_size=32)
    (tmp_path / "grey.csv").write_text("grey.mp4 0\n")
    (tmp_path / "colour.csv").write_text("colour0.mp4 0\ncolour1.mp4 1\n")
    with caplog.at_level(logging.WARNING):
        VideoClsDataset(str(tmp_path / "grey.csv"), str(tmp_path), **kw)[0]
    assert "colour video" not in caplog.text
    ds = VideoClsDataset(str(tmp_path / "colour.csv"), str(tmp_path), **kw)
    with caplog.at_level(logging.WARNING):
        ds[0], ds[1]
    warnings = [r.getMessage() for r in caplog.records if "colour video" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "colour0.mp4" in warnings[0] and "preprocess_data.py" in warnings[0]


def test_preprocess_failure_reasons_distinguish_the_kinds(tmp_path):
    from snappix.tools.preprocess_cli import main

    inp = tmp_path / "in"
    inp.mkdir()
    good = tmp_path / "good.mp4"
    write_lossless_video(good, synthetic_frames(10, height=32, width=32))
    (inp / "empty.mp4").write_bytes(b"")
    (inp / "text.mp4").write_text("this is not a video\n" * 40)
    (inp / "cut.mp4").write_bytes(good.read_bytes()[:300])  # starts like an MP4, cut short
    (inp / "link.mp4").symlink_to(tmp_path / "gone.mp4")
    assert main([str(inp), str(tmp_path / "out"), "--cores", "1", "--no_progress"]) == 0
    reasons = dict(line.split("\t") for line in (tmp_path / "out" / "preprocess_failed.txt").read_text().splitlines())
    kinds = {Path(p).name: r.split(":")[0] for p, r in reasons.items()}
    assert kinds == {"empty.mp4": "empty", "text.mp4": "not_a_video", "cut.mp4": "truncated",
                     "link.mp4": "broken_link"}, reasons


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_old_format_pickle_is_refused_like_the_zip_format(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "old.pth", "wb") as f:
        pickle.dump({"model": _Evil()}, f, protocol=4)
    with pytest.raises(CheckpointError, match=r"refusing to load checkpoint .*old\.pth: a pickle in the old "
                                              r"\(non-zip\) format; it would import (posix|nt)\.system") as err:
        load_checkpoint(tmp_path / "old.pth")
    assert "Nothing in the file was executed" in str(err.value)
    assert not (tmp_path / "pwned.txt").exists()
