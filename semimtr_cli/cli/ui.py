"""The CLI edge: Rich console, progress bars, and turning exceptions into one-line errors.

Only `cli.py` and `commands/*` import this module; library code never prints.
"""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from semimtr_cli.core.errors import SemimtrError, as_flag

console = Console()
err_console = Console(stderr=True)

_state = {"verbose": False}

F = TypeVar("F", bound=Callable)


def set_verbose(flag: bool) -> None:
    _state["verbose"] = bool(flag)


def is_verbose() -> bool:
    return _state["verbose"]


def fail(message: str, code: int = 1) -> "typer.Exit":
    """Print ``error: message`` on one line to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn: F) -> F:
    """Wrap a command: known errors become one line + non-zero exit; ``--verbose`` re-raises."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except SemimtrError as exc:
            if is_verbose():
                raise
            fail(exc.render(as_flag), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OSError as exc:
            if is_verbose():
                raise
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            fail(f"{where}{exc.strerror or exc}", 1)
        except Exception as exc:
            if is_verbose():
                raise
            fail(f"{type(exc).__name__}: {exc} (run `semimtr --verbose ...` for the traceback)", 1)

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress(description: str, total: int | None, *, transient: bool = False) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar; yields ``advance(n)``. Quiet (no bar) when stderr is not a TTY."""
    disable = not sys.stderr.isatty()
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err_console, transient=transient, disable=disable) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
