"""Our checkpoint format: atomic save, weights_only load, validation, rebuild from the path alone."""

from __future__ import annotations

import pytest
import torch

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.model.checkpoint import (
    FORMAT, load_checkpoint, load_state_dict_strict, model_from_checkpoint, save_checkpoint,
)
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import build_model

CS = Charset.preset("36")


@pytest.mark.parametrize("kind", ["full", "vision", "language", "seqclr"])
def test_round_trip(tmp_path, kind):
    torch.manual_seed(1)
    model = build_model(kind, ModelConfig.preset("tiny"), CS)
    path = save_checkpoint(tmp_path / "m.pt", model, CS, step=7, metrics={"cwr": 0.5}, extra={"note": "x"})
    ckpt = torch.load(path, weights_only=True)  # loadable without arbitrary unpickling
    assert ckpt["format"] == FORMAT and ckpt["kind"] == kind and ckpt["step"] == 7 and ckpt["note"] == "x"
    loaded, charset, ckpt2 = model_from_checkpoint(path)
    assert charset == CS and ckpt2["metrics"] == {"cwr": 0.5}
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert loaded.config == model.config


def test_save_is_atomic(tmp_path, monkeypatch):
    model = build_model("language", ModelConfig.preset("tiny"), CS)
    path = save_checkpoint(tmp_path / "m.pt", model, CS, step=1)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(path, model, CS, step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_not_a_checkpoint_errors(tmp_path):
    with pytest.raises(SemimtrError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    with pytest.raises(SemimtrError, match="junk.pt"):
        load_checkpoint(junk)
    official = tmp_path / "official.pth"
    torch.save({"model": {"vision.cls.weight": torch.zeros(2, 2)}}, official)
    with pytest.raises(SemimtrError, match="semimtr convert"):
        load_checkpoint(official)


def test_newer_format_version_is_refused(tmp_path):
    model = build_model("language", ModelConfig.preset("tiny"), CS)
    path = save_checkpoint(tmp_path / "m.pt", model, CS)
    ckpt = torch.load(path, weights_only=True)
    ckpt["format_version"] = 99
    torch.save(ckpt, path)
    with pytest.raises(SemimtrError, match="format_version"):
        load_checkpoint(path)


def test_strict_loading_lists_keys():
    model = build_model("language", ModelConfig.preset("tiny"), CS)
    sd = dict(model.state_dict())
    sd.pop("cls.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(SemimtrError) as info:
        load_state_dict_strict(model, sd, "x.pt")
    msg = str(info.value)
    assert "x.pt" in msg and "cls.bias" in msg and "extra.weight" in msg and "proj.weight (3, 3)" in msg


def test_bad_model_config_in_a_checkpoint_names_file_and_key(tmp_path):
    model = build_model("language", ModelConfig.preset("tiny"), CS)
    path = save_checkpoint(tmp_path / "m.pt", model, CS)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["lm_layer"] = ckpt["model_config"].pop("lm_layers")
    torch.save(ckpt, path)
    with pytest.raises(SemimtrError) as err:
        model_from_checkpoint(path)
    assert str(err.value) == f"{path}: model config: unknown key 'lm_layer' (did you mean 'lm_layers'?)"
