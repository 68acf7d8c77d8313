"""Atomic writes of files and folders: build beside the target under a temporary name, then rename.

An interrupted write (exception, Ctrl-C, kill -9) never leaves a half-written file or folder under
the target name, and a previous one at the target stays intact until the rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file is removed if the block raises. Parent folders are created. The file
    gets the permissions an ordinary write would (0666 less the umask), not mkstemp's 0600.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | Path, obj) -> None:
    """Pretty JSON (UTF-8, non-ASCII kept), written atomically."""
    atomic_write_text(target, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def temp_dir_beside(target: str | Path) -> Path:
    """Create and return an empty hidden folder next to ``target`` (parents are created)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))


def replace_dir(tmp: str | Path, target: str | Path) -> None:
    """Rename the finished folder ``tmp`` onto ``target``.

    ``tmp`` gets the usual permissions (mkdtemp makes it 0700); a previous ``target`` is moved
    aside first and deleted only after the rename, so one of the two is always in place.
    """
    tmp, target = Path(tmp), Path(target)
    os.chmod(tmp, 0o777 & ~_umask())
    backup = None
    if target.exists():
        backup = target.parent / f".{target.name}.replaced-{os.getpid()}"
        os.replace(target, backup)
    os.replace(tmp, target)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; it replaces ``target`` on success.

    If the block raises, the temporary folder is removed and ``target`` is untouched.
    """
    tmp = temp_dir_beside(target)
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
