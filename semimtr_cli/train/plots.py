"""Training curves from a run folder's metrics.jsonl (matplotlib, headless)."""

from __future__ import annotations

import json
from pathlib import Path

from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.core.fsutil import atomic_path


def read_metrics(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """(train events, validation events) of a run folder."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise SemimtrError(f"{run_dir}: no metrics.jsonl (not a run folder?)")
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [e for e in events if e.get("event") == "train"], [e for e in events if e.get("event") == "valid"]


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw loss (left) and validation metrics (right) against steps; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter

    train, valid = read_metrics(run_dir)
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_loss.plot([e["step"] for e in train], [e["loss"] for e in train], label="loss")
        ax_loss.set_yscale("log")
        # plain-text tick labels: the default mathtext ones cost ~0.8 s of every run's end
        ax_loss.yaxis.set_major_formatter(LogFormatter())
        ax_loss.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    keys = sorted({k for e in valid for k in e if k not in ("step", "epoch", "event") and "/" not in k})
    for key in keys:
        pts = [(e["step"], e[key]) for e in valid if key in e]
        ax_val.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
    ax_val.set(xlabel="step", ylabel="percent", title="validation")
    if keys:
        ax_val.legend()
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
