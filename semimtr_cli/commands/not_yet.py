"""Placeholder for product commands that later issues implement (exit code 2)."""

from __future__ import annotations

import typer

from ..errors import NotImplementedYet


def make_placeholder(name: str):
    """A Typer command body that accepts any arguments and reports 'not implemented yet'."""

    def placeholder(ctx: typer.Context) -> None:
        raise NotImplementedYet(f"`semimtr {name}` is not implemented yet")

    placeholder.__name__ = name.replace("-", "_")
    return placeholder
