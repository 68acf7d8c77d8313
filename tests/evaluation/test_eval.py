"""`semimtr eval` and semimtr_cli.evaluation.scoring: counts, protocol, the two averages, outputs, bad inputs."""

from __future__ import annotations

import io
import json
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
from semimtr_cli.data.benchmarks import resolve_sets
from semimtr_cli.data.image import IMAGENET_MEAN, IMAGENET_STD, rotate_tall
from semimtr_cli.data.lmdb.io import write_lmdb
from semimtr_cli.evaluation.protocol import Protocol, normalize_prediction
from semimtr_cli.evaluation.report import result_objects
from semimtr_cli.evaluation.results import averages
from semimtr_cli.evaluation.scoring import evaluate_set
from semimtr_cli.infer.backend import BatchOutput
from semimtr_cli.model.checkpoint import save_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import build_model
from semimtr_cli.model.outputs import HeadOutput

CS = Charset.preset("36")
MICRO = dict(resnet_stem_channels=4, resnet_channels=[4, 8, 8, 16, 32], resnet_blocks=[1, 1, 1, 1, 1], d_model=32,
             nhead=2, d_inner=64, vision_layers=1, attention_channels=8, lm_layers=1)
REQUIRED_SET_FIELDS = {"name", "path", "num_samples", "evaluated", "skipped", "accuracy", "one_minus_ned",
                       "mean_confidence", "char_accuracy"}


# ------------------------------------------------------------------ a predictor whose answers we choose
def coded_png(code: int, size=(40, 16)) -> bytes:
    """A flat image whose red level (10 * code) tells the stub predictor what to answer."""
    buf = io.BytesIO()
    Image.new("RGB", size, (10 * code, 128, 128)).save(buf, format="PNG")
    return buf.getvalue()


