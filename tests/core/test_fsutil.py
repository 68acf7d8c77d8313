"""Atomic files and folders (fsutil.py): the target appears only complete, a failure keeps the old one."""

from __future__ import annotations

import json
import os
import stat

import pytest

from semimtr_cli.core import fsutil
from semimtr_cli.core.fsutil import (
    atomic_dir, atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text, replace_dir, temp_dir_beside,
)


def names(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# --------------------------------------------------------------------------- files

def test_atomic_write_json_is_pretty_utf8_with_a_final_newline(tmp_path):
    target = tmp_path / "new" / "deeper" / "out.json"  # parents are created
    atomic_write_json(target, {"word": "café", "n": [1, 2]})
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == {"word": "café", "n": [1, 2]}
    assert "café" in text and text.endswith("}\n") and '\n  "n": [' in text
    assert names(target.parent) == ["out.json"]


def test_atomic_write_text_and_bytes_replace_the_old_content(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    atomic_write_bytes(target, b"\x00new")
    assert target.read_bytes() == b"\x00new"
    atomic_write_text(target, "naïve\n")
    assert target.read_bytes() == "naïve\n".encode("utf-8")
    assert names(tmp_path) == ["a.txt"]


def test_atomic_path_target_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "out.npz"
    with atomic_path(target, suffix=".npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.npz.") and tmp.name.endswith(".npz.tmp")
        tmp.write_text("half")
        assert not target.exists()
        tmp.write_text("half and the rest")
    assert target.read_text() == "half and the rest"
    assert names(tmp_path) == ["out.npz"]
    with atomic_path(target) as tmp:
        tmp.write_text("second")
        assert target.read_text() == "half and the rest"  # the old file until the rename
    assert target.read_text() == "second"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_failure_keeps_the_old_file_and_no_temporary(tmp_path, error):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(error):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise error("interrupted")
    assert json.loads(target.read_text()) == {"v": 1}
    assert names(tmp_path) == ["out.json"]


def test_atomic_write_json_unserialisable_object_changes_nothing(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": object()})
    assert json.loads(target.read_text()) == {"v": 1}
    assert names(tmp_path) == ["out.json"]
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "fresh.json", {1, 2})
    assert names(tmp_path) == ["out.json"]


# --------------------------------------------------------------------------- folders

def test_atomic_dir_builds_beside_and_swaps_in(tmp_path, umask_022):
    target = tmp_path / "parent" / "db"
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".db.building-")
        assert not target.exists()
        (tmp / "data.mdb").write_bytes(b"x" * 10)
        (tmp / "sub").mkdir()
    assert names(target) == ["data.mdb", "sub"]
    assert names(target.parent) == ["db"]  # no temporary or backup folder left


def test_atomic_dir_replaces_an_old_folder_only_on_success(tmp_path, umask_022):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert names(target) == ["old.txt"]  # the old folder stays in place while the new one is built
    assert names(target) == ["new.txt"]
    assert names(tmp_path) == ["out"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_atomic_dir_failure_keeps_the_old_folder_and_no_temporary(tmp_path, error):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(error):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise error("interrupted")
    assert names(target) == ["old.txt"] and (target / "old.txt").read_text() == "old"
    assert names(tmp_path) == ["out"]
    with pytest.raises(error):
        with atomic_dir(tmp_path / "never"):
            raise error("interrupted")
    assert names(tmp_path) == ["out"]  # a new target is not created either


@pytest.mark.parametrize("mask,mode", [(0o022, 0o755), (0o027, 0o750), (0o002, 0o775)], ids=["022", "027", "002"])
def test_finished_folder_gets_the_umask_permissions_not_mkdtemp_0700(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        tmp = temp_dir_beside(tmp_path / "out")
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o700  # what mkdtemp makes
        replace_dir(tmp, tmp_path / "out")
        with atomic_dir(tmp_path / "other") as t:
            (t / "f").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "other").stat().st_mode) == mode


def test_replace_dir_swaps_a_folder_built_with_temp_dir_beside(tmp_path, umask_022):
    target = tmp_path / "gallery"
    for round_ in ("first", "second"):
        tmp = temp_dir_beside(target)
        assert tmp.parent == tmp_path and tmp.name.startswith(".gallery.building-") and names(tmp) == []
        (tmp / f"{round_}.html").write_text(round_)
        replace_dir(tmp, target)
        assert names(target) == [f"{round_}.html"]
        assert names(tmp_path) == ["gallery"]


def test_replace_dir_deletes_the_old_folder_only_after_the_rename(tmp_path, monkeypatch, umask_022):
    """If the rename of the new folder fails, the old content still exists (moved aside, not deleted)."""
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    tmp = temp_dir_beside(target)
    (tmp / "new.txt").write_text("new")
    real_replace, calls = os.replace, []

    def failing_second_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("disk gone")
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", failing_second_replace)
    with pytest.raises(OSError, match="disk gone"):
        replace_dir(tmp, target)
    monkeypatch.undo()
    kept = [p for p in tmp_path.rglob("old.txt")]
    assert len(kept) == 1 and kept[0].read_text() == "old"
    assert (tmp / "new.txt").read_text() == "new"


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600)], ids=["022", "077"])
def test_atomic_file_gets_the_umask_permissions_not_mkstemp_0600(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode
