"""The package's shape holds: one folder per role, imports that run downward only (function-level
imports included), no import circle, and docs/architecture.md names every module."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "semimtr_cli"

# Each folder may import its own modules and those of the folders listed for it; nothing else.
# core at the ground; data and model above it (model never reads data); train, infer above those
# (never each other); evaluation and pseudolabels use infer's predictors, never train; cli on top.
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "model": {"core"},
    "train": {"core", "data", "model"},
    "infer": {"core", "data", "model"},
    "evaluation": {"core", "data", "model", "infer"},
    "pseudolabels": {"core", "data", "model", "infer"},
    "cli": {"core", "data", "model", "train", "infer", "evaluation", "pseudolabels"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """Every package module that ``name`` imports, at any depth of its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _folder(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and MODULES[name].name == "__init__.py") else None


def test_the_package_has_one_folder_per_role_and_nothing_loose():
    loose = [n for n in MODULES if n != "semimtr_cli" and _folder(n) is None]
    assert not loose, f"modules outside the role folders: {loose}"
    assert {_folder(n) for n in MODULES} - {None} == set(ALLOWED)


def test_every_import_runs_downward():
    wrong = []
    for name, targets in GRAPH.items():
        here = _folder(name)
        for target in targets:
            there = _folder(target)
            if here and there and there != here and there not in ALLOWED[here]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports against the layering: " + "; ".join(sorted(wrong))


def test_no_import_circle():
    """Depth-first search over the module graph; a back edge is a circle."""
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for start in sorted(GRAPH):
        if start not in state:
            visit(start, [start])
    assert not circles, f"import circles: {circles}"


def test_the_checker_sees_function_level_imports():
    """A function-level import is an edge too (the circles the layout issue found were hidden there)."""
    assert "semimtr_cli.core.fsutil" in GRAPH["semimtr_cli.infer.export"]


def test_every_module_is_described_in_the_architecture_page():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w/]+\.py)`", page))
    missing = [p.relative_to(PACKAGE).as_posix() for p in MODULES.values()
               if p.name != "__init__.py" and p.relative_to(PACKAGE).as_posix() not in named]
    assert not missing, f"modules not described in docs/architecture.md: {missing}"


def test_the_cli_starts_without_importing_timm_or_torchvision():
    """timm (and through it torchvision) costs seconds to import: only timm backbones may pull it in."""
    import subprocess
    import sys

    code = "import sys, semimtr_cli.cli.app, semimtr_cli.model.factory; print(sorted({'timm', 'torchvision'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_and_synth_do_not_import_torch(tmp_path):
    """`semimtr --help`, every command's --help and `semimtr synth` (LMDB output included) come
    without torch (2-5 s of import on 2 cores): command modules import it inside their bodies."""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from semimtr_cli.cli.app import app; "
            "before = 'torch' in sys.modules; "
            f"r = CliRunner().invoke(app, ['synth', '--out', {str(tmp_path / 's')!r}, '--count', '3', '--lmdb', "
            "'--workers', '0']); print(before, r.exit_code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "0", "False"]
