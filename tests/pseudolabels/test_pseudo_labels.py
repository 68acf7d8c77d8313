"""`semimtr pseudo-labels`: threshold rules shared with fine-tuning, statistics, outputs, gallery."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import word_png
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import UsageError
from semimtr_cli.data.lmdb.io import write_lmdb
from semimtr_cli.model.checkpoint import save_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.decoding import teacher_targets
from semimtr_cli.model.factory import build_model
from semimtr_cli.model.outputs import HeadOutput
from semimtr_cli.pseudolabels.run import pseudo_label_report
from semimtr_cli.pseudolabels.stats import PseudoLabels, parse_thresholds, slot_stats, summarize

CS = Charset.preset("36")
MICRO = dict(resnet_stem_channels=4, resnet_channels=[4, 8, 8, 16, 32], resnet_blocks=[1, 1, 1, 1, 1], d_model=32,
             nhead=2, d_inner=64, vision_layers=1, attention_channels=8, lm_layers=1)


def head_with_probs(rows: list[list[tuple[int, float]]], t: int = 5, c: int = 4) -> HeadOutput:
    """Logits whose softmax puts probability p on class k in each listed slot (rest uniform)."""
    logits = torch.zeros(len(rows), t, c)
    for i, slots in enumerate(rows):
        for s, (k, p) in enumerate(slots):
            rest = (1 - p) / (c - 1)
            logits[i, s] = torch.log(torch.full((c,), rest))
            logits[i, s, k] = float(np.log(p))
    lengths = torch.tensor([next((s + 1 for s, (k, _) in enumerate(r) if k == 0), t) for r in rows])
    return HeadOutput(logits=logits, lengths=lengths, feature=torch.zeros(len(rows), t, 1))


def test_slot_stats_follow_teacher_targets():
    # sample 0: "ab" + stop, slot probs 0.95, 0.8, 0.99 -> min 0.8; slots after the stop are ignored
    # sample 1: "a" + stop with probs 0.6, 0.97
    head = head_with_probs([[(1, 0.95), (2, 0.8), (0, 0.99), (3, 0.3), (3, 0.3)],
                            [(1, 0.6), (0, 0.97), (2, 0.2), (2, 0.2), (2, 0.2)]])
    lengths, min_prob, kept, passed = slot_stats(head, [0.5, 0.7, 0.9])
    assert lengths.tolist() == [3, 2]
    assert min_prob == pytest.approx([0.8, 0.6], abs=1e-5)
    assert kept.tolist() == [[True, True, False], [True, False, False]]
    assert passed.tolist() == [[3, 3, 2], [2, 1, 1]]
    # the same per-slot mask fine-tuning uses
    _, _, mask = teacher_targets(head, threshold=0.9)
    assert mask[0, :3].tolist() == [1.0, 0.0, 1.0]


def test_summary_accuracy_and_coverage_by_hand():
    rows = []
    # (confidence-ish min prob, correct, label present)
    spec = [(0.99, True, True), (0.95, True, True), (0.8, False, True), (0.6, False, True), (0.97, None, False)]
    for i, (p, ok, has_label) in enumerate(spec):
        rows.append({"index": i, "lmdb": "x", "key": f"image-{i + 1:09d}", "text": "ab" if ok else "zz",
                     "confidence": p, "length": 3, "min_slot_prob": p,
                     "kept@0.7": p > 0.7, "kept@0.9": p > 0.9,
                     "label": "ab" if has_label else None, "correct": ok})
    passed = np.array([[3, 3], [3, 3], [3, 1], [1, 0], [3, 3]])
    s = summarize(PseudoLabels(rows, [0.7, 0.9], passed, settings={"head": "alignment", "view": "clean"}))
    assert s["labeled"] == 4 and s["accuracy"] == pytest.approx(50.0)
    t07, t09 = s["thresholds"]
    assert (t07["kept"], t07["accuracy"], t07["coverage"]) == (4, pytest.approx(200 / 3), pytest.approx(75.0))
    assert (t09["kept"], t09["accuracy"], t09["coverage"]) == (3, pytest.approx(100.0), pytest.approx(50.0))
    assert t09["kept_percent"] == pytest.approx(60.0)
    assert t09["slots_kept_percent"] == pytest.approx(100 * 10 / 15)
    assert s["most_frequent"] == [{"text": "zz", "count": 3}, {"text": "ab", "count": 2}]
    assert s["length_histogram"] == {"3": 5}
    assert sum(s["confidence_histogram"]["counts"]) == 5


def test_parse_thresholds():
    assert parse_thresholds("0.9, 0.5,0.9") == [0.5, 0.9]
    for bad in ("x", "1.5", ""):
        with pytest.raises(UsageError) as err:
            parse_thresholds(bad)
        assert str(err.value).startswith("thresholds: ") and "--" not in str(err.value)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pl")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "teacher.pt", build_model("full", ModelConfig.from_dict(MICRO), CS), CS)
    words = ["hello", "world", "text", "stop", "open", "cafe"]
    write_lmdb(root / "labeled", [(word_png(w, seed=i), w) for i, w in enumerate(words)])
    unl = [(word_png("x" * (i + 1), seed=10 + i), None) for i in range(5)] + [(b"garbage bytes", None)]
    write_lmdb(root / "unlabeled", unl)
    return root, ckpt


def test_cli_outputs_histograms_and_gallery(setup, tmp_path):
    root, ckpt = setup
    out, gallery, js = tmp_path / "out", tmp_path / "gallery", tmp_path / "all.json"
    res = CliRunner().invoke(app, ["pseudo-labels", str(ckpt), "--unlabeled", str(root / "labeled"),
                                   "--unlabeled", str(root / "unlabeled"), "--out", str(out), "--html", str(gallery),
                                   "--json", str(js), "--device", "cpu", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(out / "pseudo_labels.csv")
    assert len(rows) == 11  # 12 samples, one unreadable
    assert "image-000000006" in res.output and "unreadable" in res.output
    kept = rows[[f"kept@{t:g}" for t in (0.5, 0.7, 0.9, 0.95, 0.99)]].to_numpy()
    assert (kept[:, 1:] <= kept[:, :-1]).all()  # a higher threshold never keeps more
    assert (rows["confidence"] <= rows["min_slot_prob"] + 1e-9).all()  # product <= its smallest factor
    summary = json.loads((out / "summary.json").read_text())
    assert summary["labeled"] == 6 and summary["evaluated"] == 11 and summary["bad_images"] == 1
    assert [t["threshold"] for t in summary["thresholds"]] == [0.5, 0.7, 0.9, 0.95, 0.99]
    assert all("accuracy" in t and "coverage" in t for t in summary["thresholds"])
    for png in ("confidence_hist.png", "length_hist.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert len(json.loads(js.read_text())["rows"]) == 11
    # gallery: static, one card per sample, lowest confidence first, images are local files
    page = (gallery / "index.html").read_text()
    confs = [float(x) for x in re.findall(r'data-conf="([0-9.e-]+)"', page)]
    assert len(confs) == 11 and confs == sorted(confs)
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert all((gallery / s).is_file() for s in srcs) and len(set(srcs)) == 11
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    assert 'id="thr"' in page and "applyFilter" in page


def test_weak_view_is_seeded_and_gallery_refuses_foreign_folder(setup, tmp_path):
    root, ckpt = setup
    outs = []
    for run in range(2):
        csv = tmp_path / f"w{run}.csv"
        res = CliRunner().invoke(app, ["pseudo-labels", str(ckpt), "--unlabeled", str(root / "labeled"), "--view", "weak",
                                       "--seed", "3", "--csv", str(csv), "--head", "vision", "--device", "cpu"])
        assert res.exit_code == 0, res.output
        outs.append(pd.read_csv(csv))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    res = CliRunner().invoke(app, ["pseudo-labels", str(ckpt), "--unlabeled", str(root / "labeled"),
                                   "--html", str(foreign), "--device", "cpu"])
    assert res.exit_code == 1 and "refusing" in res.output
    assert (foreign / "keep.txt").read_text() == "mine"


def test_json_to_stdout_and_errors_name_parameters(setup, tmp_path):
    root, ckpt = setup
    res = CliRunner().invoke(app, ["pseudo-labels", str(ckpt), "--unlabeled", str(root / "labeled"), "--json", "-",
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["evaluated"] == 6 and len(data["rows"]) == 6 and data["checkpoint"] == str(ckpt)
    res = CliRunner().invoke(app, ["pseudo-labels", str(ckpt), "--unlabeled", str(root / "labeled"), "--view", "soft"])
    assert res.exit_code == 2 and "--view: must be one of clean, weak" in res.output
    res = CliRunner().invoke(app, ["pseudo-labels", str(ckpt), "--unlabeled", str(root / "labeled"), "-b", "0"])
    assert res.exit_code == 2 and "--batch-size: must be >= 1" in res.output
    with pytest.raises(UsageError, match="^html_limit: must be >= 0"):
        pseudo_label_report(ckpt, [root / "labeled"], html_limit=-1)
    foreign = tmp_path / "file.txt"
    foreign.write_text("x")
    with pytest.raises(Exception, match="^html: .*not a folder"):
        pseudo_label_report(ckpt, [root / "labeled"], html=foreign, device="cpu")



def test_a_vision_teacher_needs_no_head(setup, tmp_path):
    """A stage-1 checkpoint teaches with its vision head when --head is not given."""
    root, _ = setup
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "vision.pt", build_model("vision", ModelConfig.from_dict(MICRO), CS), CS)
    js = tmp_path / "v.json"
    res = CliRunner().invoke(app, ["pseudo-labels", str(ckpt), "--unlabeled", str(root / "labeled"), "--out",
                                   str(tmp_path / "out"), "--json", str(js), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads(js.read_text())["head"] == "vision"
