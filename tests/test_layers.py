"""Tests of the layers / size check (snappix.tools.layers): the real package tree, and small fake trees with
one deliberate violation of each kind (reported with the right path and line) or none."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snappix.tools import layers
from snappix.tools.layers import check_tree, main

REPO = Path(__file__).resolve().parents[1]

#: a fake package that follows every rule: each file's import points down (or sideways within its part)
CLEAN = {
    "__init__.py": '"""top"""\n__version__ = "0"\n',
    "errors.py": "class UserError(Exception):\n    pass\n",
    "data/__init__.py": "from .lists import read_list\n",
    "data/lists.py": "from snappix.errors import UserError\n\n\ndef read_list():\n    return UserError\n",
    "sensor/__init__.py": "from snappix.data import lists\nfrom . import coded\n",
    "sensor/coded.py": "import snappix.data.lists\n",
    "masking/__init__.py": "from ..data.lists import read_list\n",
    "models/__init__.py": "from snappix.sensor import coded\nfrom snappix.masking import read_list\n",
    "models/vit.py": "from snappix import __version__\nfrom .. import sensor\n",
    "objectives/__init__.py": "from snappix.models import vit\n",
    "engine/__init__.py": "from . import loop\n",
    "engine/loop.py": "def f():\n    from snappix.data import lists\n    return lists\n",
    "methods/__init__.py": "from snappix.objectives import *\nfrom snappix.engine import loop\n",
    "decorrelation/__init__.py": "from snappix.sensor import coded\nfrom snappix.engine.loop import f\n",
    "tools/__init__.py": "",
    "tools/cli.py": "from snappix.methods import *\nfrom snappix.tools import __doc__\nfrom . import __init__\n",
}


def make_tree(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    """Write :data:`CLEAN` plus ``extra`` (path -> text, overriding) under ``tmp_path/snappix``; return it."""
    root = tmp_path / "snappix"
    for rel, text in {**CLEAN, **(extra or {})}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def found(root: Path, **limits) -> list[tuple[str, int, str]]:
    """``(path, line, kind)`` of every violation in the fake tree."""
    return [(v.path, v.line, v.kind) for v in check_tree(root, **limits).violations]


def messages(root: Path, **limits) -> str:
    """Every violation as ``path:line: message``, one a line."""
    return "\n".join(str(v) for v in check_tree(root, **limits).violations)


def test_real_tree_passes():
    report = check_tree()
    assert report.files > 50 and report.functions > 300
    assert report.ok, "\n" + "\n".join(str(v) for v in report.violations)


def test_clean_fake_tree_passes(tmp_path):
    root = make_tree(tmp_path)
    report = check_tree(root)
    assert report.ok, messages(root)
    assert report.files == len(CLEAN)
    assert report.functions == 2


def test_backward_import_is_reported(tmp_path):
    root = make_tree(tmp_path, {"data/lists.py": "import os\n\nfrom snappix.models.vit import x\n"})
    assert found(root) == [("snappix/data/lists.py", 3, "import")]
    assert "snappix.data.lists (data) imports snappix.models.vit (models)" in messages(root)


@pytest.mark.parametrize("src, text, target", [
    ("errors.py", "from snappix.data import lists\n", "snappix.data.lists"),
    ("engine/loop.py", "from snappix.models import vit\n", "snappix.models.vit"),
    ("engine/loop.py", "import snappix.sensor.coded as coded\n", "snappix.sensor.coded"),
    ("sensor/coded.py", "from snappix import masking\n", "snappix.masking"),
    ("masking/__init__.py", "from snappix.sensor import coded\n", "snappix.sensor.coded"),
    ("methods/__init__.py", "from snappix.decorrelation import x\n", "snappix.decorrelation"),
    ("decorrelation/__init__.py", "from snappix.models import vit\n", "snappix.models.vit"),
    ("__init__.py", "from .data import lists\n", "snappix.data.lists"),
])
def test_each_forbidden_direction_is_reported(tmp_path, src, text, target):
    root = make_tree(tmp_path, {src: text})
    assert found(root) == [(f"snappix/{src}", 1, "import")]
    assert f"imports {target} " in messages(root)


def test_lazy_import_inside_a_function_is_reported(tmp_path):
    text = textwrap.dedent("""\
        import snappix.data


        class Runner:
            def run(self):
                if True:
                    from snappix.objectives import loss
                return loss
        """)
    root = make_tree(tmp_path, {"engine/loop.py": text})
    assert found(root) == [("snappix/engine/loop.py", 7, "import")]
    assert "(lazy import in run())" in messages(root)


def test_relative_imports_are_resolved(tmp_path):
    text = "from .. import models\nfrom ..models.vit import x\nfrom . import loop\nfrom .loop import f\n"
    root = make_tree(tmp_path, {"engine/other.py": text})
    assert found(root) == [("snappix/engine/other.py", 1, "import"), ("snappix/engine/other.py", 2, "import")]
    text = messages(root)
    assert "imports snappix.models (models)" in text and "imports snappix.models.vit (models)" in text
    # three levels up from a sub-package: snappix.engine.sub.mod -> snappix
    root = make_tree(tmp_path / "deeper", {"engine/sub/__init__.py": "",
                                           "engine/sub/mod.py": "from ...sensor import coded\n"})
    assert found(root) == [("snappix/engine/sub/mod.py", 1, "import")]
    assert "imports snappix.sensor.coded (sensor)" in messages(root)


def test_literal_import_module_and_type_checking_imports_count(tmp_path):
    text = ("import importlib\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from snappix.models import vit\n"
            "\n\ndef load():\n    return importlib.import_module('snappix.objectives')\n")
    root = make_tree(tmp_path, {"engine/loop.py": text})
    assert found(root) == [("snappix/engine/loop.py", 5, "import"), ("snappix/engine/loop.py", 9, "import")]


def test_importing_tools_from_outside_tools_is_reported(tmp_path):
    root = make_tree(tmp_path, {"models/vit.py": "x = 1\nfrom snappix.tools.cli import main\n",
                                "data/lists.py": "def f():\n    from ..tools import cli\n"})
    assert found(root) == [("snappix/data/lists.py", 2, "import"), ("snappix/models/vit.py", 2, "import")]
    assert messages(root).count("snappix.tools is a leaf") == 2


def test_part_in_no_layer_is_reported(tmp_path):
    root = make_tree(tmp_path, {"extras/__init__.py": "", "engine/loop.py": "from snappix.extras import y\n"})
    assert found(root) == [("snappix/engine/loop.py", 1, "import"), ("snappix/extras/__init__.py", 1, "layer")]


def test_long_file_is_reported(tmp_path):
    root = make_tree(tmp_path, {"data/big.py": "x = 1\n" * 31, "data/fits.py": "x = 1\n" * 30})
    assert found(root, max_lines=30) == [("snappix/data/big.py", 1, "file_length")]
    assert "snappix/data/big.py:1: file has 31 lines (limit 30)" in messages(root, max_lines=30)


def test_long_function_is_reported(tmp_path):
    def body(indent: int) -> str:
        return "".join(f"{' ' * indent}x{i} = {i}\n" for i in range(8))

    text = ("import os\n\n\ndef long():\n    \"\"\"doc\"\"\"\n" + body(4) + "    return x0\n\n\n"  # lines 4-14
            "def fits():\n" + body(4) + "    return x0\n\n\n"  # lines 17-26
            "class A:\n    def method(self):\n" + body(8)  # method: lines 30-48
            + "        def inner():\n" + body(12) + "            return 1\n")  # inner: lines 39-48
    root = make_tree(tmp_path, {"models/vit.py": text})
    got = found(root, max_function_lines=10)
    assert got == [("snappix/models/vit.py", 4, "function_length"), ("snappix/models/vit.py", 30, "function_length")]
    text = messages(root, max_function_lines=10)
    assert "function long() has 11 lines (limit 10)" in text and "function method() has 19 lines" in text
    got = found(root, max_function_lines=9)  # now fits() and the nested inner() are over, each on its own
    assert [line for _, line, _ in got] == [4, 17, 30, 39]


def test_unparsable_file_is_reported(tmp_path):
    root = make_tree(tmp_path, {"data/broken.py": "x = 1\ndef f(:\n"})
    assert found(root) == [("snappix/data/broken.py", 2, "syntax")]


def test_cli_prints_violations_and_exits_1(tmp_path, capsys):
    root = make_tree(tmp_path, {"engine/loop.py": "\nfrom snappix.models import vit\n"})
    assert main(["--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == ["snappix/engine/loop.py:2: snappix.engine.loop (engine) imports snappix.models.vit "
                                "(models); engine may import: data, engine, errors"]
    assert main(["--root", str(root), "--max_lines", "1", "--max_function_lines", "1"]) == 1
    assert "file has 2 lines (limit 1)" in capsys.readouterr().out


def test_cli_ok_line_and_module_entry_point(tmp_path):
    root = make_tree(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "snappix.tools.layers", "--root", str(root)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == (f"OK: {len(CLEAN)} files, 2 functions: layers, file length <= 450, "
                                   f"function length <= 100")


def test_layer_table_rules():
    assert layers.LAYERS["errors"] == frozenset()
    assert not layers.LAYERS["engine"] & {"models", "sensor", "masking", "objectives", "tools"}
    assert "masking" not in layers.LAYERS["sensor"] and "sensor" not in layers.LAYERS["masking"]
    assert "decorrelation" not in layers.LAYERS["methods"] and "methods" not in layers.LAYERS["decorrelation"]
    assert all("tools" not in allowed for part, allowed in layers.LAYERS.items() if part != "tools")


def test_root_must_be_the_top_package_folder(tmp_path, capsys):
    root = make_tree(tmp_path)
    with pytest.raises(ValueError, match="sub-package"):
        check_tree(root / "engine")
    with pytest.raises(FileNotFoundError, match="not a package folder"):
        check_tree(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["--root", str(root / "engine")])
    assert e.value.code == 2 and "pass the top package folder" in capsys.readouterr().err
