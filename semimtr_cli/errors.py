"""Exceptions the CLI turns into one-line messages and a non-zero exit.

Library code raises these (never prints); `semimtr_cli.ui` catches them at the edge.
"""


class SemimtrError(Exception):
    """A user-facing problem: bad input file, bad option value, missing path.

    The message must name the offending file/sample and say what is wrong, in one line.
    `exit_code` is what the CLI exits with (1 by default, 2 for usage errors).
    """

    exit_code = 1


class UsageError(SemimtrError):
    """A bad option or argument combination (exit code 2, like Typer's own usage errors)."""

    exit_code = 2
