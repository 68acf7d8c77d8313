"""Exceptions the CLI turns into one-line messages and a non-zero exit.

Library code raises these (never prints); `semimtr_cli.cli.ui` catches them at the edge. A library
error names the *parameter* it is about (``param="batch_size"``) and mentions other parameters
through :func:`option`; the library reads them as parameter names (``batch_size: must be >= 1``),
the CLI as flags (``--batch-size: must be >= 1``), so library code never spells a CLI flag.
"""

from __future__ import annotations

import re
from typing import Callable

_OPTION = re.compile(r"\u27e8([a-z][a-z0-9_]*)\u27e9")


def option(name: str) -> str:
    """A reference to parameter ``name`` inside an error message (shown as a flag by the CLI)."""
    return f"\u27e8{name}\u27e9"


def as_flag(name: str) -> str:
    """The CLI flag of a library parameter: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


class SemimtrError(Exception):
    """A user-facing problem: bad input file, bad option value, missing path.

    The message must name the offending file/sample and say what is wrong, in one line.
    ``param``: the parameter the problem is about (None for a file or data problem).
    `exit_code` is what the CLI exits with (1 by default, 2 for usage errors).
    """

    exit_code = 1

    def __init__(self, message: str = "", *, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param

    def __reduce__(self):
        return _rebuild, (type(self), self.message, self.param)

    def render(self, name: Callable[[str], str] = lambda p: p) -> str:
        """The one-line message, each parameter spelled by ``name`` (identity: library names)."""
        body = _OPTION.sub(lambda m: name(m.group(1)), self.message)
        return f"{name(self.param)}: {body}" if self.param else body

    def __str__(self) -> str:
        return self.render()


def _rebuild(cls, message, param):
    """Unpickle an error (DataLoader workers send them across processes) with its ``param``."""
    exc = cls.__new__(cls)
    SemimtrError.__init__(exc, message, param=param)
    return exc


class UsageError(SemimtrError):
    """A bad option or argument combination (exit code 2, like Typer's own usage errors)."""

    exit_code = 2


def check_unit_interval(value: float, param: str) -> float:
    """``value`` when it lies in [0, 1] (a probability, confidence or share); else a UsageError
    naming ``param``."""
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"must be in [0, 1], got {value}", param=param)
    return value
