"""runtime: device names, `precision: auto` per machine, and the predictor's fp32 agreement check."""

from pathlib import Path

import pytest
import torch
from helpers import word_png

from semimtr_cli.core import runtime
from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.infer.predictor import Predictor
from semimtr_cli.model.checkpoint import save_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import build_model


@pytest.fixture()
def fresh_cpu(monkeypatch):
    """Clear the per-process caches so each test sees its own (patched) machine."""
    caches = (runtime.cpu_bf16, runtime.cpu_info)
    for c in caches:
        c.cache_clear()
    yield monkeypatch
    for c in caches:
        c.cache_clear()


def patch_cpu(mp, flags, speedup=2.0):
    mp.delenv("SEMIMTR_CPU_BF16", raising=False)
    mp.setattr(runtime, "cpu_info", lambda: {"model": "Test CPU", "flags": flags, "torch_capability": "AVX512", "cores": 2})
    mp.setattr(runtime, "_probe_bf16_speedup", lambda: speedup)


def test_explicit_precisions_and_errors():
    cpu = torch.device("cpu")
    assert runtime.choose_precision("fp32", cpu).dtype is None
    p = runtime.choose_precision("bf16", cpu)
    assert p.dtype == torch.bfloat16 and p.reason == "as requested" and not p.needs_scaler
    with pytest.raises(SemimtrError, match="CUDA"):
        runtime.choose_precision("fp16", cpu)
    with pytest.raises(SemimtrError, match="precision: must be one of"):
        runtime.choose_precision("fp8", cpu)
    with pytest.raises(SemimtrError, match="there is no int8 inference"):
        runtime.choose_precision("int8", cpu)


@pytest.mark.parametrize("flags, speedup, expected, why", [
    (["avx2", "avx512f"], 3.0, "fp32", "no native bf16"),
    (["avx512f", "avx512_bf16"], 2.0, "bf16", "probe ran 2.00x"),
    (["avx512f", "avx512_bf16"], 0.7, "fp32", "probe ran 0.70x"),  # native flag but slow kernels (Xeon without AMX)
    (["amx_bf16", "amx_tile"], 1.5, "bf16", "amx_bf16"),
])
def test_auto_on_cpu_needs_the_flag_and_the_speed(fresh_cpu, flags, speedup, expected, why):
    patch_cpu(fresh_cpu, flags, speedup)
    choice = runtime.choose_precision("auto", torch.device("cpu"))
    assert choice.name == expected and why in choice.reason and choice.requested == "auto"
    assert "auto" in choice.describe() and choice.to_dict()["name"] == expected


def test_environment_overrides_the_cpu_answer(fresh_cpu):
    patch_cpu(fresh_cpu, [], 9.0)
    fresh_cpu.setenv("SEMIMTR_CPU_BF16", "1")
    assert runtime.choose_precision("auto", torch.device("cpu")).name == "bf16"


def test_probe_is_real_and_leaves_the_rng_alone():
    state = torch.get_rng_state()
    ratio = runtime._probe_bf16_speedup()
    assert ratio > 0 and torch.equal(state, torch.get_rng_state())


def test_devices():
    assert runtime.pick_device("cpu").type == "cpu"
    assert runtime.pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(SemimtrError, match="unknown device"):
        runtime.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SemimtrError, match="CUDA is not available"):
            runtime.pick_device("cuda")


def test_predictor_auto_keeps_bf16_only_with_fp32_words(fresh_cpu, tmp_path):
    patch_cpu(fresh_cpu, ["avx512_bf16"], 2.0)
    cs = Charset.preset("36")
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "v.pt", build_model("vision", ModelConfig.preset("tiny"), cs), cs)
    images = torch.randn(6, 3, 32, 128)
    fp32 = Predictor(ckpt, precision="fp32").forward(images).heads["vision"].logits
    auto = Predictor(ckpt, precision="auto")
    assert auto.precision == "bf16" and "first batch" not in auto.precision_reason
    out = auto.forward(images).heads["vision"].logits
    assert "first batch" in auto.precision_reason
    same = [a.argmax(-1).tolist() == b.argmax(-1).tolist() for a, b in zip(out, fp32)]
    if auto.precision == "fp32":  # bf16 changed a word: the fp32 result is what came back
        assert torch.allclose(out, fp32, atol=1e-5) and "fp32 is used" in auto.precision_reason
    else:
        assert "all 6 words equal" in auto.precision_reason and all(same)
    # the check runs once: the second batch keeps the decision
    decided = auto.precision
    auto.forward(images)
    assert auto.precision == decided


def test_bad_precision_is_one_usage_error_on_every_inference_command(tmp_path):
    from typer.testing import CliRunner

    from semimtr_cli.cli.app import app

    cs = Charset.preset("36")
    ckpt = save_checkpoint(tmp_path / "v.pt", build_model("vision", ModelConfig.preset("tiny"), cs), cs)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(word_png("hello"))
    (tmp_path / "imgs" / "labels.tsv").write_text("a.png\thello\n", encoding="utf-8")
    for args in (["read", str(ckpt), str(tmp_path / "imgs")],
                 ["eval", str(ckpt), "--bench", str(tmp_path / "imgs")],
                 ["pseudo-labels", str(ckpt), "--unlabeled", str(tmp_path / "imgs"), "--out", str(tmp_path / "p")]):
        res = CliRunner().invoke(app, args + ["--precision", "fp8"])
        assert res.exit_code != 0 and "fp8" in res.output, (args[0], res.output)


RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_device_and_precision_mean_the_same_on_inference_and_training_commands(tmp_path):
    """One vocabulary: the same values pass the same checks, with the same one-line errors."""
    from typer.testing import CliRunner

    from semimtr_cli.cli.app import app

    cs = Charset.preset("36")
    ckpt = save_checkpoint(tmp_path / "v.pt", build_model("vision", ModelConfig.preset("tiny"), cs), cs)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(word_png("hello"))
    (tmp_path / "imgs" / "labels.tsv").write_text("a.png\thello\n", encoding="utf-8")
    commands = {
        "read": ["read", str(ckpt), str(tmp_path / "imgs")],
        "eval": ["eval", str(ckpt), "--bench", str(tmp_path / "imgs")],
        "train": ["pretrain-vision", "--recipe", str(RECIPES / "cpu-tiny" / "pretrain_vision.yaml"), "--out", str(tmp_path / "r"),
                  "--max-steps", "1"],
    }
    cases = [
        (["--device", "tpu"], "--device: unknown device 'tpu'"),
        (["--precision", "fp16", "--device", "cpu"], "--precision: fp16 needs a CUDA device"),
    ]
    if not torch.backends.mps.is_available():
        cases.append((["--device", "mps"], "--device: mps requested but this machine has no MPS backend"))
    for extra, message in cases:
        for name, args in commands.items():
            res = CliRunner().invoke(app, args + extra)
            assert res.exit_code == 2 and message in res.output, (name, extra, res.output)
    res = CliRunner().invoke(app, commands["train"] + ["--precision", "int8"])
    assert res.exit_code == 2 and "--precision: there is no int8 inference" in res.output, res.output
