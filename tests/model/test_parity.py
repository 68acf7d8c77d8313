"""Fidelity proof: official weights (rebuilt from the fixture's rule) give the official logits.

The official-named state dict is written as the official trainer would ({'model': sd}),
imported with `semimtr convert`, and the fixture PNGs are read with `semimtr read
--save-logits`: the same code path a user runs. See fixtures/official_parity/README.md.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from official_fixture import FIX, abinet_types, official_state_dict
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.infer.predictor import Predictor
from semimtr_cli.infer.reading import load_image
from semimtr_cli.model.checkpoint import model_from_checkpoint
from semimtr_cli.model.decoding import decode_logits
from semimtr_cli.model.factory import count_parameters

IMAGES = [FIX / f"image_{i}.png" for i in range(4)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("parity")
    runner = CliRunner()
    full_sd = official_state_dict("abinet_state_dict_keys.tsv", "abinet_fixed_buffers.npz", abinet_types())
    src = tmp / "official_full.pth"
    torch.save({"model": full_sd}, src)
    dst = tmp / "full.pt"
    res = runner.invoke(app, ["convert", str(src), str(dst)])
    assert res.exit_code == 0, res.output
    types = {k[len("language."):]: t for k, t in abinet_types().items() if k.startswith("language.")}
    lm_sd = official_state_dict("lm_state_dict_keys.tsv", "lm_fixed_buffers.npz", types)
    lm_src = tmp / "official_lm.pth"
    torch.save(lm_sd, lm_src)
    lm_dst = tmp / "lm.pt"
    res = runner.invoke(app, ["convert", str(lm_src), str(lm_dst)])
    assert res.exit_code == 0, res.output
    return {"full": dst, "lm": lm_dst, "tmp": tmp}


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_read_cli_reproduces_official_logits(converted):
    out = converted["tmp"] / "logits.npz"
    res = CliRunner().invoke(app, ["read", str(converted["full"]), *map(str, IMAGES), "--save-logits", str(out),
                                   "--device", "cpu", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    got = np.load(out)
    assert list(got["paths"]) == [str(p) for p in IMAGES]
    for head, ref in (("vision", "vision_logits.npy"), ("language", "language_logits_last_iter.npy"),
                      ("alignment", "alignment_logits_last_iter.npy")):
        expected = np.load(FIX / ref)
        assert got[head].shape == expected.shape
        assert _max_diff(got[head], expected) <= 1e-4, head


def test_attention_scores_and_lengths_match(converted):
    predictor = Predictor(converted["full"], device="cpu")
    batch = predictor.preprocess([load_image(p) for p in IMAGES])
    out = predictor.forward(batch)
    assert _max_diff(out.heads["vision"].extras["attn_scores"], np.load(FIX / "vision_attn_scores.npy")) <= 1e-6
    assert out.heads["vision"].lengths.tolist() == np.load(FIX / "vision_pt_lengths.npy").tolist()
    decoded = json.loads((FIX / "decoded.json").read_text())
    for head in ("vision", "language", "alignment"):
        texts = [d.text for d in decode_logits(out.heads[head].logits, predictor.charset)]
        assert texts == decoded[head], head


def test_language_model_alone_matches(converted):
    model, charset, ckpt = model_from_checkpoint(converted["lm"])
    assert ckpt["kind"] == "language" and charset.num_classes == 37
    probs = torch.from_numpy(np.load(FIX / "lm_input_probs.npy"))
    lengths = torch.from_numpy(np.load(FIX / "lm_input_lengths.npy"))
    with torch.no_grad():
        out = model(probs, lengths)
    assert _max_diff(out.logits, np.load(FIX / "lm_logits.npy")) <= 1e-4


def test_parameter_counts_equal_the_official_ones(converted):
    model, _, _ = model_from_checkpoint(converted["full"])
    meta = json.loads((FIX / "meta.json").read_text())["param_counts"]
    counts = {"full": count_parameters(model), "vision": count_parameters(model.vision),
              "language": count_parameters(model.language), "alignment": count_parameters(model.alignment)}
    assert counts == {"full": 36_738_703, "vision": 23_547_461, "language": 12_647_461, "alignment": 543_781}
    assert counts == meta
