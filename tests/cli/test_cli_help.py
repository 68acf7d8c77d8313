"""`semimtr <command> --help`: docstring paragraphs are reflowed, not shown with their hard breaks."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re

import pytest
from typer.testing import CliRunner

from semimtr_cli.cli.app import COMMANDS, app, reflow_help

runner = CliRunner()


def source_docstring(module: str) -> str:
    """The docstring of ``command`` as written in ``commands/<module>.py`` (before any reflow)."""
    path = importlib.util.find_spec(f"semimtr_cli.cli.commands.{module}").origin
    tree = ast.parse(open(path, encoding="utf-8").read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "command")
    return ast.get_docstring(fn, clean=True) or ""


def multi_line_paragraphs(doc: str) -> list[list[str]]:
    """Paragraphs of plain prose spanning several source lines (as lists of stripped lines)."""
    found = []
    for para in re.split(r"\n\s*\n", doc):
        lines = [line.strip() for line in para.splitlines()]
        prose = not any(re.match(r"([-*]|\d+[.)])\s", line) for line in lines) and "[" not in para
        if len(lines) > 1 and prose and not para.startswith(("    ", "\b")):
            found.append(lines)
    return found


def help_lines(command: str, columns: int) -> list[str]:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return [line.strip() for line in result.output.splitlines()]


def test_a_sentence_across_two_docstring_lines_renders_unbroken():
    module = dict((name, mod) for name, mod, _ in COMMANDS)["finetune"]
    lines = multi_line_paragraphs(source_docstring(module))[0]
    # the last words of one source line and the first words of the next, as one phrase
    phrase = " ".join(lines[0].split()[-3:] + lines[1].split()[:3])
    shown = help_lines("finetune", 200)
    assert any(phrase in line for line in shown), (phrase, shown)


@pytest.mark.parametrize("name, module", [(name, mod) for name, mod, _ in COMMANDS])
def test_every_prose_paragraph_is_one_line(name, module):
    shown = help_lines(name, 2000)  # wide enough that Rich wraps nothing
    for lines in multi_line_paragraphs(source_docstring(module)):
        joined = " ".join(lines)
        assert joined in shown, (name, joined)  # a whole output line, not a fragment


def test_reflow_keeps_paragraphs_lists_and_indented_blocks():
    doc = """Summary line
    that goes on.

    A paragraph
    over three
    lines.

    - a list item
      that wraps
    - another item
    * a star item
    2. a numbered item

        an indented block
        stays as it is
    """
    assert reflow_help(doc) == inspect.cleandoc("""
        Summary line that goes on.

        A paragraph over three lines.

        - a list item that wraps
        - another item
        * a star item
        2. a numbered item

            an indented block
            stays as it is
    """)
    assert reflow_help("One line.") == "One line."
    assert reflow_help("Keep\n\n\b\nas\nis") == "Keep\n\n\b\nas\nis"  # click's no-rewrap marker
