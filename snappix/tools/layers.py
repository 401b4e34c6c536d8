"""Check the package layers and the size limits of the snappix source tree.

Run ``python -m snappix.tools.layers`` (exit 1 when something is reported, 0 otherwise). Every ``.py``
file under the package folder is parsed with :mod:`ast` (nothing is imported or executed) and checked for:

* **import direction**: each top-level part of the package (``snappix/<part>/`` or ``snappix/<part>.py``)
  may import only the parts listed in :data:`LAYERS`. Imports inside functions (lazy imports), under
  ``if TYPE_CHECKING:``, relative imports (resolved to ``snappix.x.y``) and ``importlib.import_module`` /
  ``__import__`` calls with a literal name all count. ``snappix.tools`` is a leaf: only files under
  ``snappix/tools`` may import it. A part missing from :data:`LAYERS` is reported.
* **file length**: no file longer than ``--max_lines`` physical lines (450);
* **function length**: no function or method longer than ``--max_function_lines`` lines (100), counted
  from its ``def`` line to its last line, docstring included; a nested function counts on its own and as
  part of the function around it.

The entry points at the repository root (``run_*.py``, ``preprocess_data.py``) are outside the package
and are not checked.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

__all__ = ["LAYERS", "LEAVES", "TOP", "Report", "Violation", "check_file", "check_tree", "main"]

#: the package's own ``__init__.py`` (and ``from snappix import __version__``)
TOP = ""
_BASE = frozenset({"errors", "data"})
#: part -> the parts it may import (a part's own modules are listed explicitly; ``TOP`` is always allowed)
LAYERS: dict[str, frozenset[str]] = {
    TOP: frozenset(),
    "errors": frozenset(),
    "data": _BASE,
    "scanpaths": _BASE | {"scanpaths"},
    "sensor": _BASE | {"sensor"},
    "masking": _BASE | {"masking"},
    "models": _BASE | {"sensor", "masking", "models"},
    "teachers": _BASE | {"sensor", "masking", "models", "teachers"},
    "objectives": _BASE | {"sensor", "masking", "models", "objectives"},
    "engine": _BASE | {"engine"},
    "decorrelation": _BASE | {"sensor", "engine", "decorrelation"},
    "methods": _BASE | {"scanpaths", "sensor", "masking", "models", "teachers", "objectives", "engine", "methods"},
    "tools": frozenset({"errors", "data", "scanpaths", "sensor", "masking", "models", "teachers", "objectives",
                        "engine", "decorrelation", "methods", "tools"}),
}
#: parts nothing outside themselves may import
LEAVES = frozenset({"tools"})

MAX_LINES = 450
MAX_FUNCTION_LINES = 100


@dataclass(frozen=True)
class Violation:
    """One finding: ``path`` (relative to the package folder's parent, ``/``-separated), 1-based ``line``,
    ``kind`` (``import``, ``file_length``, ``function_length``, ``layer`` or ``syntax``) and ``message``."""

    path: str
    line: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Report:
    """Outcome of :func:`check_tree`: the violations and how many files and functions were checked."""

    violations: list[Violation] = field(default_factory=list)
    files: int = 0
    functions: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing was reported."""
        return not self.violations


# --------------------------------------------------------------------------------------------------- names
def module_name(path: Path, root: Path) -> str:
    """Dotted module name of ``path`` inside the package folder ``root`` (``__init__.py`` -> its package)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str, package: str) -> str | None:
    """The top-level part (``data``, ``engine``, ...) of a dotted name, ``TOP`` for the package itself,
    ``None`` for a name outside the package."""
    names = module.split(".")
    if names[0] != package:
        return None
    return names[1] if len(names) > 1 else TOP


def _is_module(name: str, root: Path) -> bool:
    """True when the dotted ``name`` (inside the package of ``root``) is a module or package in the tree."""
    rel = Path(*name.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool, root: Path) -> list[str]:
    """Absolute names a ``from X import a, b`` statement imports: ``X.a`` when that is a module (or a
    layer name right under the package), else ``X``. Relative ``X`` is resolved against ``module``."""
    if node.level:
        base = module.split(".")
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    package = root.name
    names = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        inside = target == package or target.startswith(package + ".")
        known_part = target == package and alias.name in LAYERS
        names.append(sub if inside and alias.name != "*" and (known_part or _is_module(sub, root)) else target)
    return names


def _literal_import(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("x")`` / ``import_module("x")`` / ``__import__("x")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports_of(tree: ast.AST, module: str, is_package: bool, root: Path) -> Iterator[tuple[int, str, str | None]]:
    """``(line, absolute module name, enclosing function or None)`` for every import in ``tree``."""
    def walk(node: ast.AST, func: str | None) -> Iterator[tuple[int, str, str | None]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child.lineno, alias.name, func
            elif isinstance(child, ast.ImportFrom):
                for name in _resolve_from(child, module, is_package, root):
                    yield child.lineno, name, func
            elif isinstance(child, ast.Call) and (name := _literal_import(child)) is not None:
                yield child.lineno, name, func
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            yield from walk(child, inner)
    yield from walk(tree, None)


# --------------------------------------------------------------------------------------------------- checks
def _import_violation(path: str, line: int, source: str, src_part: str, target: str, tgt_part: str,
                      func: str | None) -> Violation | None:
    """The violation of ``source`` (in part ``src_part``) importing ``target`` (in ``tgt_part``), or None."""
    where = f" (lazy import in {func}())" if func else ""
    package = target.split(".")[0]
    if tgt_part == TOP or tgt_part == src_part:
        return None
    if tgt_part in LEAVES:
        return Violation(path, line, "import", f"{source} imports {target}{where}: {package}.{tgt_part} is a leaf, "
                                               f"only {package}/{tgt_part} may import it")
    if tgt_part not in LAYERS:
        return Violation(path, line, "import", f"{source} imports {target}{where}: {package}.{tgt_part} is in no layer")
    allowed = LAYERS[src_part]
    if tgt_part in allowed:
        return None
    may = ", ".join(sorted(allowed)) or "no snappix part"
    return Violation(path, line, "import", f"{source} ({src_part or 'package top'}) imports {target} ({tgt_part})"
                                           f"{where}; {src_part or 'the package top'} may import: {may}")


def _function_violations(tree: ast.AST, path: str, limit: int) -> tuple[int, list[Violation]]:
    """``(functions counted, violations)`` for functions and methods longer than ``limit`` lines."""
    count, found = 0, []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            count += 1
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append(Violation(path, node.lineno, "function_length",
                                       f"function {node.name}() has {length} lines (limit {limit})"))
    return count, found


def check_file(path: Path, root: Path, max_lines: int = MAX_LINES,
               max_function_lines: int = MAX_FUNCTION_LINES) -> tuple[int, list[Violation]]:
    """Check one file of the package folder ``root``.

    Returns:
        ``(functions checked, violations)``; a file that does not parse gives one ``syntax`` violation
        (its length is still checked) and no function count.
    """
    rel = path.relative_to(root.parent).as_posix()
    text = path.read_text(encoding="utf-8", errors="replace")
    found: list[Violation] = []
    n_lines = len(text.splitlines())
    if n_lines > max_lines:
        found.append(Violation(rel, 1, "file_length", f"file has {n_lines} lines (limit {max_lines})"))
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as e:
        found.append(Violation(rel, e.lineno or 1, "syntax", f"cannot parse: {e.msg}"))
        return 0, found
    module = module_name(path, root)
    package = root.name
    src_part = part_of(module, package)
    if src_part not in LAYERS:
        found.append(Violation(rel, 1, "layer", f"{module}: {package}.{src_part} is in no layer (add it to LAYERS)"))
    else:
        seen = set()
        for line, target, func in imports_of(tree, module, path.name == "__init__.py", root):
            tgt_part = part_of(target, package)
            if tgt_part is not None and (line, target) not in seen:
                seen.add((line, target))
                v = _import_violation(rel, line, module, src_part, target, tgt_part, func)
                if v is not None:
                    found.append(v)
    functions, long_functions = _function_violations(tree, rel, max_function_lines)
    return functions, found + long_functions


def default_root() -> Path:
    """The installed ``snappix`` package folder (the parent of this file's folder)."""
    return Path(__file__).resolve().parent.parent


def check_tree(root: str | Path | None = None, max_lines: int = MAX_LINES,
               max_function_lines: int = MAX_FUNCTION_LINES) -> Report:
    """Check every ``.py`` file under the package folder ``root`` (default: :func:`default_root`).

    Returns:
        a :class:`Report`, violations sorted by path and line.

    Raises:
        FileNotFoundError: ``root`` is not a package folder (no ``__init__.py``).
        ValueError: ``root`` is a sub-package (its parent holds an ``__init__.py``): the layers are the
            parts of the top package, so pass its folder.
    """
    root = Path(root).resolve() if root is not None else default_root()
    if not (root / "__init__.py").is_file():
        raise FileNotFoundError(f"{root} is not a package folder (no __init__.py)")
    if (root.parent / "__init__.py").is_file():
        raise ValueError(f"{root} is a sub-package of {root.parent}: pass the top package folder")
    report = Report()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        functions, found = check_file(path, root, max_lines, max_function_lines)
        report.files += 1
        report.functions += functions
        report.violations.extend(found)
    report.violations.sort(key=lambda v: (v.path, v.line, v.kind, v.message))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print each violation as ``path:line: message`` and return 1, or an OK line and 0.

    Raises:
        SystemExit: (status 2, argparse's usage error) ``--root`` is not the top package folder.
    """
    p = argparse.ArgumentParser(prog="python -m snappix.tools.layers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="package folder to check (default: the snappix package)")
    p.add_argument("--max_lines", type=int, default=MAX_LINES, help="most physical lines per file")
    p.add_argument("--max_function_lines", type=int, default=MAX_FUNCTION_LINES,
                   help="most lines per function or method")
    args = p.parse_args(argv)
    try:
        report = check_tree(args.root, args.max_lines, args.max_function_lines)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    for v in report.violations:
        print(v)
    if not report.ok:
        sys.stdout.flush()
        print(f"{len(report.violations)} violation(s) in {report.files} files, {report.functions} functions",
              file=sys.stderr)
        return 1
    print(f"OK: {report.files} files, {report.functions} functions: layers, file length <= {args.max_lines}, "
          f"function length <= {args.max_function_lines}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
