"""Model core: shapes of every module, the official length/mask/iteration rules, configs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.config.loader import ConfigError
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.model.attention import PositionAttention
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import build_model, count_parameters
from semimtr_cli.model.language import attention_mask
from semimtr_cli.model.outputs import HeadOutput, RecognizerOutput
from semimtr_cli.model.resnet45 import ResNet45
from semimtr_cli.model.seqclr import SeqCLRHead, instances_from_sequence
from semimtr_cli.model.vision import predicted_lengths

CS = Charset.preset("36")


@pytest.fixture(scope="module")
def tiny() -> ModelConfig:
    return ModelConfig.preset("tiny")


def test_resnet45_paper_shapes_and_stage_params():
    net = ResNet45().eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 128))
    assert out.shape == (1, 512, 8, 32)
    assert count_parameters(net) == 12_994_784
    assert count_parameters(net.layer5) == 7_871_488
    assert net.layer1[0].downsample is not None and net.layer2[0].downsample is not None
    assert net.layer2[1].downsample is None
    assert net.layer1[0].conv1.kernel_size == (1, 1) and net.layer1[0].conv2.stride == (2, 2)


def test_paper_parameter_counts():
    model = build_model("full", None, CS)
    assert count_parameters(model) == 36_738_703
    assert count_parameters(model.vision.attention) == 1_076_544
    assert count_parameters(model.vision.backbone.transformer) == 9_457_152


def test_tiny_preset_parameter_counts(tiny):
    """The sizes the docs and the quickstart quote (0.87 M full, 0.56 M vision, charset 36)."""
    assert count_parameters(build_model("full", tiny, CS)) == 867_591
    assert count_parameters(build_model("vision", tiny, CS)) == 555_453


def test_vision_model_outputs(tiny):
    model = build_model("vision", tiny, CS).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 128))
    assert isinstance(out, HeadOutput)
    assert out.logits.shape == (2, 26, 37)
    assert out.feature.shape == (2, 26, 128)
    assert out.extras["attn_scores"].shape == (2, 26, 8, 32)
    assert out.extras["backbone_feature"].shape == (2, 128, 8, 32)
    assert torch.allclose(out.extras["attn_scores"].sum(dim=(2, 3)), torch.ones(2, 26), atol=1e-5)
    assert out.lengths.dtype == torch.int64


def test_position_attention_queries_do_not_depend_on_input():
    att = PositionAttention(26, in_channels=32, num_channels=8).eval()
    x = torch.randn(3, 32, 8, 32)
    vecs, scores = att(x)
    assert vecs.shape == (3, 26, 32) and scores.shape == (3, 26, 8, 32)
    # values are the input map itself: attending with the scores reproduces the output
    manual = torch.bmm(scores.flatten(2), x.flatten(2).transpose(1, 2))
    assert torch.allclose(vecs, manual, atol=1e-5)


def test_predicted_lengths_rule():
    logits = torch.full((3, 5, 4), -5.0)
    logits[0, :, 1] = 5  # no null anywhere -> T
    logits[1, :, 2] = 5
    logits[1, 2, 0] = 9  # first null at slot 2 -> 3
    logits[1, 4, 0] = 9
    logits[2, 0, 0] = 9  # null at slot 0 -> 1
    assert predicted_lengths(logits).tolist() == [5, 3, 1]


def test_language_attention_mask():
    mask = attention_mask(torch.tensor([3, 5]), 5)
    assert mask.shape == (2, 1, 5, 5)
    m0 = mask[0, 0]
    assert not m0.diagonal().any()  # never reads its own slot
    assert not m0[:, 3:].any()  # padding hidden
    assert m0[4, :3].all() and m0[0, 1:3].all()


def test_language_model_alone_and_detach(tiny):
    lm = build_model("language", tiny, CS).eval()
    probs = torch.softmax(torch.randn(2, 26, 37), -1).requires_grad_()
    out = lm(probs, torch.tensor([4, 26]))
    assert out.logits.shape == (2, 26, 37) and out.feature.shape == (2, 26, 128)
    out.logits.sum().backward()
    assert probs.grad is None  # detached input (lm_detach True)
    lm2 = build_model("language", ModelConfig.preset("tiny", lm_detach=False), CS)
    probs2 = probs.detach().clone().requires_grad_()
    lm2(probs2, torch.tensor([4, 26])).logits.sum().backward()
    assert probs2.grad is not None


def test_language_model_ignores_padding_tokens(tiny):
    lm = build_model("language", tiny, CS).eval()
    probs = torch.softmax(torch.randn(1, 26, 37), -1)
    changed = probs.clone()
    changed[0, 6:] = torch.softmax(torch.randn(20, 37), -1)
    with torch.no_grad():
        a = lm(probs, torch.tensor([6])).logits
        b = lm(changed, torch.tensor([6])).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_iterative_model_train_and_eval(tiny):
    torch.manual_seed(0)
    model = build_model("full", tiny, CS)
    x = torch.randn(2, 3, 32, 128)
    out = model.train()(x)
    assert isinstance(out, RecognizerOutput)
    assert len(out.language) == 3 and len(out.alignment) == 3
    assert out.alignment[-1].logits.shape == (2, 26, 37)
    # official in-place clamp: vision and non-final alignment lengths are >= 2
    assert out.vision.lengths.min() >= 2
    assert all(a.lengths.min() >= 2 for a in out.alignment[:-1])
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert len(out.language) == 1 and len(out.alignment) == 1
    assert out.head("alignment") is out.alignment[0]


def test_iteration_feeds_previous_alignment(tiny):
    torch.manual_seed(0)
    model = build_model("full", ModelConfig.preset("tiny", iter_size=2), CS).eval()
    x = torch.randn(2, 3, 32, 128)
    with torch.no_grad():
        out = model(x)
        v = model.vision(x)
        lengths = v.lengths.clamp(2, 26)
        l1 = model.language(torch.softmax(v.logits, -1), lengths)
        a1 = model.alignment(l1.feature, v.feature)
        l2 = model.language(torch.softmax(a1.logits, -1), a1.lengths.clamp(2, 26))
        a2 = model.alignment(l2.feature, v.feature)
    assert torch.allclose(out.alignment[0].logits, a2.logits, atol=1e-5)


def test_seqclr_instances_match_official_pooling(tiny):
    seq = torch.randn(2, 256, 16)
    ours = instances_from_sequence(seq, 5)
    official = nn.AdaptiveAvgPool2d((5, 16))(seq)
    assert torch.allclose(ours, official, atol=1e-6)
    assert torch.allclose(ours[:, 1], seq[:, 51:103].mean(1), atol=1e-6)


@pytest.mark.parametrize("scheme,params,width", [
    ("null", 0, 512), ("linear_per_column", 262_656, 512), ("bilstm", 4_727_296, 512),
    ("attn_linear_per_column", 140_837, 37)])
def test_seqclr_projection_schemes(scheme, params, width):
    cfg = ModelConfig(seqclr_scheme=scheme).resolved(CS)
    head = SeqCLRHead(cfg)
    assert count_parameters(head) == params
    out = head(torch.randn(2, 512, 8, 32))
    assert out.shape == (2, 5, width)


def test_seqclr_model(tiny):
    model = build_model("seqclr", ModelConfig.preset("tiny", seqclr_scheme="linear_per_column", seqclr_output=32), CS)
    out = model(torch.randn(2, 3, 32, 128))
    assert out.extras["instances"].shape == (2, 5, 32)
    assert {k.split(".")[0] for k in model.state_dict()} == {"vision", "seqclr_proj"}


def test_timm_backbone_adapter():
    cfg = ModelConfig.preset("tiny", backbone="timm/resnet18")
    model = build_model("vision", cfg, CS).eval()
    with torch.no_grad():
        fmap = model.backbone.cnn(torch.randn(2, 3, 32, 128))
        out = model(torch.randn(2, 3, 32, 128))
    assert fmap.shape == (2, 128, 8, 32)
    assert out.logits.shape == (2, 26, 37)
    assert "resnet" not in dict(model.backbone.named_children())


def test_unknown_timm_model_is_a_clear_error():
    with pytest.raises(SemimtrError, match="timm backbone"):
        build_model("vision", ModelConfig.preset("tiny", backbone="timm/not_a_model_xyz"), CS)


def test_config_round_trip_and_unknown_keys(tiny):
    d = tiny.to_dict()
    assert ModelConfig.from_dict(d) == tiny
    with pytest.raises(SemimtrError, match="unknown key"):
        ModelConfig.from_dict({**d, "d_modle": 3})
    with pytest.raises(SemimtrError, match="resnet_channels"):
        ModelConfig.from_dict({"d_model": 256})
    with pytest.raises(SemimtrError, match="unknown model preset"):
        ModelConfig.preset("huge")


def test_config_errors_come_from_the_config_loader(tiny):
    d = tiny.to_dict()
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_dict({**d, "d_modle": 3})
    assert str(err.value) == "model config: unknown key 'd_modle' (did you mean 'd_model'?)"
    with pytest.raises(ConfigError, match=r"^m.pt: 'activation' must be one of 'relu', 'gelu', got 'tanh'$"):
        ModelConfig.from_dict({**d, "activation": "tanh"}, source="m.pt")
    with pytest.raises(ConfigError, match=r"'seqclr_scheme' must be one of 'null', 'linear_per_column'"):
        ModelConfig.preset("tiny", seqclr_scheme="mlp")
    with pytest.raises(ConfigError, match=r"'lm_detach' must be bool, got 'yes'"):
        ModelConfig.from_dict({**d, "lm_detach": "yes"})
    # plain data as older writers stored it: integral floats/strings and tuples still load
    legacy = {**d, "resnet_channels": tuple(float(c) for c in d["resnet_channels"]), "d_model": "128"}
    assert ModelConfig.from_dict(legacy) == tiny


def test_config_must_agree_with_charset(tiny):
    with pytest.raises(SemimtrError, match="max_length"):
        build_model("vision", tiny, Charset.preset("36", max_length=10))
    with pytest.raises(SemimtrError, match="num_classes"):
        build_model("vision", ModelConfig.preset("tiny", num_classes=63), CS)
    model = build_model("vision", ModelConfig.preset("tiny"), Charset.preset("62"))
    assert model.cls.out_features == 63


def test_bf16_autocast_forward_agrees_with_fp32(tiny):
    torch.manual_seed(0)
    model = build_model("full", tiny, CS).eval()
    x = torch.randn(2, 3, 32, 128)
    with torch.no_grad():
        ref = model(x).alignment[-1].logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x).alignment[-1].logits.float()
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()  # bf16 keeps ~3 significant digits
    assert torch.equal(out.argmax(-1), ref.argmax(-1))
