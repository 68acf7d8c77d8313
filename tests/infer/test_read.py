"""`semimtr read` and the predict module: ordering, outputs, decoding, confidence, options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import word_png
from PIL import Image
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.infer.predictor import Predictor
from semimtr_cli.infer.reading import ReadResult, label_map, load_image
from semimtr_cli.model.checkpoint import save_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.decoding import decode_logits
from semimtr_cli.model.factory import build_model

CS = Charset.preset("36")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("read")
    torch.manual_seed(0)
    paths = {}
    for kind in ("full", "vision", "language"):
        model = build_model(kind, ModelConfig.preset("tiny"), CS)
        paths[kind] = save_checkpoint(root / f"{kind}.pt", model, CS)
    return paths


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    files = []
    for i, word in enumerate(["hello", "world", "semi", "mtr", "text"]):
        p = folder / ("sub" if i % 2 else "") / f"w{i}.png"
        p.write_bytes(word_png(word, size=(60 + 10 * i, 24), seed=i))
        files.append(p)
    single = tmp_path / "single.jpg"
    single.write_bytes(word_png("single", fmt="JPEG"))
    return folder, single


def test_cli_read_outputs_in_input_order(ckpts, images, tmp_path):
    folder, single = images
    out_json, out_csv, out_npz = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.npz"
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(single), str(folder), "--batch-size", "2",
                                   "--json", str(out_json), "--csv", str(out_csv), "--save-logits", str(out_npz),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    expected_order = [str(single)] + sorted(str(p) for p in folder.rglob("*.png"))
    data = json.loads(out_json.read_text())
    assert [r["path"] for r in data["predictions"]] == expected_order
    assert data["head"] == "alignment" and data["confidence"] == "product"
    frame = pd.read_csv(out_csv, keep_default_na=False)
    assert list(frame.columns) == ["path", "text", "confidence", "length"]
    assert list(frame["path"]) == expected_order
    arrays = np.load(out_npz)
    assert list(arrays["paths"]) == expected_order
    for head in ("vision", "language", "alignment"):
        assert arrays[head].shape == (6, 26, 37)
    # the saved logits are what the predictor computes, and the texts decode from them
    predictor = Predictor(ckpts["full"], device="cpu")
    out = predictor.forward(predictor.preprocess([load_image(p) for p in map(Path, expected_order)]))
    assert np.allclose(arrays["alignment"], out.heads["alignment"].logits.numpy(), atol=1e-5)
    texts = [d.text for d in decode_logits(torch.from_numpy(arrays["alignment"]), CS)]
    assert texts == [r["text"] for r in data["predictions"]]
    assert all(0.0 <= r["confidence"] <= 1.0 for r in data["predictions"])


def test_batch_size_does_not_change_results(ckpts, images, tmp_path):
    folder, _ = images
    outs = []
    for bs in ("1", "32"):
        out = tmp_path / f"b{bs}.npz"
        res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), "-b", bs, "--save-logits", str(out)])
        assert res.exit_code == 0, res.output
        outs.append(np.load(out)["alignment"])
    assert np.allclose(outs[0], outs[1], atol=1e-4)


def test_vision_checkpoint_and_head_choice(ckpts, images, tmp_path):
    folder, _ = images
    out = tmp_path / "v.npz"
    res = CliRunner().invoke(app, ["read", str(ckpts["vision"]), str(folder), "--head", "vision", "--save-logits", str(out)])
    assert res.exit_code == 0, res.output
    assert set(np.load(out).files) == {"vision", "paths"}
    default = tmp_path / "default.npz"  # without --head: the checkpoint's final head (vision here)
    res = CliRunner().invoke(app, ["read", str(ckpts["vision"]), str(folder), "--save-logits", str(default)])
    assert res.exit_code == 0, res.output
    assert set(np.load(default).files) == {"vision", "paths"}
    assert np.array_equal(np.load(default)["vision"], np.load(out)["vision"])
    res = CliRunner().invoke(app, ["read", str(ckpts["vision"]), str(folder), "--head", "alignment"])
    assert res.exit_code == 2 and "no alignment head" in res.output
    res = CliRunner().invoke(app, ["read", str(ckpts["language"]), str(folder)])
    assert res.exit_code == 1 and "language model alone" in res.output


def test_bad_images(ckpts, images, tmp_path):
    folder, _ = images
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), "--json", str(tmp_path / "x.json")])
    assert res.exit_code == 1 and "broken.png" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.json").exists()
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), "--skip-bad", "--json", str(tmp_path / "x.json")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "x.json").read_text())
    assert len(data["predictions"]) == 5 and data["failed"][0]["path"].endswith("broken.png")
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(tmp_path / "nowhere")])
    assert res.exit_code != 0 and "not found" in res.output


def test_options_are_validated(ckpts, images):
    folder, _ = images
    for args in (["--precision", "fp16"], ["--confidence", "max"], ["--head", "fusion"], ["-b", "0"]):
        res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), *args])
        assert res.exit_code == 2, (args, res.output)


@pytest.mark.parametrize("precision", ["bf16"])
def test_reduced_precisions_run(ckpts, images, tmp_path, precision):
    folder, _ = images
    out = tmp_path / "p.npz"
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), "--precision", precision, "--save-logits", str(out)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), "--save-logits", str(tmp_path / "f.npz")])
    low, full = np.load(out)["alignment"], np.load(tmp_path / "f.npz")["alignment"]
    assert low.shape == full.shape == (5, 26, 37)
    assert np.abs(low - full).max() < 0.5  # close to fp32, not identical


def test_rotate_tall(tmp_path):
    tall = Image.new("RGB", (20, 60), (255, 255, 255))
    tall.paste((0, 0, 0), (0, 0, 20, 10))  # black band at the top
    path = tmp_path / "tall.png"
    tall.save(path)
    assert load_image(path).size == (20, 60)
    rotated = load_image(path, rotate_tall=True)
    assert rotated.size == (60, 20)
    assert np.asarray(rotated)[:, :10].mean() < 10  # counter-clockwise: the top band ends on the left
    wide = tmp_path / "wide.png"
    Image.new("RGB", (30, 40)).save(wide)
    assert load_image(wide, rotate_tall=True).size == (30, 40)  # not taller than 2x width


def test_decode_logits_text_and_confidence():
    logits = torch.full((2, 4, 37), -20.0)
    # "ab" then stop: slot probabilities ~1 except slot 1 where 'b' wins over 'c' at 0.6/0.4
    logits[0, 0, 1] = 10
    logits[0, 1, 2], logits[0, 1, 3] = math.log(0.6), math.log(0.4)
    logits[0, 2, 0] = 10
    logits[0, 3, 5] = 10  # after the stop: ignored
    logits[1, :, 26] = 10  # no stop at all: 'z' x 4
    prod, mean = decode_logits(logits, CS), decode_logits(logits, CS, confidence="mean")
    assert prod[0].text == "ab" and prod[0].length == 3 and prod[0].stop_prob == pytest.approx(1.0)
    assert prod[0].confidence == pytest.approx(0.6, abs=1e-4)
    assert mean[0].confidence == pytest.approx((1 + 0.6 + 1) / 3, abs=1e-4)
    assert prod[1].text == "zzzz" and prod[1].stop_prob is None and prod[1].length == 4
    assert len(prod[0].char_probs) == 2


def test_read_checks_against_a_labels_file(ckpts, images, tmp_path):
    folder, _ = images
    (folder / "labels.tsv").write_text("w0.png\tHello\nsub/w1.png\tworld\n")
    rows = [{"path": str(folder / "w0.png"), "text": "hello"}, {"path": str(folder / "sub" / "w1.png"), "text": "word"},
            {"path": str(folder / "w2.png"), "text": "semi"}]
    result = ReadResult(rows=rows)
    assert result.check_against(label_map(folder / "labels.tsv"), CS) == (1, 2)  # compared in the charset: Hello == hello
    assert [r.get("correct") for r in rows] == [True, False, None] and rows[1]["truth"] == "world"
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), "--labels", str(folder / "labels.tsv"),
                                   "--json", str(out_json), "--csv", str(out_csv), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "0 of 2 labeled read right (0.0 %)" in " ".join(res.output.split())  # an untrained model
    assert sum("truth" in r for r in json.loads(out_json.read_text())["predictions"]) == 2
    assert list(pd.read_csv(out_csv).columns[-2:]) == ["truth", "correct"]
    (tmp_path / "other.tsv").write_text("elsewhere.png\tword\n")
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), "--labels", str(tmp_path / "other.tsv")])
    assert res.exit_code != 0 and "labels none of the 5 image(s)" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["read", str(ckpts["full"]), str(folder), "--labels", str(tmp_path / "missing.tsv")])
    assert res.exit_code != 0 and "labels file not found" in res.output
