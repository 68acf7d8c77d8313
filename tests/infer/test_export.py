"""`semimtr export` (ONNX) and `semimtr read --backend onnx`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import word_png
from typer.testing import CliRunner

from semimtr_cli.cli.app import app
from semimtr_cli.core.charset import Charset
from semimtr_cli.model.checkpoint import save_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import build_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

CS = Charset.preset("36")
MICRO = dict(resnet_stem_channels=4, resnet_channels=[4, 8, 8, 16, 32], resnet_blocks=[1, 1, 1, 1, 1], d_model=32,
             nhead=2, d_inner=64, vision_layers=1, attention_channels=8, lm_layers=1)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    out = {kind: save_checkpoint(root / f"{kind}.pt", build_model(kind, ModelConfig.from_dict(MICRO), CS), CS)
           for kind in ("full", "language")}
    return root, out


def test_export_full_model_matches_torch_with_dynamic_batch(ckpts, tmp_path):
    root, paths = ckpts
    dst, report = tmp_path / "full.onnx", tmp_path / "report.json"
    res = CliRunner().invoke(app, ["export", str(paths["full"]), "--onnx", str(dst), "--check", "3", "--json", str(report)])
    assert res.exit_code == 0, res.output
    info = json.loads(report.read_text())
    assert info["outputs"] == ["alignment", "language", "vision"] and info["checked_images"] == 3
    assert max(info["max_abs_diff"].values()) <= 1e-4
    proto = onnx.load(str(dst))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["semimtr.charset"])["symbols"] == "".join(CS.symbols)
    # batch of 5 (exported with 2): outputs keep 26 slots and match PyTorch eval, last iteration
    from semimtr_cli.infer.predictor import Predictor

    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 32, 128)
    got = sess.run(None, {"images": x.numpy()})
    ref = Predictor(paths["full"], device="cpu", channels_last=False).forward(x)
    for name, arr in zip(("alignment", "language", "vision"), got):
        assert arr.shape == (5, 26, 37)
        assert np.abs(arr - ref.heads[name].logits.numpy()).max() <= 1e-4


def test_vision_only_export_and_read_backend_onnx(ckpts, tmp_path):
    root, paths = ckpts
    dst = tmp_path / "vision.onnx"
    res = CliRunner().invoke(app, ["export", str(paths["full"]), "--onnx", str(dst), "--vision-only", "--check", "2"])
    assert res.exit_code == 0, res.output
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["vision"]
    assert sess.get_inputs()[0].shape[0] == "batch"
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i, w in enumerate(["hello", "world", "text"]):
        (imgs / f"{i}.png").write_bytes(word_png(w, seed=i))
    outs = {}
    for backend, model in (("onnx", dst), ("torch", paths["full"])):
        js = tmp_path / f"{backend}.json"
        res = CliRunner().invoke(app, ["read", str(model), str(imgs), "--backend", backend, "--head", "vision",
                                       "--json", str(js), "--device", "cpu"])
        assert res.exit_code == 0, res.output
        outs[backend] = json.loads(js.read_text())["predictions"]
    assert [p["text"] for p in outs["onnx"]] == [p["text"] for p in outs["torch"]]
    assert np.allclose([p["confidence"] for p in outs["onnx"]], [p["confidence"] for p in outs["torch"]], atol=1e-4)
    res = CliRunner().invoke(app, ["read", str(dst), str(imgs), "--backend", "onnx", "--head", "alignment"])
    assert res.exit_code == 2 and "no alignment head" in res.output


def test_int8_refused_and_eval_takes_the_fp32_onnx_file(ckpts, tmp_path):
    root, paths = ckpts
    dst = tmp_path / "full.onnx"
    res = CliRunner().invoke(app, ["export", str(paths["full"]), "--onnx", str(dst), "--int8"])
    assert res.exit_code == 2 and "no int8" in res.output and not dst.exists(), res.output
    (tmp_path / "a.png").write_bytes(word_png("abc"))
    res = CliRunner().invoke(app, ["read", str(paths["full"]), str(tmp_path / "a.png"), "--precision", "int8"])
    assert res.exit_code == 2 and "semimtr export CKPT --onnx MODEL.onnx" in res.output
    res = CliRunner().invoke(app, ["export", str(paths["full"]), "--onnx", str(dst), "--check", "2"])
    assert res.exit_code == 0, res.output
    from semimtr_cli.data.lmdb.io import write_lmdb

    lmdb = tmp_path / "set"
    write_lmdb(lmdb, [(word_png(w, seed=i), w) for i, w in enumerate(["one", "two", "three"])])
    js = tmp_path / "e.json"
    res = CliRunner().invoke(app, ["eval", str(dst), "--bench", str(lmdb), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert json.loads(js.read_text())["precision"] == "fp32"


def test_export_errors(ckpts, tmp_path):
    root, paths = ckpts
    res = CliRunner().invoke(app, ["export", str(paths["language"]), "--onnx", str(tmp_path / "lm.onnx")])
    assert res.exit_code == 1 and "language model alone" in res.output
    assert not (tmp_path / "lm.onnx").exists()
    res = CliRunner().invoke(app, ["read", str(paths["full"]), str(tmp_path), "--backend", "onnx"])
    assert res.exit_code != 0 and "Traceback" not in res.output


def test_int8_sensitivity_finds_the_weight_matmuls_and_quantises_them(ckpts, tmp_path):
    """benchmarks/int8_sensitivity.py's groups: the MatMuls with a weight input (linear layers),
    never the attention products of two activations; a quantised group runs and reads."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import int8_sensitivity as s8

    from semimtr_cli.infer.export import export_onnx

    src = tmp_path / "full.onnx"
    export_onnx(ckpts[1]["full"], src, check=0)
    nodes = s8.weight_matmuls(src)
    graph = onnx.load(str(src)).graph
    all_mm = [n.name for n in graph.node if n.op_type == "MatMul"]
    assert nodes and set(nodes) < set(all_mm)  # some MatMuls multiply two activations
    assert any(n.startswith("/model/vision/") for n in nodes) and any(n.startswith("/model/language/") for n in nodes)
    q = s8.quantize(src, tmp_path / "q.onnx", nodes)
    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    words = s8.words(q, torch.randn(3, 3, 32, 128))
    assert len(words) == 3
    pc = s8.quantize(src, tmp_path / "pc.onnx", nodes, s8.SCHEMES["per-channel weights"])
    scales = [i for i in onnx.load(str(pc)).graph.initializer if i.name.endswith("_scale") and len(i.dims) == 1 and i.dims[0] > 1]
    assert scales  # one scale per output channel of some weight


def test_int8_sensitivity_noise_floor_is_within_the_grey_levels_asked():
    """The noise-floor inputs differ from the originals by at most the asked grey levels (in
    0..255 pixel units after undoing the normalisation), are seeded, and are not a no-op."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import int8_sensitivity as s8

    from semimtr_cli.data.image import IMAGENET_STD

    x = torch.zeros(4, 3, 8, 16)
    d = (s8.perturbed(x, 0.5) - x) * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    assert d.abs().max() <= 0.5 + 1e-5 and d.abs().max() > 0.4
    assert torch.equal(s8.perturbed(x, 0.5), s8.perturbed(x, 0.5))
