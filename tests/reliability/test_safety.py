"""Untrusted files and odd paths.

* a malicious pickle (its unpickling would run ``os.system`` and create a marker file) is refused by
  every loader -- resume, auto-resume, finetune (with and without ``--trust_checkpoint``), pattern --
  with a clear error and without executing anything;
* a VideoMAE-style checkpoint that pickled an ``argparse.Namespace`` is refused unless the user passes
  ``--trust_checkpoint``, and even then is read with ``weights_only=True`` plus a two-entry allow-list;
* ``--config`` YAML is read with ``yaml.safe_load`` (a ``!!python`` tag is an error, nothing runs);
* shell launchers quote every path: an audit of every ``.sh`` / ``.sbatch`` file, and the launchers
  run with folders containing spaces.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO
from snappix.engine import args as A
from snappix.engine import checkpoint as C
from snappix.methods.pretrained import load_pretrained
from snappix.sensor.patterns import PatternFileError, load_pattern

pytestmark = pytest.mark.safety


class _Payload:
    """Unpickling this runs ``os.system("touch MARKER")``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.fixture
def malicious(tmp_path) -> tuple[Path, Path]:
    """``(checkpoint, marker)``: a checkpoint-shaped file whose unpickling would create ``marker``."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3, "pattern": _Payload(marker),
                "args": _Payload(marker)}, path)
    torch.load(path, weights_only=False)  # sanity: the payload does run when unpickled unsafely
    assert marker.exists()
    marker.unlink()
    return path, marker


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))


def _load_resume(path, tmp_path):
    C.resume(Tiny(), None, None, tmp_path, resume_path=str(path))


def _load_auto_resume(path, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(path, out / C.LATEST)
    info = C.resume(Tiny(), None, None, out)  # the refused file is skipped with a warning: a fresh start
    assert info.path is None and info.start_epoch == 0


def _load_finetune(path, tmp_path):
    load_pretrained(Tiny(), path, trusted=False, verbose=False)


def _load_finetune_trusted(path, tmp_path):
    load_pretrained(Tiny(), path, trusted=True, verbose=False)


def _load_pattern(path, tmp_path):
    load_pattern(path)


LOADERS = {"resume": (_load_resume, C.CheckpointError), "auto_resume": (_load_auto_resume, None),
           "finetune": (_load_finetune, C.CheckpointError),
           "finetune_trust_checkpoint": (_load_finetune_trusted, C.CheckpointError),
           "pattern": (_load_pattern, PatternFileError)}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_malicious_pickle_is_refused_without_executing(malicious, tmp_path, loader, caplog):
    path, marker = malicious
    fn, error = LOADERS[loader]
    if error is None:  # auto-resume: skipped with a warning naming the file
        with caplog.at_level(logging.WARNING):
            fn(path, tmp_path)
        msg, name = caplog.text, C.LATEST
    else:
        with pytest.raises(error) as err:
            fn(path, tmp_path)
        msg, name = str(err.value), path.name
    assert not marker.exists(), "the payload ran"
    assert name in msg and "posix.system" in msg and re.search(r"[Nn]othing in (the file|it) was executed", msg), msg


def test_videomae_namespace_checkpoint_needs_trust_checkpoint(tmp_path, monkeypatch):
    import run_finetuning

    path = tmp_path / "videomae.pth"
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(model="vit_base", lr=1e-3), "epoch": 799},
               path)
    flags = ["--model", "x", "--data_path", "lists"]
    assert run_finetuning.build_parser().parse_args(flags).trust_checkpoint is False  # refused by default
    with pytest.raises(C.CheckpointError, match=r"argparse\.Namespace.*pass --trust_checkpoint"):
        load_pretrained(Tiny(), path, trusted=False, verbose=False)
    seen = []
    real_load = torch.load

    def spy(*a, **k):
        seen.append(k.get("weights_only"))
        return real_load(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    trusted = run_finetuning.build_parser().parse_args([*flags, "--trust_checkpoint"]).trust_checkpoint
    model = Tiny()
    report = load_pretrained(model, path, trusted=trusted, verbose=False)
    assert seen == [True] and report.ok and torch.equal(model.w.detach(), torch.ones(2))


def test_config_yaml_is_safe_loaded(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f"lr: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SystemExit) as exc:
        A.parse_args(A.build_parser(), ["--config", str(cfg)])
    assert exc.value.code == 2 and not marker.exists()
    err = capsys.readouterr().err
    assert str(cfg) in err and "not valid YAML" in err


# ---------------------------------------------------------------------------------------------------
# shell scripts: every expansion quoted; paths with spaces work
# ---------------------------------------------------------------------------------------------------
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def unquoted_expansions(text: str) -> list[tuple[int, str]]:
    """``(line, expansion)`` of each ``$VAR`` / ``${...}`` outside double quotes that is not part of an
    assignment word (``X=$Y`` does not split). Single quotes, comments, ``$(...)`` nesting handled."""
    out, stack, i, n, line = [], ["top"], 0, len(text), 1
    word_start, assign = True, False
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        if stack[-1] == "dq":
            if c == "\\":
                i += 2
                continue
            if c == '"':
                stack.pop()
            elif text.startswith("$(", i):
                stack.append("cmd")
                word_start, assign = True, False
                i += 2
                continue
            i += 1
            continue
        if c in " \t\n;|&(":
            if c == "(" and stack[-1] == "cmd":
                stack.append("cmd")
            word_start, assign = True, False
            i += 1
            continue
        if word_start:
            if c == "#":
                j = text.find("\n", i)
                i = n if j < 0 else j
                continue
            assign, word_start = bool(_ASSIGNMENT.match(text, i)), False
        if c == "\\":
            i += 2
        elif c == "'":
            j = text.find("'", i + 1)
            line += text.count("\n", i, j)
            i = j + 1
        elif c == '"':
            stack.append("dq")
            i += 1
        elif c == ")" and stack[-1] == "cmd":
            stack.pop()
            i += 1
        elif text.startswith("$((", i):
            i = text.find("))", i) + 2
        elif text.startswith("$(", i):
            stack.append("cmd")
            word_start, assign = True, False
            i += 2
        elif c == "$":
            m = re.match(r"\$(\{[^}]*\}|[A-Za-z_@*][A-Za-z0-9_]*|[0-9#?$!-])", text[i:])
            if m and not assign and m.group(1) not in ("?", "#", "$", "!", "-"):
                out.append((line, m.group(0)))
            i += len(m.group(0)) if m else 1
        else:
            i += 1
    return out


def test_every_shell_expansion_is_quoted():
    assert unquoted_expansions('cp $SRC "$DST"\nX=$Y\necho "$(dirname "$0")" ${Z:-a}\n') == [(1, "$SRC"),
                                                                                              (3, "${Z:-a}")]
    scripts = sorted(p for pat in ("scripts/**/*.sh", "scripts/**/*.sbatch", "dataset/*.sh") for p in REPO.glob(pat))
    assert len(scripts) > 20
    found = {str(p.relative_to(REPO)): unquoted_expansions(p.read_text()) for p in scripts}
    assert {k: v for k, v in found.items() if v} == {}


STUB = """#!{python}
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""


