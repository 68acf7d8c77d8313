"""Calibrated confidence (`semimtr calibrate`) and what uses it: read, eval, pseudo-labels hand-offs."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import word_png
from PIL import Image
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.core.metrics import TextMetrics, calibration_bins, expected_calibration_error
from semimtr_cli.data.lmdb.io import LmdbReader, key_index, write_lmdb
from semimtr_cli.evaluation.calibration import (
    correct_nll, fit_temperature, label_nll, risk_coverage, threshold_for_precision, word_confidence,
)
from semimtr_cli.infer.predictor import load_predictor
from semimtr_cli.model.checkpoint import load_checkpoint, save_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.decoding import decode_logits
from semimtr_cli.model.factory import build_model

CS = Charset.preset("36")
MICRO = dict(resnet_stem_channels=4, resnet_channels=[4, 8, 8, 16, 32], resnet_blocks=[1, 1, 1, 1, 1], d_model=32,
             nhead=2, d_inner=64, vision_layers=1, attention_channels=8, lm_layers=1)
runner = CliRunner()


def test_fit_temperature_recovers_the_sampling_temperature():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3000, 4, 6, generator=g) * 2.0
    targets = torch.multinomial(torch.softmax(z, -1).reshape(-1, 6), 1, generator=g).reshape(3000, 4)
    t = fit_temperature(z * 3.0, targets)  # logits three times too sharp for the labels drawn
    assert t == pytest.approx(3.0, rel=0.08)
    assert label_nll(z * 3.0, targets, t) < label_nll(z * 3.0, targets, 1.0)


def test_correct_objective_matches_confidence_to_accuracy():
    """Words right 60 % of the time at confidence ~0.99: the fitted T softens them toward 0.6."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(500, 3, 5, generator=g)
    logits[:, :, 1] += 8.0  # slot 0..2 predict class 1 with ~0.99 each (no stop: three slots kept)
    correct = (torch.rand(500, generator=g) < 0.6).numpy()
    t = fit_temperature(logits, torch.full((500, 3), -1), objective="correct", correct=correct)
    assert t > 1.5
    assert float(word_confidence(logits, t).mean()) == pytest.approx(0.6, abs=0.05)
    assert correct_nll(logits, correct, t) < correct_nll(logits, correct, 1.0)


def test_word_confidence_is_the_greedy_string_probability():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 6, CS.num_classes, generator=g) * 3
    logits[::2, 3, 0] = 20.0  # half the rows stop at slot 3
    for t in (1.0, 2.5):
        expected = [d.confidence for d in decode_logits(logits / t, CS)]
        assert word_confidence(logits, t).tolist() == pytest.approx(expected, rel=1e-5)


