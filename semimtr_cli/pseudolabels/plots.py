"""Pseudo-label histograms as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semimtr_cli.core.fsutil import atomic_path
from semimtr_cli.pseudolabels.stats import PseudoLabels


def plot_histograms(result: PseudoLabels, out_dir: str | Path) -> list[Path]:
    """``confidence_hist.png`` (with threshold lines) and ``length_hist.png`` in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    conf = [r["confidence"] for r in result.rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.hist(conf, bins=40, range=(0, 1), color="#4477aa")
    for t in result.thresholds:
        ax.axvline(t, color="#cc3311", lw=0.8, ls="--")
        ax.text(t, ax.get_ylim()[1] * 0.95, f"{t:g}", rotation=90, va="top", ha="right", fontsize=7, color="#cc3311")
    ax.set_xlabel(f"teacher confidence ({result.settings.get('confidence', 'product')})")
    ax.set_ylabel("samples")
    ax.set_title(f"confidence, {len(conf)} samples ({result.settings.get('head')}, {result.settings.get('view')} view)")
    written.append(_save(fig, out_dir / "confidence_hist.png"))

    lengths = [r["length"] for r in result.rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    hi = max(lengths) if lengths else 1
    ax.hist(lengths, bins=np.arange(0.5, hi + 1.5, 1), color="#228833")
    ax.set_xlabel("teacher length (characters + stop slot)")
    ax.set_ylabel("samples")
    ax.set_title("pseudo-label length")
    written.append(_save(fig, out_dir / "length_hist.png"))
    return written


def _save(fig, path: Path) -> Path:
    """Lay out ``fig``, write it as a PNG atomically, close it, return ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