class StubPredictor:
    """Answers ``ANSWERS[code]`` for an image of red level 10*code, with confidence ~0.9 per slot."""

    kind, heads, device = "full", ("alignment", "language", "vision"), "cpu"

    def __init__(self, answers: list[str]):
        self.answers = answers
        self.charset = CS
        self.config = ModelConfig.from_dict(MICRO).resolved(CS)

    def resolve_head(self, head):
        assert head in self.heads
        return head

    def forward(self, batch):
        red = (batch[:, 0, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255
        codes = torch.round(red / 10).long().tolist()
        t, c = CS.max_slots, CS.num_classes
        logits = torch.zeros(len(codes), t, c)
        for i, code in enumerate(codes):
            ids, _ = CS.encode_padded(self.answers[code]) if self.answers[code] else ([0] * t, 1)
            logits[i, torch.arange(t), torch.tensor(ids)] = 8.0
        head = HeadOutput(logits=logits, lengths=torch.ones(len(codes), dtype=torch.long), feature=torch.zeros(0))
        return BatchOutput({h: head for h in self.heads})


ANSWERS = ["abc", "de", "xx", "hi", "ok", "yes", "no", "zz"]


def build_sets(root: Path) -> Path:
    """IIIT5k: 5 samples, 1 label skipped, 3 of 4 right (75 %); SVT: 2 of 2 (100 %);
    CUTE80: 3 samples, 1 corrupt image, 1 of 2 right (50 %)."""
    bench = root / "evaluation" / "benchmark"
    write_lmdb(bench / "IIIT5k_3000", [(coded_png(0), "abc"), (coded_png(1), "de"), (coded_png(2), "fg"),
                                       (coded_png(3), "Hi!"), (coded_png(4), "!!!")])
    write_lmdb(bench / "SVT", [(coded_png(4), "OK"), (coded_png(5), "yes")])
    write_lmdb(bench / "CUTE80", [(coded_png(6), "no"), (b"this is not an image", "lost"), (coded_png(7), "zy")])
    return root


def test_counts_and_both_averages_by_hand(tmp_path):
    root = build_sets(tmp_path)
    sets, subsets = resolve_sets("IIIT5k,SVT,CUTE", root)
    proto = Protocol(subsets=subsets)
    stub = StubPredictor(ANSWERS)
    results = [evaluate_set(stub, s, proto, ["alignment"], batch_size=2) for s in sets]
    obj = result_objects("stub.pt", stub, proto, results, ["alignment"])[0]
    rows = {s["name"]: s for s in obj["sets"]}
    assert (rows["IIIT5k"]["num_samples"], rows["IIIT5k"]["evaluated"], rows["IIIT5k"]["skipped"]) == (5, 4, 1)
    assert rows["IIIT5k"]["skipped_labels"] == {"label empty after normalisation": 1}
    assert rows["IIIT5k"]["accuracy"] == pytest.approx(75.0)
    assert rows["SVT"]["accuracy"] == pytest.approx(100.0)
    # the corrupt image counts as a wrong word (every labeled crop counts) and is listed
    assert (rows["CUTE"]["evaluated"], rows["CUTE"]["skipped"], rows["CUTE"]["bad_images"]) == (3, 0, 1)
    assert rows["CUTE"]["bad_image_keys"] == ["image-000000002"]
    assert rows["CUTE"]["accuracy"] == pytest.approx(100 / 3)
    # char accuracy of CUTE: "no"/"no" 2 + "zz"/"zy" 1 + ""/"lost" 0 over 8 gt chars
    assert rows["CUTE"]["char_accuracy"] == pytest.approx(37.5)
    # official weights: LMDB num-samples incl. skipped -> (5*75 + 2*100 + 3*33.3) / 10
    assert obj["weighted_average"]["accuracy"] == pytest.approx(67.5)
    assert obj["mean"]["accuracy"] == pytest.approx((75 + 100 + 100 / 3) / 3)
    assert obj["weighted_average"]["evaluated"] == 9 and obj["weighted_average"]["skipped"] == 1
    # the alternative weighting by evaluated samples: (4*75 + 2*100 + 3*33.3) / 9
    weighted, _ = averages(obj["sets"], "evaluated")
    assert weighted["accuracy"] == pytest.approx(600 / 9)
    lost = [e for e in results[2].errors["alignment"] if e["key"] == "image-000000002"]
    assert lost and lost[0]["prediction"] == "" and "lost" == lost[0]["label"] and lost[0]["error"]
    # errors list the wrong predictions with keys
    wrong = results[0].errors["alignment"]
    assert [(e["key"], e["label"], e["prediction"]) for e in wrong] == [("image-000000003", "fg", "xx")]


def test_every_decodable_crop_is_scored_however_small(tmp_path):
    """IIIT5K test holds a 6x12 px crop: the protocol resizes it like any other instead of skipping it."""
    write_lmdb(tmp_path / "tiny", [(coded_png(0, size=(12, 6)), "abc"), (coded_png(1, size=(3, 2)), "de")])
    sets, _ = resolve_sets(str(tmp_path / "tiny"), None)
    result = evaluate_set(StubPredictor(ANSWERS), sets[0], Protocol(), ["alignment"])
    assert (result.evaluated, result.skipped, result.bad_images) == (2, 0, [])
    assert result.metrics["alignment"].accuracy == pytest.approx(100.0)


def test_prediction_normalisation_and_rotation():
    assert normalize_prediction("He-llo W0", CS) == "hellow0"
    assert normalize_prediction("Hello", Charset.preset("62")) == "Hello"
    tall = np.zeros((50, 10, 3), np.uint8)
    tall[0, 0] = 255  # top-left corner ends bottom-left after a counter-clockwise turn
    rotated = rotate_tall(tall)
    assert rotated.shape == (10, 50, 3) and rotated[9, 0, 0] == 255
    wide = np.zeros((10, 50, 3), np.uint8)
    assert rotate_tall(wide) is wide
    from PIL import Image  # read (PIL images) and eval (arrays) turn a crop the same way

    assert np.array_equal(np.asarray(rotate_tall(Image.fromarray(tall))), rotated)


# ------------------------------------------------------------------ the CLI on real checkpoints
@pytest.fixture(scope="module")
def micro_ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_ckpt")
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        out.append(save_checkpoint(root / f"m{seed}.pt", build_model("full", ModelConfig.from_dict(MICRO), CS), CS))
    torch.manual_seed(0)
    out.append(save_checkpoint(root / "vision.pt", build_model("vision", ModelConfig.from_dict(MICRO), CS), CS))
    return out


@pytest.fixture()
def parseq_root(tmp_path):
    test = tmp_path / "data" / "test"
    words = ["hello", "world", "street", "open"]
    for name, n in {"IIIT5k": 3, "SVT": 2, "IC13_857": 2, "IC13_1015": 3, "IC15_1811": 2, "IC15_2077": 3,
                    "SVTP": 2, "CUTE80": 2}.items():
        samples = [(word_png(words[i % 4], seed=i), words[i % 4]) for i in range(n)]
        if name == "SVT":
            samples.append((b"\x89PNG\r\n\x1a\n broken", "word"))
        write_lmdb(test / name, samples)
    return tmp_path / "data"


def test_cli_eval_json_csv_errors_plot(micro_ckpts, parseq_root, tmp_path):
    out = {k: tmp_path / f"r.{k}" for k in ("json", "csv", "png")}
    errors = tmp_path / "errors.csv"
    res = CliRunner().invoke(app, ["eval", str(micro_ckpts[0]), "--data", str(parseq_root), "--json", str(out["json"]),
                                   "--csv", str(out["csv"]), "--errors", str(errors), "--plot", str(out["png"]),
                                   "--device", "cpu", "--batch-size", "4", "--protocol", "abinet"])
    assert res.exit_code == 0, res.output
    data = json.loads(out["json"].read_text())
    assert {"checkpoint", "head", "protocol", "sets", "weighted_average", "mean"} <= set(data)
    assert data["head"] == "alignment" and data["protocol"]["name"] == "abinet"
    assert [s["name"] for s in data["sets"]] == ["IIIT5k", "SVT", "IC13_857", "IC15_1811", "SVTP", "CUTE"]
    for s in data["sets"]:
        assert REQUIRED_SET_FIELDS <= set(s)
        assert 0.0 <= s["accuracy"] <= 100.0
    for avg in ("weighted_average", "mean"):
        assert {"accuracy", "one_minus_ned", "mean_confidence", "char_accuracy"} <= set(data[avg])
    svt = data["sets"][1]
    assert (svt["num_samples"], svt["evaluated"], svt["bad_images"]) == (3, 3, 1)  # the unreadable crop is a wrong word
    assert "image-000000003" in res.output  # the corrupt image is named by its key
    err = pd.read_csv(errors)
    assert list(err.columns)[:7] == ["checkpoint", "head", "set", "key", "label", "prediction", "confidence"]
    unreadable = err[err["error"].notna()]
    assert list(zip(unreadable["set"], unreadable["key"])) == [("SVT", "image-000000003")]
    # one row per wrong word; the unreadable crop is one of them, not listed twice
    assert len(err) == round(sum(s["evaluated"] - s["accuracy"] * s["evaluated"] / 100 for s in data["sets"]))
    table = pd.read_csv(out["csv"])
    assert len(table) == 6 + 2 and set(table["set"]) >= {"weighted_average", "mean"}
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_eval_several_checkpoints_and_heads(micro_ckpts, parseq_root, tmp_path):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["eval", str(micro_ckpts[0]), str(micro_ckpts[1]), str(micro_ckpts[2]),
                                   "--bench", "SVT,CUTE", "--data", str(parseq_root), "--head", "all",
                                   "--json", str(out), "--device", "cpu", "--workers", "0"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert isinstance(data, list)
    assert [(Path(d["checkpoint"]).name, d["head"]) for d in data] == [
        ("m0.pt", "alignment"), ("m0.pt", "language"), ("m0.pt", "vision"),
        ("m1.pt", "alignment"), ("m1.pt", "language"), ("m1.pt", "vision"), ("vision.pt", "vision")]
    assert res.output.count("m0.pt") >= 3 and "vision.pt" in res.output


def test_cli_eval_custom_folder_set_with_workers(micro_ckpts, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for i, w in enumerate(["ab", "cd", "ef"]):
        (folder / f"{i}.png").write_bytes(word_png(w, seed=i))
    tall = Image.new("RGB", (10, 40), (200, 200, 200))
    tall.save(folder / "tall.png")
    (folder / "gt.txt").write_text("0.png ab\n1.png cd\n2.png ef\ntall.png gh\nnothere.png ij\n")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["eval", str(micro_ckpts[0]), "--bench", str(folder), "--json", str(out),
                                   "--device", "cpu", "--workers", "2", "--rotate-tall"])
    assert res.exit_code == 0, res.output
    s = json.loads(out.read_text())["sets"][0]
    # the missing file is a wrong word and listed
    assert (s["name"], s["num_samples"], s["evaluated"], s["bad_images"]) == ("mine", 5, 5, 1)
    assert json.loads(out.read_text())["protocol"]["rotate_tall"] is True


def test_eval_of_converted_official_parity_checkpoint(tmp_path):
    from official_fixture import abinet_types as _abinet_types
    from official_fixture import official_state_dict

    from semimtr_cli.model.convert import import_official

    model, cs, _ = import_official({"model": official_state_dict("abinet_state_dict_keys.tsv", "abinet_fixed_buffers.npz",
                                                                 _abinet_types())})
    ckpt = save_checkpoint(tmp_path / "official.pt", model, cs)
    del model
    root = tmp_path / "evaluation" / "benchmark"
    for i, name in enumerate(["IIIT5k_3000", "SVT", "IC13_1015", "IC15_2077", "SVTP", "CUTE80"]):
        write_lmdb(root / name, [(word_png(w, seed=i), w) for w in ["abc", "door"][: 1 + i % 2]])
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["eval", str(ckpt), "--data", str(tmp_path), "--json", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert [s["name"] for s in data["sets"]] == ["IIIT5k", "SVT", "IC13_1015", "IC15_2077", "SVTP", "CUTE"]
    assert sum(s["evaluated"] for s in data["sets"]) == 9
    assert data["model"]["kind"] == "full" and data["protocol"]["charset"] == "36"
    for s in data["sets"]:
        assert REQUIRED_SET_FIELDS <= set(s)
    assert {"accuracy", "one_minus_ned", "mean_confidence", "char_accuracy"} <= set(data["weighted_average"])


def test_checkpoint_charset_mismatch_is_a_clear_error(micro_ckpts, parseq_root, tmp_path):
    ck = torch.load(micro_ckpts[0], weights_only=True)
    ck["charset"] = Charset.preset("62").to_dict()
    bad = tmp_path / "bad.pt"
    torch.save(ck, bad)
    res = CliRunner().invoke(app, ["eval", str(bad), "--bench", "SVT", "--data", str(parseq_root), "--device", "cpu"])
    assert res.exit_code == 1
    assert "checkpoint/charset mismatch" in res.output and "bad.pt" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["eval", str(micro_ckpts[0]), "--bench", "SVT", "--data", str(parseq_root),
                                   "--charset", "62", "--device", "cpu"])
    assert res.exit_code == 1 and "cannot produce 26 symbol(s)" in res.output


def test_cli_missing_set_lists_what_was_found(micro_ckpts, parseq_root):
    res = CliRunner().invoke(app, ["eval", str(micro_ckpts[0]), "--bench", "IC03", "--data", str(parseq_root)])
    assert res.exit_code == 1
    assert "IC03" in res.output and "IC13_857" in res.output and str(parseq_root) in res.output.replace("\n", "")


def test_cli_eval_scores_a_vision_checkpoint_without_head(micro_ckpts, parseq_root, tmp_path):
    """After stage 1 the checkpoint has no alignment head: --head defaults to its final (vision) head."""
    out = tmp_path / "v.json"
    res = CliRunner().invoke(app, ["eval", str(micro_ckpts[2]), str(micro_ckpts[0]), "--bench", "SVT",
                                   "--data", str(parseq_root), "--json", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert [d["head"] for d in json.loads(out.read_text())] == ["vision", "alignment"]


def test_short_names_tell_same_named_checkpoints_apart():
    from semimtr_cli.evaluation.report import short_names

    got = short_names(["runs/adapt-supervised/best.pt", "runs/adapt-semimtr/best.pt", "default", "runs/x/last.pt"])
    assert got == {"runs/adapt-supervised/best.pt": "adapt-supervised/best.pt", "runs/adapt-semimtr/best.pt": "adapt-semimtr/best.pt",
                   "default": "default", "runs/x/last.pt": "last.pt"}
    assert short_names(["a/r/best.pt", "b/r/best.pt"]) == {"a/r/best.pt": "a/r/best.pt", "b/r/best.pt": "b/r/best.pt"}
