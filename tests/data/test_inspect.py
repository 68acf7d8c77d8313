"""`semimtr inspect` and the library call behind it (also behind `build-lmdb --inspect`)."""

from __future__ import annotations

import json

import pytest
from helpers import word_png
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.lmdb.inspect import inspect_lmdb, inspect_lmdbs
from semimtr_cli.data.lmdb.io import write_lmdb

runner = CliRunner()

LABELS = ["Hello", "world", "Straße", "x" * 30, None]


@pytest.fixture()
def db(tmp_path):
    """An LMDB of 5 PNG crops: 4 labeled (one with a symbol outside charset 36, one too long), 1 unlabeled."""
    out = tmp_path / "lmdbs" / "small"
    write_lmdb(out, [(word_png(label or "?", seed=i), label) for i, label in enumerate(LABELS)])
    return out


def test_inspect_lmdb_counts_and_label_stats(db):
    stats = inspect_lmdb(db, charset=Charset.preset("36"), limit=0, samples=2)
    assert (stats["count"], stats["labeled"], stats["unlabeled"], stats["legacy_markers"]) == (5, 4, 1, 0)
    assert stats["label_length_histogram"] == {"5": 2, "6": 1, "30": 1}
    assert stats["label_length"] == {"min": 5, "mean": 11.5, "median": 5, "max": 30}
    cov = stats["charset_coverage"]
    assert cov["charset"] == Charset.preset("36").name
    assert cov["labels_fully_covered"] == 3 and cov["labels_with_unknown_symbols"] == 1
    assert cov["unknown_symbols"] == {"ß": 1}
    assert cov["labels_unusable_for_training"] >= 1  # the 30-character label
    images = stats["images"]
    assert images["decoded"] == 5 and images["failed"] == 0 and images["formats"] == {"PNG": 5}
    assert images["width"]["min"] == 64 and images["height"]["max"] == 24
    assert [s["index"] for s in stats["samples"]] == [0, 4]
    assert stats["samples"][0]["label"] == "Hello" and stats["samples"][1]["label"] is None


def test_inspect_lmdb_without_charset_and_legacy_marker(tmp_path):
    out = tmp_path / "legacy"
    write_lmdb(out, [(word_png("a"), "unlabeleddata"), (word_png("b"), "b")])
    stats = inspect_lmdb(out, charset=None)
    assert stats["charset_coverage"] is None
    assert (stats["labeled"], stats["unlabeled"], stats["legacy_markers"]) == (1, 1, 1)


def test_undecodable_image_is_reported_as_a_failure(tmp_path):
    out = tmp_path / "broken"
    write_lmdb(out, [(word_png("ok"), "ok"), (b"not an image at all", "bad"), (word_png("fine"), "fine")])
    stats = inspect_lmdb(out, samples=3)
    images = stats["images"]
    assert images["decoded"] == 2 and images["failed"] == 1
    assert images["failures"][0]["index"] == 1 and images["failures"][0]["error"]
    assert stats["samples"][1]["size"] is None  # listed, without a size


def test_inspect_lmdbs_searches_folders_and_rejects_non_lmdbs(db, tmp_path):
    write_lmdb(tmp_path / "lmdbs" / "other", [(word_png("z"), "z")])
    stats = inspect_lmdbs([tmp_path / "lmdbs"], limit=1, samples=0)
    assert [s["count"] for s in stats] == [1, 5]  # sorted: other, small
    assert stats[1]["images"]["decoded"] == 1 and stats[1]["samples"] == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemimtrError, match="no LMDB"):
        inspect_lmdbs([db, tmp_path / "empty"])


def test_command_prints_the_counts(db):
    res = runner.invoke(app, ["inspect", str(db)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "samples" in res.output and "5 (4 labeled, 1 unlabeled)" in res.output
    assert "label length" in res.output and "'Hello'" in res.output


def test_command_json_to_stdout_and_file(db, tmp_path):
    res = runner.invoke(app, ["inspect", str(db), "--json", "-", "--samples", "3", "--charset", "none"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)  # the table goes to stderr: stdout is only the JSON
    assert stats["count"] == 5 and len(stats["samples"]) == 3 and stats["charset_coverage"] is None
    target = tmp_path / "stats.json"
    res = runner.invoke(app, ["inspect", str(db), str(db), "--json", str(target), "--limit", "2"])
    assert res.exit_code == 0, res.output
    both = json.loads(target.read_text(encoding="utf-8"))
    assert isinstance(both, list) and [s["images"]["decoded"] for s in both] == [2, 2]


def test_command_and_build_lmdb_inspect_agree(db, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert runner.invoke(app, ["inspect", str(db), "--json", str(a), "--samples", "2"]).exit_code == 0
    assert runner.invoke(app, ["build-lmdb", "--inspect", str(db), "--json", str(b), "--samples", "2"]).exit_code == 0
    assert json.loads(a.read_text()) == json.loads(b.read_text())


def test_non_lmdb_path_is_a_one_line_error(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "a.png").write_bytes(word_png("a"))
    for path in (folder, tmp_path / "missing", folder / "a.png"):
        res = runner.invoke(app, ["inspect", str(path)])
        assert res.exit_code == 1, res.output
        assert res.output.startswith("error: ") and len(res.output.strip().splitlines()) == 1
        assert "Traceback" not in res.output


def test_command_needs_a_path():
    res = runner.invoke(app, ["inspect"])
    assert res.exit_code == 2
