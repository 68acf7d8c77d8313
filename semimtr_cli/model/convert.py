"""Importer of official SemiMTR / ABINet checkpoints into this tool's checkpoint format.

Accepted containers: a plain state dict, ``{'model': state_dict, 'opt': ...}`` (the official
fastai trainer), and Lightning-style ``{'state_dict': {'model.<key>': ...}}`` (``.ckpt``).
Accepted contents (detected from the keys, or forced with ``kind``):
    full      ``vision.*``, ``language.*``, ``alignment.*`` (ABINetIterModel and SemiMTR's
              ConsistencyRegularizationFusionModel)
    vision    ``vision.*`` (+ optional ``seqclr_proj.*``: SemiMTR's SeqCLR vision checkpoint;
              kept as kind ``seqclr`` when the head has parameters), or ABINet's bare
              ``backbone.*``/``attention.*``/``cls.*``
    language  BCNLanguage keys without prefix (``proj.weight``, ``model.layers.*``, ``cls.*``)
Model sizes are read from the tensor shapes; every key must be used and every model tensor
filled, with matching shapes, or the import fails listing the keys.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError, option
from semimtr_cli.model.checkpoint import load_state_dict_strict, save_checkpoint, torch_load_safely
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import build_model, count_parameters
from semimtr_cli.model.outputs import HEADS

IMPORT_KINDS = ("auto", "full", "vision", "language")


@dataclass
class ConvertResult:
    """What an import did (for the command's summary and JSON)."""

    source: str
    destination: str
    layout: str
    kind: str
    num_tensors: int
    num_parameters: int
    model_config: dict
    charset: str
    dropped_prefixes: list[str] = field(default_factory=list)
    ignored_entries: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------- reading
def unwrap_state_dict(obj, source: str) -> tuple[dict, str, list[str]]:
    """(state dict, layout name, ignored top-level entries) of a loaded official file."""
    if not isinstance(obj, dict) or not obj:
        raise SemimtrError(f"{source}: expected a state dict or a dict holding one, got {type(obj).__name__}")
    ignored: list[str] = []
    if isinstance(obj.get("state_dict"), dict):
        inner = obj["state_dict"]
        ignored = sorted(k for k in obj if k != "state_dict")
        if any(k.startswith("model.") for k in inner):
            outside = [k for k in inner if not k.startswith("model.")]
            if outside:
                raise SemimtrError(f"{source}: Lightning state_dict has keys outside 'model.': {outside[:12]}")
            inner = {k[len("model."):]: v for k, v in inner.items()}
        sd, layout = inner, "lightning {'state_dict': {'model.<key>': ...}}"
    elif isinstance(obj.get("model"), dict):
        sd, layout = obj["model"], "trainer {'model': state_dict, ...}"
        ignored = sorted(k for k in obj if k != "model")
    else:
        sd, layout = obj, "plain state dict"
    non_tensor = [k for k, v in sd.items() if not torch.is_tensor(v)]
    if non_tensor:
        raise SemimtrError(f"{source}: not a state dict (non-tensor entries {non_tensor[:12]})")
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd), layout, ignored


def detect_kind(sd: dict, source: str) -> str:
    """``full``, ``vision``, ``seqclr`` or ``language`` from the key names."""
    tops = {k.split(".", 1)[0] for k in sd}
    if {"vision", "language", "alignment"} <= tops:
        return "full"
    if "vision" in tops and tops <= {"vision", "seqclr_proj"}:
        return "seqclr" if "seqclr_proj" in tops else "vision"
    if {"backbone", "attention", "cls"} <= tops:
        return "vision"
    if {"proj", "model", "cls"} <= tops:
        return "language"
    raise SemimtrError(f"{source}: unrecognised official checkpoint (top-level key names {sorted(tops)[:12]})")


