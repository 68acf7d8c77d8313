"""Importing official SemiMTR / ABINet checkpoint files (synthetic, tiny-sized, official key names)."""

from __future__ import annotations

import argparse

import pytest
import torch
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError, as_flag
from semimtr_cli.model.checkpoint import model_from_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.convert import convert_checkpoint
from semimtr_cli.model.factory import build_model

CS = Charset.preset("36")
# official files never store the head count; the importer assumes the paper's 8 heads
TINY = ModelConfig.preset("tiny", nhead=8)


def _sd(kind: str, **overrides) -> dict:
    torch.manual_seed(3)
    model = build_model(kind, ModelConfig.preset("tiny", nhead=8, **overrides), CS)
    # make BN statistics non-trivial so that they must be carried over
    return {k: (torch.rand_like(v) + 0.5 if "running_var" in k else v) for k, v in model.state_dict().items()}


def _assert_same(state: dict, ckpt_path, prefix: str = "") -> None:
    model, _, ckpt = model_from_checkpoint(ckpt_path)
    ours = model.state_dict()
    expected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    assert set(ours) == set(expected)
    for k, v in expected.items():
        assert torch.equal(ours[k], v), k


@pytest.mark.parametrize("layout", ["plain", "trainer", "lightning"])
def test_full_model_layouts(tmp_path, layout):
    sd = _sd("full")
    obj = {"plain": sd, "trainer": {"model": sd, "opt": {"state": {}, "param_groups": [{"lr": 1e-4}]}},
           "lightning": {"state_dict": {"model." + k: v for k, v in sd.items()}, "epoch": 2}}[layout]
    src = tmp_path / ("src.ckpt" if layout == "lightning" else "src.pth")
    torch.save(obj, src)
    result = convert_checkpoint(src, tmp_path / "out.pt")
    assert result.kind == "full" and result.num_tensors == len(sd)
    _assert_same(sd, tmp_path / "out.pt")
    # the imported model computes what the original computes
    original = build_model("full", TINY, CS).eval()
    original.load_state_dict(sd)
    imported, _, _ = model_from_checkpoint(tmp_path / "out.pt")
    x = torch.randn(2, 3, 32, 128)
    with torch.no_grad():
        assert torch.allclose(original(x).alignment[-1].logits, imported(x).alignment[-1].logits, atol=1e-5)


def test_seqclr_vision_checkpoint(tmp_path):
    sd = _sd("seqclr", seqclr_scheme="linear_per_column", seqclr_output=24)
    src = tmp_path / "vision.pth"
    torch.save({"model": sd}, src)
    result = convert_checkpoint(src, tmp_path / "seqclr.pt")
    assert result.kind == "seqclr"
    assert result.model_config["seqclr_scheme"] == "linear_per_column" and result.model_config["seqclr_output"] == 24
    _assert_same(sd, tmp_path / "seqclr.pt")
    # forcing --kind vision keeps the recognizer and reports the dropped head
    result = convert_checkpoint(src, tmp_path / "vision.pt", kind="vision")
    assert result.kind == "vision" and result.dropped_prefixes == ["seqclr_proj.*"]
    _assert_same(sd, tmp_path / "vision.pt", prefix="vision.")


def test_vision_only_with_prefix_and_bare(tmp_path):
    sd = _sd("vision")
    torch.save({"vision." + k: v for k, v in sd.items()}, tmp_path / "a.pth")
    torch.save(sd, tmp_path / "b.pth")  # ABINet's BaseVision trained alone: no prefix
    for name in ("a", "b"):
        result = convert_checkpoint(tmp_path / f"{name}.pth", tmp_path / f"{name}.pt")
        assert result.kind == "vision"
        _assert_same(sd, tmp_path / f"{name}.pt")


def test_language_only_and_extraction(tmp_path):
    lm = _sd("language")
    torch.save(lm, tmp_path / "lm.pth")
    assert convert_checkpoint(tmp_path / "lm.pth", tmp_path / "lm.pt").kind == "language"
    _assert_same(lm, tmp_path / "lm.pt")
    full = _sd("full")
    torch.save(full, tmp_path / "full.pth")
    result = convert_checkpoint(tmp_path / "full.pth", tmp_path / "lm2.pt", kind="language")
    assert result.kind == "language" and sorted(result.dropped_prefixes) == ["alignment.*", "vision.*"]
    _assert_same(full, tmp_path / "lm2.pt", prefix="language.")
    with pytest.raises(SemimtrError, match="not a full recognizer"):
        convert_checkpoint(tmp_path / "lm.pth", tmp_path / "x.pt", kind="full")


def test_wrong_shape_is_an_error_naming_the_key(tmp_path):
    sd = _sd("full")
    sd["vision.attention.project.weight"] = torch.zeros(128, 127)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(SemimtrError, match=r"vision\.attention\.project\.weight"):
        convert_checkpoint(tmp_path / "bad.pth", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_extra_and_missing_keys_are_errors(tmp_path):
    sd = _sd("full")
    sd["alignment.extra.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "extra.pth")
    with pytest.raises(SemimtrError, match=r"unexpected keys \[alignment\.extra\.weight\]"):
        convert_checkpoint(tmp_path / "extra.pth", tmp_path / "out.pt")
    sd = _sd("full")
    del sd["alignment.cls.bias"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(SemimtrError, match=r"missing keys \[alignment\.cls\.bias\]"):
        convert_checkpoint(tmp_path / "missing.pth", tmp_path / "out.pt")
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(SemimtrError, match="unrecognised"):
        convert_checkpoint(tmp_path / "other.pth", tmp_path / "out.pt")


def test_charset_mismatch(tmp_path):
    torch.save(_sd("language"), tmp_path / "lm.pth")
    with pytest.raises(SemimtrError, match="37 classes but charset '62'"):
        convert_checkpoint(tmp_path / "lm.pth", tmp_path / "out.pt", charset="62")


def test_pickle_needs_trust(tmp_path):
    src = tmp_path / "pickled.pth"
    torch.save({"model": _sd("language"), "opt": argparse.Namespace(lr=1e-4)}, src)
    with pytest.raises(SemimtrError, match="pass trust_pickle only") as err:
        convert_checkpoint(src, tmp_path / "out.pt")
    assert "pass --trust-pickle only if you trust this file" in err.value.render(as_flag)
    result = convert_checkpoint(src, tmp_path / "out.pt", trust_pickle=True)
    assert result.kind == "language" and result.ignored_entries == ["opt"]


def test_cli_convert(tmp_path):
    runner = CliRunner()
    torch.save(_sd("language"), tmp_path / "lm.pth")
    res = runner.invoke(app, ["convert", str(tmp_path / "lm.pth"), str(tmp_path / "lm.pt"), "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "imported language model" in res.output and (tmp_path / "r.json").exists()
    res = runner.invoke(app, ["convert", str(tmp_path / "lm.pth"), str(tmp_path / "lm.pt")])
    assert res.exit_code == 2 and "--overwrite" in res.output
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["convert", str(tmp_path / "bad.pth"), str(tmp_path / "x.pt")])
    assert res.exit_code == 1 and "error:" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.pt").exists()
