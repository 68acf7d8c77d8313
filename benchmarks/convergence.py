"""Accuracy against optimizer steps and wall seconds for each quickstart stage (JSON + PNG).

    python benchmarks/convergence.py                       # runs the three cpu-tiny stages itself
    python benchmarks/convergence.py --from-runs runs/tiny-vision runs/tiny-lm runs/tiny-finetune

Without ``--from-runs`` it trains the README quickstart's three stages (recipes/cpu-tiny, the
step counts of the recipes unless ``--steps`` scales them) into ``--work``, then reads their
``metrics.jsonl``. For every stage it records each validation event (step, seconds, the
stage's metrics) and the first step/second at which the stage's main metric passed 10 % and
50 % (90 % too). Writes ``benchmarks/results/convergence.json`` and
``docs/performance/convergence.png``, with the machine (CPU model and flags, threads,
precision chosen) so the numbers can be compared across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {  # stage -> (recipe, main metric, other metrics to plot)
    "pretrain-vision": ("recipes/cpu-tiny/pretrain_vision.yaml", "vision", ()),
    "pretrain-lm": ("recipes/cpu-tiny/pretrain_lm.yaml", "exact", ("exact_vocab",)),
    "finetune": ("recipes/cpu-tiny/finetune.yaml", "alignment", ("vision", "language")),
}
THRESHOLDS = (10.0, 50.0, 90.0)


def read_run(run: Path) -> dict:
    """Validation curve and first-passing points of one run folder."""
    summary = json.loads((run / "summary.json").read_text())
    stage = summary["stage"]
    main, others = STAGES[stage][1], STAGES[stage][2]
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    valid = [e for e in events if e["event"] == "valid"]
    curve = [{"step": e["step"], "seconds": e.get("seconds"), **{k: e[k] for k in (main, *others) if k in e},
              **{k: v for k, v in e.items() if "/" in k}} for e in valid]
    first = {}
    for t in THRESHOLDS:
        hit = next((c for c in curve if c.get(main, 0.0) >= t), None)
        first[f"{t:g}%"] = None if hit is None else {"step": hit["step"], "seconds": hit["seconds"]}
    return {"stage": stage, "run": str(run), "main_metric": main, "curve": curve, "first_passing": first,
            "steps": summary["steps"], "wall_seconds": summary["wall_seconds"], "precision": summary.get("precision"),
            "precision_reason": summary.get("precision_reason"), "final": summary.get("last_validation", {})}


def run_stages(work: Path, steps_scale: float) -> list[Path]:
    """Train the three cpu-tiny stages in order (each initialised as the README does)."""
    work.mkdir(parents=True, exist_ok=True)
    runs = {name: work / name for name in STAGES}
    for stage, (recipe, _, _) in STAGES.items():
        out = runs[stage]
        if (out / "summary.json").is_file():
            continue
        cmd = [sys.executable, "-m", "semimtr_cli.cli.app", stage, "--recipe", str(ROOT / recipe), "--out", str(out)]
        if steps_scale != 1.0:
            import yaml

            steps = yaml.safe_load((ROOT / recipe).read_text())["train"]["max_steps"]
            cmd += ["--max-steps", str(max(1, int(steps * steps_scale)))]
        if stage == "finetune":
            cmd += ["--init-vision", str(runs["pretrain-vision"] / "best.pt"),
                    "--init-language", str(runs["pretrain-lm"] / "best.pt")]
        t = time.time()
        subprocess.run(cmd, check=True, cwd=ROOT)
        print(f"{stage}: {time.time() - t:.0f} s", flush=True)
    return list(runs.values())


def plot(stages: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(stages), figsize=(4.2 * len(stages), 6.5), squeeze=False)
    for col, st in enumerate(stages):
        keys = [STAGES[st["stage"]][1], *STAGES[st["stage"]][2]]
        for row, x in enumerate(("step", "seconds")):
            ax = axes[row][col]
            for k in keys:
                pts = [(c[x], c[k]) for c in st["curve"] if k in c and c.get(x) is not None]
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=3, label=k)
            ax.set_xlabel("optimizer steps" if x == "step" else "wall seconds")
            ax.set_ylabel("validation accuracy (%)")
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            ax.set_title(f"{st['stage']} ({st['precision']})", fontsize=10)
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from-runs", nargs="+", type=Path, help="read these finished run folders instead of training")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "convergence", help="where to train when not --from-runs")
    p.add_argument("--steps", type=float, default=1.0, help="scale every recipe's max_steps (quick checks)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "convergence.json")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "performance" / "convergence.png")
    args = p.parse_args()

    from semimtr_cli.core.fsutil import atomic_write_json
    from semimtr_cli.core.runtime import machine_record

    runs = args.from_runs or run_stages(args.work, args.steps)
    stages = [read_run(r) for r in runs]
    result = {
        "benchmark": "convergence",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_record() | {"torch_threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or None},
        "thresholds": [f"{t:g}%" for t in THRESHOLDS],
        "stages": stages,
        "total_training_seconds": sum(s["wall_seconds"] for s in stages),
    }
    atomic_write_json(args.out, result)
    plot(stages, args.plot)
    for st in stages:
        firsts = ", ".join(f"{k}: " + ("-" if v is None else f"step {v['step']} / {v['seconds']:.0f} s")
                           for k, v in st["first_passing"].items())
        print(f"{st['stage']:16s} {st['main_metric']} {st['final'].get(st['main_metric'], float('nan')):.1f} "
              f"after {st['steps']} steps, {st['wall_seconds']:.0f} s ({st['precision']}); first passing {firsts}")
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
