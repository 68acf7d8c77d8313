"""`default` wherever a checkpoint path is accepted, and the Python API `load_model`.

The shipped file is replaced by a micro model here (tests never depend on the real weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import word_png
from PIL import Image
from typer.testing import CliRunner

import semimtr_cli
from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.model import checkpoint as ckpt_mod
from semimtr_cli.model.checkpoint import resolve_checkpoint, save_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import build_model

CS = Charset.preset("36")
MICRO = dict(resnet_stem_channels=4, resnet_channels=[4, 8, 8, 16, 32], resnet_blocks=[1, 1, 1, 1, 1], d_model=32,
             nhead=2, d_inner=64, vision_layers=1, attention_channels=8, lm_layers=1)


@pytest.fixture()
def shipped(tmp_path, monkeypatch):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "default_model.pt", build_model("full", ModelConfig.from_dict(MICRO), CS), CS)
    monkeypatch.setattr(ckpt_mod, "packaged_model_path", lambda: path)
    return path


@pytest.fixture()
def crops(tmp_path):
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, word in enumerate(["open", "cafe"]):
        (folder / f"{i}.png").write_bytes(word_png(word, size=(64, 24), seed=i))
    return folder


def test_default_names_the_shipped_file_and_says_when_there_is_none(shipped, monkeypatch, tmp_path):
    assert resolve_checkpoint("default") == shipped
    assert resolve_checkpoint(tmp_path / "x.pt") == tmp_path / "x.pt"
    monkeypatch.setattr(ckpt_mod, "packaged_model_path", lambda: tmp_path / "missing.pt")
    with pytest.raises(SemimtrError, match="ships no default model"):
        resolve_checkpoint("default")


def test_read_and_eval_accept_default(shipped, crops, tmp_path):
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["read", "default", str(crops), "--json", str(out)])
    assert res.exit_code == 0, res.output
    by_name = json.loads(out.read_text())
    res = CliRunner().invoke(app, ["read", str(shipped), str(crops), "--json", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    assert by_name["predictions"] == json.loads((tmp_path / "p.json").read_text())["predictions"]
    (crops / "labels.tsv").write_text("0.png\topen\n1.png\tcafe\n")
    res = CliRunner().invoke(app, ["eval", "default", "--bench", str(crops / "labels.tsv"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["sets"][0]["evaluated"] == 2


def test_calibrate_never_rewrites_the_shipped_file(shipped, crops):
    (crops / "labels.tsv").write_text("0.png\topen\n1.png\tcafe\n")
    before = shipped.read_bytes()
    res = CliRunner().invoke(app, ["calibrate", "default", "--valid", str(crops / "labels.tsv")])
    assert res.exit_code == 2 and "--out" in res.output
    assert shipped.read_bytes() == before


def test_finetune_init_default_is_init_full(shipped, tmp_path):
    res = CliRunner().invoke(app, ["finetune", "--init", "default", "--init-full", "x.pt", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--init-full" in res.output
    from semimtr_cli.model.checkpoint import load_checkpoint
    from semimtr_cli.model.transfer import load_part

    model = build_model("full", ModelConfig.from_dict(MICRO), CS)
    load_part(model, load_checkpoint("default"), "full", CS)  # what init.full=default does
    shipped_sd = torch.load(shipped, weights_only=True)["state_dict"]
    assert all(torch.equal(v, shipped_sd[k]) for k, v in model.state_dict().items())


def test_load_model_reads_paths_and_images(shipped, crops):
    reader = semimtr_cli.load_model("default")
    assert reader.head == "alignment"
    pil = Image.open(crops / "1.png")
    words = reader.read([str(crops / "0.png"), pil, np.asarray(pil.convert("RGB"))])
    assert len(words) == 3 and words[1] == words[2]
    assert all(isinstance(w.text, str) and 0.0 <= w.confidence <= 1.0 for w in words)
    assert semimtr_cli.load_model("default", head="vision").head == "vision"
