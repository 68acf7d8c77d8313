"""This tool's checkpoint format: one plain dict, written atomically, read with weights_only.

Layout (format_version 1)::

    {"format": "semimtr", "format_version": 1,
     "kind": "full" | "vision" | "seqclr" | "language",
     "model_config": ModelConfig.to_dict(), "charset": Charset.to_dict(),
     "state_dict": {name: tensor}   # the model's own keys, official names (see model.factory)
     "step": int, "metrics": {name: number},
     ... optional extra entries (training state, provenance) of tensors and plain data}

Everything is tensors and primitives, so ``torch.load(weights_only=True)`` reads it and a
command needs nothing but the path.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError, option
from semimtr_cli.core.fsutil import atomic_path
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import MODEL_KINDS, build_model
from semimtr_cli.model.fusion import IterativeRecognizer
from semimtr_cli.model.language import BCNLanguage
from semimtr_cli.model.seqclr import SeqCLRModel
from semimtr_cli.model.vision import VisionModel

FORMAT = "semimtr"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("kind", "model_config", "charset", "state_dict")


def kind_of(model: nn.Module) -> str:
    """The checkpoint kind of a model built by :func:`build_model`."""
    for cls, kind in ((IterativeRecognizer, "full"), (SeqCLRModel, "seqclr"), (VisionModel, "vision"), (BCNLanguage, "language")):
        if isinstance(model, cls):
            return kind
    raise SemimtrError(f"cannot checkpoint a {type(model).__name__}; build models with model.factory.build_model")


def make_checkpoint(model: nn.Module, charset: Charset, *, step: int = 0, metrics: dict | None = None,
                    extra: dict[str, Any] | None = None) -> dict:
    """The checkpoint dict of ``model`` (state dict copied to CPU)."""
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind_of(model),
        "model_config": model.config.to_dict(),
        "charset": charset.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "step": int(step),
        "metrics": dict(metrics or {}),
    }
    for key, value in (extra or {}).items():
        if key in ckpt:
            raise SemimtrError(f"checkpoint extra entry {key!r} would overwrite a core entry")
        ckpt[key] = value
    return ckpt


def write_checkpoint(path: str | Path, ckpt: dict) -> Path:
    """Write a checkpoint dict atomically (temp file + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def save_checkpoint(path: str | Path, model: nn.Module, charset: Charset, *, step: int = 0,
                    metrics: dict | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Save ``model`` with its config and charset to ``path`` atomically; returns the path."""
    return write_checkpoint(path, make_checkpoint(model, charset, step=step, metrics=metrics, extra=extra))


DEFAULT_MODEL = "default"  # accepted wherever a checkpoint path is: the model that ships in the package
PACKAGED_MODEL = "default_model.pt"


def packaged_model_path() -> Path:
    """Where the shipped model lives inside the installed package (resources/default_model.pt)."""
    from importlib import resources

    return Path(str(resources.files("semimtr_cli").joinpath("resources", PACKAGED_MODEL)))


def resolve_checkpoint(path: str | Path) -> Path:
    """``default`` -> the shipped model's file; any other value -> that path (not checked here)."""
    if str(path) != DEFAULT_MODEL:
        return Path(path)
    shipped = packaged_model_path()
    if not shipped.is_file():
        raise SemimtrError(f"this installation ships no default model ({shipped} is missing); give a checkpoint path")
    return shipped


def torch_load_safely(path: str | Path, *, trust_pickle: bool = False) -> Any:
    """``torch.load`` on CPU with ``weights_only=True`` unless ``trust_pickle``.

    Raises:
        SemimtrError: missing file, not a torch file, or a file that needs arbitrary unpickling
            (the message says to pass --trust-pickle if the file is trusted).
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise SemimtrError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if trust_pickle:
            raise SemimtrError(f"{path}: cannot be read ({exc})") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise SemimtrError(
                f"{path}: refusing to unpickle arbitrary objects (weights_only load failed: {first[:200]}); "
                f"pass {option('trust_pickle')} only if you trust this file"
            ) from None
        raise SemimtrError(f"{path}: not a PyTorch checkpoint ({first[:200]})") from None
    except Exception as exc:  # torch.load raises many types (KeyError, RuntimeError, EOFError ...) for junk
        raise SemimtrError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None


def validate_checkpoint(ckpt: Any, source: str = "checkpoint") -> dict:
    """Check that ``ckpt`` is a semimtr checkpoint dict; return it. ``source`` names it in errors."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and ("model" in ckpt or "state_dict" in ckpt or all(torch.is_tensor(v) for v in ckpt.values())):
            hint = " (it looks like an official SemiMTR/ABINet file: import it with `semimtr convert`)"
        raise SemimtrError(f"{source}: not a semimtr checkpoint{hint}")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SemimtrError(f"{source}: checkpoint format_version {version!r} is newer than this tool reads ({FORMAT_VERSION})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise SemimtrError(f"{source}: checkpoint lacks {missing}")
    if ckpt["kind"] not in MODEL_KINDS:
        raise SemimtrError(f"{source}: unknown model kind {ckpt['kind']!r}")
    return ckpt


def load_checkpoint(path: str | Path) -> dict:
    """Read and validate a semimtr checkpoint (weights_only, on CPU)."""
    return validate_checkpoint(torch_load_safely(path), str(path))


def load_state_dict_strict(model: nn.Module, state_dict: dict, source: str) -> None:
    """Load with every key accounted for.

    Raises:
        SemimtrError: listing missing keys, unexpected keys and shape mismatches (never ignored).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    problems = describe_key_problems(missing, unexpected, shapes)
    if problems:
        raise SemimtrError(f"{source}: state dict does not fit the model: {problems}")
    model.load_state_dict(state_dict, strict=True)


def describe_key_problems(missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    """One line listing missing keys, unexpected keys and shape mismatches ('' if none)."""
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {_listing(shapes)}")
    return "; ".join(problems)


def _listing(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}{more}]"


def model_from_checkpoint(path_or_ckpt: str | Path | dict) -> tuple[nn.Module, Charset, dict]:
    """(model in eval mode with the saved weights, its charset, the checkpoint dict)."""
    if isinstance(path_or_ckpt, dict):
        source = "checkpoint"
        ckpt = validate_checkpoint(path_or_ckpt, source)
    else:
        source = str(path_or_ckpt)
        ckpt = load_checkpoint(path_or_ckpt)
    try:
        charset = Charset.from_dict(ckpt["charset"])
        config = ModelConfig.from_dict(ckpt["model_config"])
    except (TypeError, KeyError) as exc:
        raise SemimtrError(f"{source}: malformed charset/model_config ({exc})") from None
    except SemimtrError as exc:
        raise SemimtrError(f"{source}: {exc}") from None
    model = build_model(ckpt["kind"], config, charset)
    load_state_dict_strict(model, ckpt["state_dict"], source)
    return model.eval(), charset, ckpt


CALIBRATION_KEY = "calibration"


def stored_calibration(ckpt: dict) -> dict | None:
    """The calibration entry of a checkpoint dict, or None."""
    entry = ckpt.get(CALIBRATION_KEY)
    return entry if isinstance(entry, dict) and entry.get("temperature") else None