def test_ece_threshold_and_risk_coverage_by_hand():
    conf = np.array([0.95, 0.9, 0.8, 0.6, 0.3])
    ok = np.array([True, True, False, True, False])
    # bins (15): 0.95 -> 14, 0.9 -> 13, 0.8 -> 12, 0.6 -> 9, 0.3 -> 4: |1-.95|+|1-.9|+|0-.8|+|1-.6|+|0-.3| over 5
    assert expected_calibration_error(calibration_bins(conf, ok)) == pytest.approx(100 * 1.65 / 5)
    m = TextMetrics()
    for c, good in zip(conf, ok):
        m.update("a", "a" if good else "b", float(c))
    assert m.ece == pytest.approx(100 * 1.65 / 5)
    assert threshold_for_precision(conf, ok, 1.0) == {"threshold": 0.9, "coverage": 40.0, "precision": 100.0}
    assert threshold_for_precision(conf, ok, 0.75)["threshold"] == 0.6
    assert threshold_for_precision(np.full(5, 0.7), ok, 0.9) is None  # one cut only: all five, 60 % right
    rc = {r["coverage"]: r["accuracy"] for r in risk_coverage(conf, ok, (40, 80, 100))}
    assert rc == {40: 100.0, 80: 75.0, 100: 60.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    torch.manual_seed(0)
    save_checkpoint(root / "model.pt", build_model("full", ModelConfig.from_dict(MICRO), CS), CS)
    torch.manual_seed(1)
    save_checkpoint(root / "other.pt", build_model("full", ModelConfig.from_dict(MICRO), CS), CS)
    words = [f"w{i}ord" for i in range(40)]
    write_lmdb(root / "valid", [(word_png(w, seed=i), w) for i, w in enumerate(words)])
    write_lmdb(root / "pool", [(word_png(w, seed=100 + i, fmt="JPEG" if i % 2 else "PNG"), None)
                               for i, w in enumerate(words[:24])])
    return root


def _calibrated(setup, tmp_path):
    out = tmp_path / "cal.pt"
    res = runner.invoke(app, ["calibrate", str(setup / "model.pt"), "--valid", str(setup / "valid"), "--out", str(out),
                              "--objective", "label", "--json", str(tmp_path / "cal.json"), "--device", "cpu",
                              "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    return out, json.loads((tmp_path / "cal.json").read_text())


def test_calibrate_stores_temperatures_and_read_uses_them(setup, tmp_path):
    out, report = _calibrated(setup, tmp_path)
    assert report["samples"] == 40 and report["fitted"] == 32 and report["held_out"] == 8
    entry = load_checkpoint(out)["calibration"]
    assert set(entry["temperature"]) == {"alignment", "language", "vision"}
    for h in report["heads"]:
        assert h["nll"]["after"] <= h["nll"]["before"] + 1e-9
        assert math.isclose(entry["temperature"][h["head"]], h["temperature"])
    assert "calibration" not in load_checkpoint(setup / "model.pt")  # --out left the original alone
    raw = load_predictor(setup / "model.pt", device="cpu", precision="fp32")
    cal = load_predictor(out, device="cpu", precision="fp32")
    assert raw.temperatures == {} and cal.temperatures == entry["temperature"]
    images = [word_png("abc", seed=3), word_png("xyz", seed=4)]
    decoded = [Image.open(io.BytesIO(b)).convert("RGB") for b in images]
    (d_raw, _), (d_cal, _) = raw.predict(decoded), cal.predict(decoded)
    assert [d.text for d in d_raw] == [d.text for d in d_cal]
    t = entry["temperature"]["alignment"]
    assert t != pytest.approx(1.0)
    assert not np.allclose([d.confidence for d in d_cal], [d.confidence for d in d_raw], rtol=1e-3, atol=0)
    # read: calibrated by default, raw with --calibration off, rejected words marked
    (tmp_path / "img").mkdir()
    for k, data in enumerate(images):
        (tmp_path / "img" / f"{k}.png").write_bytes(data)
    rows = {}
    for mode in ("auto", "off"):
        res = runner.invoke(app, ["read", str(out), str(tmp_path / "img"), "--calibration", mode, "--json", "-",
                                  "--min-confidence", "0.5", "--device", "cpu", "--precision", "fp32"])
        assert res.exit_code == 0, res.output
        rows[mode] = json.loads(res.stdout[res.stdout.index("{"):])
    assert rows["auto"]["calibrated"] and not rows["off"]["calibrated"]
    assert [r["confidence"] for r in rows["auto"]["predictions"]] == pytest.approx([d.confidence for d in d_cal], rel=1e-4)
    assert all(r["rejected"] == (r["confidence"] < 0.5) for r in rows["auto"]["predictions"])


def test_bad_calibration_inputs_are_one_line_errors(setup, tmp_path):
    (tmp_path / "a.png").write_bytes(word_png("abc"))
    res = runner.invoke(app, ["read", str(setup / "model.pt"), str(tmp_path / "a.png"), "--calibration", "require"])
    assert res.exit_code != 0 and "has no calibration" in res.output
    res = runner.invoke(app, ["calibrate", str(setup / "model.pt"), "--valid", str(setup / "valid"), "--holdout", "1.5",
                              "--out", str(tmp_path / "x.pt")])
    assert res.exit_code != 0 and "--holdout" in res.output and not (tmp_path / "x.pt").exists()
    write_lmdb(tmp_path / "empty", [])
    res = runner.invoke(app, ["calibrate", str(setup / "model.pt"), "--valid", str(tmp_path / "empty"),
                              "--out", str(tmp_path / "x.pt")])
    assert res.exit_code != 0 and "no labeled crop" in res.output and not (tmp_path / "x.pt").exists()
    res = runner.invoke(app, ["pseudo-labels", str(setup / "model.pt"), "--unlabeled", str(setup / "pool"),
                              "--write-lmdb", str(tmp_path / "st")])
    assert res.exit_code != 0 and "no calibrated threshold" in res.output and not (tmp_path / "st").exists()
    res = runner.invoke(app, ["pseudo-labels", str(setup / "model.pt"), "--unlabeled", str(setup / "pool"),
                              "--write-lmdb", str(tmp_path / "st"), "--min-confidence", "1.5"])
    assert res.exit_code != 0 and "--min-confidence" in res.output


def test_self_training_lmdb_holds_exactly_the_confident_crops(setup, tmp_path):
    csv = tmp_path / "rows.csv"
    res = runner.invoke(app, ["pseudo-labels", str(setup / "model.pt"), "--unlabeled", str(setup / "pool"),
                              "--csv", str(csv), "--device", "cpu", "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(csv, keep_default_na=False)
    t = float(np.median(rows["confidence"]))
    res = runner.invoke(app, ["pseudo-labels", str(setup / "model.pt"), "--unlabeled", str(setup / "pool"),
                              "--write-lmdb", str(tmp_path / "st"), "--min-confidence", repr(t), "--json", "-",
                              "--device", "cpu", "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    kept = rows[(rows["confidence"] >= t) & (rows["text"] != "")]
    summary = json.loads(res.stdout[res.stdout.index("{"):])["self_training_lmdb"]
    assert summary["kept"] == len(kept) > 0
    assert summary["dropped"]["below threshold"] == int((rows["confidence"] < t).sum())
    out, pool = LmdbReader(tmp_path / "st"), LmdbReader(setup / "pool")
    assert len(out) == len(kept)
    for j, (_, r) in enumerate(kept.iterrows()):
        assert out.label(j) == r["text"]
        assert out.image_bytes(j) == pool.image_bytes(key_index(r["key"]) - 1)


def test_queue_goes_through_build_lmdb_and_refuses_an_existing_folder(setup, tmp_path):
    q = tmp_path / "queue"
    for rule in ("confidence", "heads"):
        target = q / rule
        res = runner.invoke(app, ["pseudo-labels", str(setup / "model.pt"), "--unlabeled", str(setup / "pool"),
                                  "--queue", "5", "--queue-out", str(target), "--queue-rule", rule, "--device", "cpu"])
        assert res.exit_code == 0, res.output
        lines = (target / "labels.tsv").read_text().splitlines()
        assert len(lines) == 5 and all((target / ln.split("\t")[0]).is_file() for ln in lines)
        res = runner.invoke(app, ["build-lmdb", str(target / "labels.tsv"), "--out", str(tmp_path / f"{rule}.lmdb")])
        assert res.exit_code == 0, res.output
        assert len(LmdbReader(tmp_path / f"{rule}.lmdb")) == 5
    origin = pd.read_csv(q / "confidence" / "queue.tsv", sep="\t", keep_default_na=False)
    assert list(origin["confidence"]) == sorted(origin["confidence"])  # lowest confidence first
    res = runner.invoke(app, ["pseudo-labels", str(setup / "model.pt"), "--unlabeled", str(setup / "pool"),
                              "--queue", "5", "--queue-out", str(q / "confidence")])
    assert res.exit_code != 0 and "exists" in res.output


def test_label_audit_lists_confident_disagreements(setup, tmp_path):
    res = runner.invoke(app, ["pseudo-labels", str(setup / "model.pt"), "--unlabeled", str(setup / "valid"),
                              "--audit-min-confidence", "0", "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    suspects = pd.read_csv(tmp_path / "o" / "suspect_labels.csv", keep_default_na=False)
    rows = pd.read_csv(tmp_path / "o" / "pseudo_labels.csv", keep_default_na=False)
    assert len(suspects) == int((rows["correct"].astype(str) == "False").sum())
    assert list(suspects["confidence"]) == sorted(suspects["confidence"], reverse=True)


def test_eval_baseline_deltas_and_fusion_flips_match_read(setup, tmp_path):
    js = tmp_path / "e.json"
    res = runner.invoke(app, ["eval", str(setup / "other.pt"), "--baseline", str(setup / "model.pt"), "--bench",
                              str(setup / "valid"), "--json", str(js), "--csv", str(tmp_path / "e.csv"),
                              "--plot", str(tmp_path / "e.png"), "--device", "cpu", "--precision", "fp32"])
    assert res.exit_code == 0, res.output
    objs = {o["checkpoint"]: o for o in json.loads(js.read_text())}
    base, other = objs[str(setup / "model.pt")], objs[str(setup / "other.pt")]
    assert other["sets"][0]["accuracy_delta"] == pytest.approx(other["sets"][0]["accuracy"] - base["sets"][0]["accuracy"])
    assert base["sets"][0]["accuracy_delta"] == 0.0 and "accuracy_delta" in pd.read_csv(tmp_path / "e.csv").columns
    # fusion flips, counted independently from `read` of both heads on the same crops
    reader = LmdbReader(setup / "valid")
    (tmp_path / "img").mkdir()
    for i in range(len(reader)):
        (tmp_path / "img" / f"{i:03d}.png").write_bytes(reader.image_bytes(i))
    right = {}
    for head in ("vision", "alignment"):
        res = runner.invoke(app, ["read", str(setup / "model.pt"), str(tmp_path / "img"), "--head", head, "--json", "-",
                                  "--device", "cpu", "--precision", "fp32"])
        preds = json.loads(res.stdout[res.stdout.index("{"):])["predictions"]
        right[head] = [p["text"] == reader.label(i) for i, p in enumerate(preds)]
    fixed = sum(a and not v for v, a in zip(right["vision"], right["alignment"]))
    broken = sum(v and not a for v, a in zip(right["vision"], right["alignment"]))
    assert base["sets"][0]["fusion"]["fixed"] == fixed and base["sets"][0]["fusion"]["broken"] == broken
    assert sum(base["sets"][0]["fusion"].values()) == 40
