"""Size limits that keep every module and function readable on its own (issue 12)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "semimtr_cli"
MAX_FUNCTION_LINES = 90
MAX_MODULE_LINES = 450


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_longer_than_the_limit():
    long = {}
    for path in _modules():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES:
            long[path.relative_to(PACKAGE).as_posix()] = n
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_longer_than_the_limit():
    long = {}
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                n = node.end_lineno - start + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno} {node.name}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