def _subdict(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _split_heads(sd: dict, detected: str) -> dict[str, dict]:
    """{'vision'|'language'|'alignment'|'seqclr_proj': keys relative to that module}."""
    if detected == "full":
        parts = {h: _subdict(sd, h + ".") for h in HEADS}
        other = [k for k in sd if k.split(".", 1)[0] not in HEADS]
    elif detected in ("vision", "seqclr"):
        if any(k.startswith("vision.") for k in sd):
            parts = {"vision": _subdict(sd, "vision."), "seqclr_proj": _subdict(sd, "seqclr_proj.")}
            other = [k for k in sd if k.split(".", 1)[0] not in ("vision", "seqclr_proj")]
        else:
            parts, other = {"vision": dict(sd)}, []
    else:
        parts, other = {"language": dict(sd)}, []
    if other:
        raise SemimtrError(f"unexpected keys {other[:12]}")
    return {k: v for k, v in parts.items() if v}


# ---------------------------------------------------------------------------------- sizes
def _count_indexed(sd: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in sd if (m := rx.match(k))}
    return max(found) + 1 if found else 0


def _need(sd: dict, key: str, where: str) -> torch.Tensor:
    if key not in sd:
        raise SemimtrError(f"missing key {where}{key} (needed to read the model size)")
    return sd[key]


def infer_config(parts: dict[str, dict], base: ModelConfig | None = None) -> ModelConfig:
    """Sizes read from the tensor shapes; what shapes cannot tell (heads, strides, iterations) stays ``base``."""
    cfg = dataclasses.asdict(base or ModelConfig())
    cfg["num_classes"] = None
    if "vision" in parts:
        v = parts["vision"]
        w = "vision."
        cls_w = _need(v, "cls.weight", w)
        cfg["d_model"] = int(cls_w.shape[1])
        cfg["max_length"] = int(_need(v, "attention.pos_encoder.pe", w).shape[0]) - 1
        cfg["attention_channels"] = int(_need(v, "attention.k_encoder.0.0.weight", w).shape[0])
        cfg["vision_layers"] = _count_indexed(v, r"backbone\.transformer\.layers\.(\d+)\.")
        cfg["d_inner"] = int(_need(v, "backbone.transformer.layers.0.linear1.weight", w).shape[0])
        stages = _count_indexed(v, r"backbone\.resnet\.layer(\d+)\.") - 1  # stages are numbered from 1
        if stages < 1:
            raise SemimtrError("vision weights hold no ResNet stages (backbone.resnet.layer*)")
        cfg["resnet_stem_channels"] = int(_need(v, "backbone.resnet.conv1.weight", w).shape[0])
        cfg["resnet_channels"] = [int(_need(v, f"backbone.resnet.layer{i}.0.conv1.weight", w).shape[0]) for i in range(1, stages + 1)]
        cfg["resnet_blocks"] = [_count_indexed(v, rf"backbone\.resnet\.layer{i}\.(\d+)\.") for i in range(1, stages + 1)]
        if stages != len(cfg["resnet_strides"]):
            raise SemimtrError(f"vision weights have {stages} ResNet stages; only the official 5-stage layout can be imported")
        tokens = int(_need(v, "backbone.pos_encoder.pe", w).shape[0])
        if tokens != cfg["feature_h"] * cfg["feature_w"]:
            raise SemimtrError(f"backbone positional table has {tokens} rows, expected {cfg['feature_h']}x{cfg['feature_w']}")
        cfg["num_classes"] = int(cls_w.shape[0])
    if "language" in parts:
        lm = parts["language"]
        w = "language."
        cls_w = _need(lm, "cls.weight", w)
        cfg["d_model"] = int(cls_w.shape[1])
        cfg["max_length"] = int(_need(lm, "pos_encoder.pe", w).shape[0]) - 1
        cfg["lm_layers"] = _count_indexed(lm, r"model\.layers\.(\d+)\.")
        cfg["d_inner"] = int(_need(lm, "model.layers.0.linear1.weight", w).shape[0])
        cfg["num_classes"] = int(cls_w.shape[0])
    proj = parts.get("seqclr_proj", {})
    if "projection.rnn.weight_hh_l0" in proj:
        cfg.update(seqclr_scheme="bilstm", seqclr_hidden=int(proj["projection.rnn.weight_hh_l0"].shape[1]),
                   seqclr_output=int(_need(proj, "projection.linear.weight", "seqclr_proj.").shape[0]))
    elif "projection.w_att.weight" in proj:
        cfg.update(seqclr_scheme="attn_linear_per_column", seqclr_hidden=int(proj["projection.w_att.weight"].shape[0]),
                   seqclr_output=int(_need(proj, "projection.cls.weight", "seqclr_proj.").shape[0]))
    elif "projection.weight" in proj:
        cfg.update(seqclr_scheme="linear_per_column", seqclr_output=int(proj["projection.weight"].shape[0]))
    elif proj:
        raise SemimtrError(f"unrecognised seqclr_proj keys {sorted(proj)[:12]}")
    if "vision" not in parts:  # vision sizes are unused; keep the config consistent with d_model
        cfg["resnet_channels"] = list(cfg["resnet_channels"][:-1]) + [cfg["d_model"]]
    if cfg["d_model"] % cfg["nhead"] != 0:
        cfg["nhead"] = 1
    return ModelConfig.from_dict(cfg)


# ---------------------------------------------------------------------------------- import
def import_official(obj, *, kind: str = "auto", charset: str | Charset | None = "36", source: str = "checkpoint"):
    """Official checkpoint object (as loaded) -> (model with its weights, charset, ConvertResult fields).

    ``kind``: ``auto`` (from the keys) or ``full``/``vision``/``language`` to force (or to
    extract: ``vision`` or ``language`` out of a full model; the other parts are dropped and
    reported).
    """
    if kind not in IMPORT_KINDS:
        raise SemimtrError(f"unknown {option('kind')} {kind!r}; expected one of {IMPORT_KINDS}")
    sd, layout, ignored = unwrap_state_dict(obj, source)
    detected = detect_kind(sd, source)
    try:
        parts = _split_heads(sd, detected)
    except SemimtrError as exc:
        raise SemimtrError(f"{source}: {exc}") from None
    target = detected if kind == "auto" else kind
    dropped: list[str] = []
    if target == "full" and detected != "full":
        raise SemimtrError(f"{source}: holds a {detected} model, not a full recognizer (use {option('kind')} auto)")
    if target == "vision":
        if "vision" not in parts:
            raise SemimtrError(f"{source}: holds a {detected} model without vision weights")
        dropped = [p + ".*" for p in parts if p != "vision"]
        parts = {"vision": parts["vision"]}
    if target == "language":
        if "language" not in parts:
            raise SemimtrError(f"{source}: holds a {detected} model without language-model weights")
        dropped = [p + ".*" for p in parts if p != "language"]
        parts = {"language": parts["language"]}
    if target == "seqclr" and "seqclr_proj" not in parts:
        target = "vision"
    try:
        config = infer_config(parts)
    except SemimtrError as exc:
        raise SemimtrError(f"{source}: {exc}") from None
    cs = charset if isinstance(charset, Charset) else Charset.from_spec(charset, max_length=config.max_length)
    if cs.max_length != config.max_length:
        cs = dataclasses.replace(cs, max_length=config.max_length)
    if config.num_classes != cs.num_classes:
        raise SemimtrError(
            f"{source}: classifier has {config.num_classes} classes but charset '{cs.name}' has {cs.num_classes} "
            f"({len(cs.symbols)} symbols + null); pass the matching {option('charset')}"
        )
    model = build_model(target, config, cs)
    if target == "full":
        state = {f"{h}.{k}": v for h in HEADS for k, v in parts.get(h, {}).items()}
    elif target == "seqclr":
        state = {f"{h}.{k}": v for h in ("vision", "seqclr_proj") for k, v in parts.get(h, {}).items()}
    else:
        state = parts[target]
    load_state_dict_strict(model, state, source)
    info = dict(layout=layout, kind=target, num_tensors=len(state), dropped_prefixes=dropped, ignored_entries=ignored)
    return model.eval(), cs, info


def convert_checkpoint(src: str | Path, dst: str | Path, *, kind: str = "auto", charset: str | None = "36",
                       trust_pickle: bool = False) -> ConvertResult:
    """Read an official checkpoint file and write it as a semimtr checkpoint (atomically).

    This is what ``semimtr convert`` runs. Raises SemimtrError for unreadable files, files that
    need arbitrary unpickling (unless ``trust_pickle``), unknown layouts, and any key or shape
    that does not fit.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise SemimtrError(f"{dst}: destination must differ from the source file")
    obj = torch_load_safely(src, trust_pickle=trust_pickle)
    model, cs, info = import_official(obj, kind=kind, charset=charset, source=str(src))
    provenance = {"path": str(src), "layout": info["layout"], "dropped": info["dropped_prefixes"]}
    save_checkpoint(dst, model, cs, step=0, metrics={}, extra={"imported_from": provenance})
    return ConvertResult(
        source=str(src), destination=str(dst), layout=info["layout"], kind=info["kind"],
        num_tensors=info["num_tensors"], num_parameters=count_parameters(model),
        model_config=model.config.to_dict(), charset=cs.name,
        dropped_prefixes=info["dropped_prefixes"], ignored_entries=info["ignored_entries"],
    )
