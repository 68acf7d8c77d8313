"""benchmarks/adapt_gain.py runs the README quickstart's lines (so its numbers are the README's),
and summarises seeds into means and intervals."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    sys.path.insert(0, str(ROOT / "experiments"))
    spec = importlib.util.spec_from_file_location("adapt_gain", ROOT / "benchmarks" / "adapt_gain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quickstart_lines() -> list[str]:
    """The README quickstart block, one string per command (continuation lines joined)."""
    block = (ROOT / "README.md").read_text().split("## Quickstart")[1].split("```bash\n")[1].split("```")[0]
    joined = block.replace("\\\n", " ")
    return [" ".join(line.split("#")[0].split()) for line in joined.splitlines() if line.strip().startswith("semimtr")]


def test_seed_zero_runs_the_readme_commands():
    lines = _quickstart_lines()
    for name, argv in _module().commands(0, threads=2):
        core = [a for a in argv if not a.startswith(str(ROOT))]
        if name.startswith("finetune"):  # the README names the recipe by its relative path
            arm = name.split()[1]
            expected = f"semimtr finetune --recipe recipes/adapt/{arm}.yaml --out runs/adapt-{arm}"
        else:  # the benchmark's own extras (--threads, --json) come after the README's words
            cut = core.index("--threads") if "--threads" in core else len(core)
            expected = " ".join(core[:cut])
        assert any(line.startswith(expected) for line in lines), f"{name}: {expected!r} is not in the README quickstart"


def test_summary_gives_means_intervals_and_gains():
    mod = _module()
    acc = [{m: {h: base + d for h in mod.HEADS} for m, d in (("default", 0), ("supervised", 2), ("semimtr", 5))}
           for base in (60.0, 62.0, 64.0)]
    s = mod.summarise([{"seed": i, "accuracy": a} for i, a in enumerate(acc)])
    assert s["accuracy"]["semimtr"]["alignment"]["mean"] == 67.0
    assert s["unlabeled_gain"]["alignment"] == {"mean": 3.0, "ci95": 0.0, "values": [3.0, 3.0, 3.0]}
    assert s["labels_gain"]["vision"]["mean"] == 2.0 and s["accuracy"]["default"]["vision"]["ci95"] > 0
