"""docs/architecture.md stays true to the tree: every library module is described there, and the
layering it states (the library never imports the CLI edge) holds."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "semimtr_cli"
EDGE = ("semimtr_cli.cli", "semimtr_cli.ui", "semimtr_cli.commands")


def _library_modules():
    """Every module outside the CLI edge (commands/ has one module per command, cli.py lists them)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if path.name == "__init__.py" or rel.parts[0] == "commands" or rel.as_posix() in ("cli.py", "ui.py"):
            continue
        yield path


def _absolute_imports(path: Path) -> set[str]:
    package = ".".join(("semimtr_cli",) + path.relative_to(PACKAGE).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                found |= {module} if node.module else {f"{module}.{a.name}" for a in node.names}
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_every_library_module_is_described_in_the_architecture_page():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(?:[\w]+/)*(\w+\.py)`", page))
    missing = [p.relative_to(PACKAGE).as_posix() for p in _library_modules() if p.name not in named]
    assert not missing, f"modules not described in docs/architecture.md: {missing}"


def test_the_library_never_imports_the_cli_edge():
    wrong = {p.relative_to(PACKAGE).as_posix(): sorted(m for m in _absolute_imports(p) if m.startswith(EDGE))
             for p in _library_modules()}
    assert not {k: v for k, v in wrong.items() if v}