@pytest.mark.parametrize("script,positional", [
    ("scripts/pretrain/videomae_super_tiny_pt.sh", []),
    ("scripts/finetune/finetune.sh", ["coded_vits_ucf"]),
    ("scripts/precise_val/eval.sh", ["coded_vits_ucf", "3", "3"]),
])
def test_launchers_pass_paths_with_spaces_intact(tmp_path, script, positional):
    """The launchers run from a repository copy whose folder has a space, with data, output, checkpoint
    and pattern paths that have spaces; the (stubbed) interpreter must get each path as one argument."""
    repo = tmp_path / "my repo"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    shutil.copytree(REPO / "configs", repo / "configs")
    stub = tmp_path / "fake python"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    out = tmp_path / "out dir"
    out.mkdir()
    (out / "checkpoint-best.pth").write_bytes(b"x")
    paths = {"OUTPUT_DIR": str(out), "DATA_PATH": str(tmp_path / "my lists" / "train list.csv"),
             "DATA_ROOT": str(tmp_path / "video root"), "FINETUNE": str(tmp_path / "pre trained.pth"),
             "PATTERN": str(tmp_path / "pattern 4.pth")}
    env = {**os.environ, **paths, "PYTHON": str(stub), "ARGV_LOG": str(tmp_path / "argv.jsonl"), "GPUS": "1"}
    proc = subprocess.run(["bash", str(repo / script), *positional, "--note", "a b"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    argv = json.loads((tmp_path / "argv.jsonl").read_text().splitlines()[0])
    assert argv[:2] == ["-m", "torch.distributed.run"]
    assert any(a.endswith(".py") and a.startswith(str(repo)) for a in argv)  # "$REPO/run_*.py", one word
    for flag, key in (("--data_path", "DATA_PATH"), ("--data_root", "DATA_ROOT"), ("--output_dir", "OUTPUT_DIR")):
        assert argv[argv.index(flag) + 1] == paths[key]
    config = argv[argv.index("--config") + 1]
    assert config.startswith(str(repo)) and Path(config).is_file()
    if "finetune.sh" in script:
        assert argv[argv.index("--finetune") + 1] == paths["FINETUNE"]
    if "eval.sh" in script:
        assert argv[argv.index("--resume") + 1] == str(out / "checkpoint-best.pth")
    if "pretrain" not in script:
        assert argv[argv.index("--pattern") + 1] == paths["PATTERN"]
    assert argv[-2:] == ["--note", "a b"]


def test_no_unsafe_loading_in_the_code():
    """No ``eval``/``exec``, unpickling outside ``weights_only=True``, ``yaml.load`` or ``shell=True``."""
    unsafe = re.compile(r"(?<![.\w])(eval|exec)\(|pickle\.loads?\(|weights_only\s*=\s*(False|not\b)|yaml\.(load|unsafe_load|"
                        r"full_load)\(|shell\s*=\s*True")
    files = [*REPO.glob("snappix/**/*.py"), *REPO.glob("*.py"), *REPO.glob("dataset/*.py")]
    assert len(files) > 30
    hits = [f"{p.relative_to(REPO)}:{no}: {line.strip()}" for p in files
            for no, line in enumerate(p.read_text().splitlines(), 1) if unsafe.search(line)]
    assert hits == []
