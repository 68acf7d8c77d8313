"""`semimtr show-aug`: PNG grid size, byte-identical reruns, one-line errors."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.data.lmdb.io import write_lmdb
from semimtr_cli.train import preview

runner = CliRunner()


def _word_png(path, text, seed):
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (int(rng.integers(50, 90)), int(rng.integers(24, 36))), tuple(int(v) for v in rng.integers(120, 255, 3)))
    ImageDraw.Draw(img).text((3, 6), text, fill=(0, 0, 0))
    img.save(path)


def _folder(tmp_path, n=4):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(n):
        _word_png(root / f"word{i}.png", f"w{i}x", i)
    return root


def _expected_size(rows, cols):
    width = preview.MARGIN_W + cols * (preview.CELL_W + preview.PAD) + preview.PAD
    height = preview.TITLE_H + rows * preview.ROW_H + preview.PAD
    return width, height


def test_folder_grid_size_and_identical_reruns(tmp_path):
    root = _folder(tmp_path)
    out1, out2, js = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "a.json"
    args = [str(root), "--pipeline", "abinet", "--num-samples", "3", "--draws", "2", "--seed", "4"]
    r1 = runner.invoke(app, ["show-aug", *args, "--out", str(out1), "--json", str(js)])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, ["show-aug", *args, "--out", str(out2)])
    assert r2.exit_code == 0, r2.output
    assert out1.read_bytes() == out2.read_bytes()
    with Image.open(out1) as im:
        assert im.size == _expected_size(3, 3)
    info = json.loads(js.read_text())
    assert info["num_samples"] == 3 and info["columns"] == ["original", "abinet 1", "abinet 2"]
    assert info["samples"][0]["settings"]["pipeline"] == "abinet"
    r3 = runner.invoke(app, ["show-aug", *args[:-1], "5", "--out", str(out2)])
    assert r3.exit_code == 0 and out1.read_bytes() != out2.read_bytes()


def test_lmdb_teacher_student_grid(tmp_path):
    pngs = []
    for i in range(5):
        p = tmp_path / f"s{i}.png"
        _word_png(p, f"s{i}", i + 10)
        pngs.append((p.read_bytes(), f"label{i}" if i % 2 == 0 else None))
    db = tmp_path / "db"
    write_lmdb(db, pngs)
    out, js = tmp_path / "ts.png", tmp_path / "ts.json"
    r = runner.invoke(app, ["show-aug", str(tmp_path), "--out", str(out), "--num-samples", "2", "--draws", "2", "--json", str(js)])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == _expected_size(2, 1 + 2 * 2)
    info = json.loads(js.read_text())
    assert info["pipeline"] == "teacher-student"
    assert info["columns"][1:3] == ["teacher 1", "student 1"]
    assert all(s["name"].startswith("db#") for s in info["samples"])


def test_seqclr_and_strong_pipelines_run(tmp_path):
    root = _folder(tmp_path, 2)
    for name, cols in (("seqclr", 3), ("strong1", 2), ("strong2", 2)):
        out = tmp_path / f"{name}.png"
        r = runner.invoke(app, ["show-aug", str(root), "--out", str(out), "--pipeline", name, "--draws", "1"])
        assert r.exit_code == 0, r.output
        with Image.open(out) as im:
            assert im.size == _expected_size(2, cols)


def test_bad_pipeline_is_usage_error(tmp_path):
    root = _folder(tmp_path, 1)
    out = tmp_path / "x.png"
    r = runner.invoke(app, ["show-aug", str(root), "--out", str(out), "--pipeline", "fancy"])
    assert r.exit_code == 2
    assert "unknown --pipeline" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_source_is_one_line_error(tmp_path):
    out = tmp_path / "x.png"
    r = runner.invoke(app, ["show-aug", str(tmp_path / "nope"), "--out", str(out)])
    assert r.exit_code == 1
    assert "path not found" in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_folder_without_images_is_error(tmp_path):
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["show-aug", str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "no LMDB" in r.output


def test_recipe_views_are_what_training_draws(tmp_path):
    """--recipe shows the views of the recipe's augment block (train.recipe.training_views)."""
    root = _folder(tmp_path, 2)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stage: finetune\naugment:\n  teacher: strong2\n  student: none\n")
    out, js = tmp_path / "r.png", tmp_path / "r.json"
    r = runner.invoke(app, ["show-aug", str(root), "--out", str(out), "--recipe", str(recipe), "--draws", "1",
                            "--json", str(js)])
    assert r.exit_code == 0, r.output
    info = json.loads(js.read_text())
    assert info["views"] == [{"role": "teacher", "pipeline": "strong2"}, {"role": "student", "pipeline": "none"}]
    assert info["stage"] == "finetune" and info["pipeline"] is None and info["columns"] == ["original", "teacher 1", "student 1"]
    settings = info["samples"][0]["settings"]
    assert (settings["first"]["pipeline"], settings["second"]["pipeline"]) == ("strong2", "none")
    with Image.open(out) as im:
        assert im.size == _expected_size(2, 3)
    # one view without consistency; the vision pre-training views; the LM stage draws none
    recipe.write_text("stage: finetune\nconsistency:\n  enabled: false\naugment:\n  teacher: strong1\n")
    r = runner.invoke(app, ["show-aug", str(root), "--out", str(out), "--recipe", str(recipe), "--draws", "2", "--json", "-"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["views"] == [{"role": "supervised", "pipeline": "strong1"}]
    assert info["columns"] == ["original", "supervised 1", "supervised 2"]
    recipe.write_text("stage: pretrain-lm\n")
    r = runner.invoke(app, ["show-aug", str(root), "--out", str(out), "--recipe", str(recipe)])
    assert r.exit_code == 2 and "--recipe:" in r.output and "no image views" in r.output
    r = runner.invoke(app, ["show-aug", str(root), "--out", str(out), "--recipe", str(recipe), "--pipeline", "abinet"])
    assert r.exit_code == 2 and "--pipeline or --recipe" in r.output


def test_stage_choices_match_the_paper_recipes():
    from pathlib import Path

    from semimtr_cli.train.recipe import load_recipe, training_views

    recipes = Path(__file__).resolve().parents[2] / "recipes" / "semimtr"
    for choice, name in (("teacher-student", "finetune.yaml"), ("seqclr", "pretrain_vision.yaml")):
        assert preview.pipeline_views(choice) == training_views(load_recipe(recipes / name))


def test_json_to_stdout_and_option_errors(tmp_path):
    root = _folder(tmp_path, 1)
    r = runner.invoke(app, ["show-aug", str(root), "--out", str(tmp_path / "x.png"), "--pipeline", "strong1",
                            "--draws", "1", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["columns"] == ["original", "strong1 1"]
    r = runner.invoke(app, ["show-aug", str(root), "--out", str(tmp_path / "x.png"), "--draws", "0"])
    assert r.exit_code == 2 and "--draws: must be at least 1" in r.output
    r = runner.invoke(app, ["show-aug", str(root), "--out", str(tmp_path / "x.jpg")])
    assert r.exit_code == 2 and "--out: must end in .png" in r.output
