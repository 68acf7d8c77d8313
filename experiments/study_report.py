#!/usr/bin/env python
"""Write the study page (docs/results.md) and its plots from one run's results.json.

    python experiments/study_report.py runs/study/results.json [--page docs/results.md]

Every verdict on the page is computed here from the numbers: a paired per-seed difference whose
95 % interval lies above zero is "better", below zero "worse", otherwise "no detectable
difference" (with fewer than two seeds: "one seed, no interval").
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_plan import FINETUNE_ARMS, GATE, VISION_ARMS  # noqa: E402

# two-sided 95 % Student t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
HEADS = ("alignment", "vision", "language")
FLAT_POINTS = 1.0  # "flat": a line fitted to the last 30 % of the curve rises by at most this many points


# ----------------------------------------------------------------------------- numbers
def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95 % t interval (None for fewer than two values)."""
    if not values:
        return math.nan, None
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, None
    return m, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def fmt(values: list[float]) -> str:
    m, h = mean_ci(values)
    if math.isnan(m):
        return "-"
    return f"{m:.1f}" if h is None else f"{m:.1f} ± {h:.1f}"


def verdict(diffs: list[float]) -> str:
    m, h = mean_ci(diffs)
    if math.isnan(m):
        return "not run"
    if h is None:
        return "one seed, no interval"
    if m - h > 0:
        return "better"
    if m + h < 0:
        return "worse"
    return "no detectable difference"


def test_accuracy(run: dict, head: str, key: str = "test", only: str | None = None) -> float | None:
    """Mean word accuracy of ``head`` over the run's ``key`` sets ("test", or "unseen": the benchmark
    test splits), each set weighted by its crops; ``only``: that one set."""
    sets = [v for k, v in (run.get(key) or {}).items() if only is None or k == only]
    n = sum(s["evaluated"] for s in sets if head in s)
    return sum(s[head] * s["evaluated"] for s in sets if head in s) / n if n else None


def arm_runs(study: dict, regime: str, arm: str) -> dict[int, dict]:
    """seed -> run of one arm (done runs only)."""
    return {r["seed"]: r for r in study["runs"].values()
            if r.get("regime") == regime and r.get("arm") == arm and r["status"] == "done"}


def per_seed(study: dict, regime: str, arm: str, head: str, key: str = "test", only: str | None = None) -> dict[int, float]:
    out = {s: test_accuracy(r, head, key, only) for s, r in arm_runs(study, regime, arm).items()}
    return {s: v for s, v in out.items() if v is not None}


def paired(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """Per-seed differences a - b over the seeds both have."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def curve(out: Path, name: str, key: str) -> list[tuple[int, float]]:
    path = out / "runs" / name / "run" / "metrics.jsonl"
    if not path.is_file():
        return []
    events = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [(e["step"], e[key]) for e in events if e.get("event") == "valid" and key in e]


def flat_tail(points: list[tuple[int, float]], share: float = 0.3) -> tuple[bool, float] | None:
    """(flat?, rise in points) of the curve's last ``share`` of steps: the rise of a least-squares
    line through the validation points there (the last point at or before the window's start
    included), over the window. The highest point minus the first, the earlier measure, is biased
    upward by validation noise (the maximum of several noisy points)."""
    if len(points) < 3:
        return None
    last = points[-1][0]
    start = last * (1.0 - share)
    first = max((i for i, (s, _) in enumerate(points) if s <= start), default=0)
    tail = points[first:]
    if len(tail) < 2:
        return None
    mx = statistics.fmean(s for s, _ in tail)
    my = statistics.fmean(v for _, v in tail)
    sxx = sum((s - mx) ** 2 for s, _ in tail)
    slope = sum((s - mx) * (v - my) for s, v in tail) / sxx if sxx else 0.0
    rise = slope * (last - start)
    return rise <= FLAT_POINTS, rise


# ----------------------------------------------------------------------------- plots
def plot_accuracy(study: dict, regimes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(regimes), figsize=(5.5 * len(regimes), 3.8), squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        for k, head in enumerate(("alignment", "vision")):
            for j, arm in enumerate(FINETUNE_ARMS):
                vals = list(per_seed(study, regime, arm, head).values())
                m, h = mean_ci(vals)
                x = j + (k - 0.5) * 0.38
                ax.bar(x, 0 if math.isnan(m) else m, 0.36, yerr=h or 0, capsize=3,
                       color=("C0", "C1")[k], label=head if j == 0 else None)
                ax.plot([x] * len(vals), vals, "k.", ms=4)
        ax.set_xticks(range(len(FINETUNE_ARMS)), [a.replace("_", "\n") for a in FINETUNE_ARMS], fontsize=8)
        ax.set_title(f"regime {regime}: test word accuracy (mean, 95 % CI, seeds)")
        ax.set_ylabel("%")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pseudo(study: dict, regimes: list[str], path: Path) -> None:
    """Accuracy of the kept pseudo-labels and the kept share of words against the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(regimes), figsize=(5.5 * len(regimes), 3.8), squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        series = [("source model (before), vision", [study["runs"]["teacher"]], "vision")]
        for arm in ("semimtr", "supervised"):
            series.append((f"after {arm}, alignment", list(arm_runs(study, regime, arm).values()), "alignment"))
        for k, (label, runs, head) in enumerate(series):
            tables = [r["pseudo"][regime][head]["thresholds"] for r in runs if r.get("pseudo", {}).get(regime)]
            if not tables:
                continue
            ts = [t["threshold"] for t in tables[0]]
            acc = [statistics.fmean([tb[i]["accuracy"] or 0.0 for tb in tables]) for i in range(len(ts))]
            kept = [statistics.fmean([tb[i]["kept_percent"] for tb in tables]) for i in range(len(ts))]
            ax.plot(ts, acc, "o-", color=f"C{k}", label=f"{label}: accuracy of kept")
            ax.plot(ts, kept, "s--", color=f"C{k}", alpha=0.6, label=f"{label}: words kept")
        ax.set_xlabel("threshold (every slot above it)")
        ax.set_ylabel("%")
        ax.set_title(f"regime {regime}: pseudo-labels of the unlabeled pool")
        if ax.get_legend_handles_labels()[0]:  # no finished run: an empty panel, no legend
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(study: dict, out: Path, regimes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    if "teacher" in study["runs"]:
        panels.append(("source model (vision, valid A)", [("teacher", "teacher", "vision")]))
    vision = [(n, r["arm"], "vision") for n, r in study["runs"].items() if r.get("arm") in VISION_ARMS]
    if vision:
        panels.append(("vision arms from scratch (valid A)", vision))
    for regime in regimes if study.get("plan", "finetune") == "finetune" else []:
        panels.append((f"fine-tuning, regime {regime} (alignment, valid {regime})",
                       [(n, r["arm"], "alignment") for n, r in study["runs"].items()
                        if r.get("regime") == regime and r.get("arm") in FINETUNE_ARMS]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    colors = {a: f"C{i}" for i, a in enumerate(list(FINETUNE_ARMS) + list(VISION_ARMS) + ["teacher"])}
    for ax, (title, runs) in zip(axes[0], panels):
        seen = set()
        for name, arm, key in runs:
            pts = curve(out, name, key)
            if pts:
                ax.plot(*zip(*pts), color=colors[arm], alpha=0.8, label=None if arm in seen else arm)
                seen.add(arm)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("word accuracy %")
        if seen:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- page
def paired_table(w, study: dict, regime: str, key: str, title: str) -> None:
    """Each consistency arm minus supervised-only, per head, on the runs' ``key`` sets, with verdicts."""
    w(title)
    w("| arm | head | difference | per seed | verdict |")
    w("|---|---|---|---|---|")
    for arm, (label, _) in FINETUNE_ARMS.items():
        if arm == "supervised":
            continue
        for head in ("alignment", "vision"):
            d = paired(per_seed(study, regime, arm, head, key), per_seed(study, regime, "supervised", head, key))
            w(f"| {label} | {head} | {fmt(d)} | {', '.join(f'{x:+.1f}' for x in d) or '-'} | {verdict(d)} |")
    w("")


def finetune_section(w, study: dict, out: Path, regime: str) -> None:
    seeds = study["seeds"]
    tests = ", ".join(f"`{t}`" for t in study["regimes"][regime]["test"])
    w(f"### Regime {regime}: test word accuracy (%, {tests}; mean ± 95 % CI over seeds {seeds})\n")
    w("| arm | alignment | vision | language | alignment per seed |")
    w("|---|---|---|---|---|")
    for arm, (label, _) in FINETUNE_ARMS.items():
        cells = [fmt(list(per_seed(study, regime, arm, h).values())) for h in HEADS]
        each = ", ".join(f"{v:.1f}" for _, v in sorted(per_seed(study, regime, arm, "alignment").items()))
        w(f"| {label} | " + " | ".join(cells) + f" | {each or '-'} |")
    teacher = study["runs"]["teacher"]
    if teacher["status"] == "done":
        sets = [t for t in teacher.get("test", {}) if t in study["regimes"][regime]["test"]]
        n = sum(teacher["test"][t]["evaluated"] for t in sets)
        acc = sum(teacher["test"][t]["vision"] * teacher["test"][t]["evaluated"] for t in sets) / n if n else math.nan
        w(f"\nThe source model alone (before fine-tuning, vision head): {acc:.1f} %.\n")
    paired_table(w, study, regime, "test", "\nPaired per-seed differences against supervised-only (points, 95 % CI):\n")
    checks = [flat_tail(curve(out, f"{regime}_supervised_s{s}", "alignment")) for s in seeds]
    rises = [f"seed {s}: {c[1]:+.1f}" + ("" if c[0] else " (still rising)") for s, c in zip(seeds, checks) if c]
    if rises:
        flat = all(c[0] for c in checks if c)
        w(f"Supervised arm converged (a line fitted to its validation points over the last 30 % of steps rises by "
          f"at most {FLAT_POINTS:g} point): **{'yes' if flat else 'no'}** ({'; '.join(rises)}). Under the cosine "
          "schedule this test also counts the final annealing as a rise; experiments/README.md (\"How many steps "
          "the supervised arm needs\") compares the supervised arm at 4x and 12x the steps.\n")


def unseen_section(w, study: dict, regime: str) -> None:
    """The regime's models on benchmark test splits that no run trained or was selected on."""
    sets = list(study["regimes"][regime].get("unseen") or {})
    if not sets:
        return
    names = [s.removeprefix("U_") for s in sets]
    w(f"### Regime {regime} on real crops the study never saw (benchmark test splits; mean ± 95 % CI over seeds)\n")
    w(f"Each run's validation-selected checkpoint, scored after training on {', '.join(names)} "
      "(`prepare_real_crops.py --unseen-out`; IC13 is left out because its images largely repeat IC03's, "
      "which regime B trains on). \"all\" weights each set by its crops.\n")
    w("| arm | head | " + " | ".join(names) + " | all |")
    w("|---|---|" + "---|" * (len(names) + 1))
    teacher = study["runs"].get("teacher", {})
    if teacher.get("unseen"):
        cells = [f"{test_accuracy(teacher, 'vision', 'unseen', s):.1f}" for s in sets]
        w(f"| source model (before fine-tuning) | vision | " + " | ".join(cells)
          + f" | {test_accuracy(teacher, 'vision', 'unseen'):.1f} |")
    for arm, (label, _) in FINETUNE_ARMS.items():
        for head in ("alignment", "vision"):
            cells = [fmt(list(per_seed(study, regime, arm, head, "unseen", s).values())) for s in sets]
            w(f"| {label} | {head} | " + " | ".join(cells) + f" | {fmt(list(per_seed(study, regime, arm, head, 'unseen').values()))} |")
    paired_table(w, study, regime, "unseen",
                 "\nPaired per-seed differences against supervised-only on all unseen crops (points, 95 % CI):\n")


def pseudo_section(w, study: dict, regime: str) -> None:
    w(f"### Regime {regime}: pseudo-labels of the unlabeled pool (weak view; word accuracy, and slots passing 0.9)\n")
    w("| model | head | word accuracy % | slots passing 0.9 % | words kept at 0.9 % | accuracy of kept at 0.9 % |")
    w("|---|---|---|---|---|---|")
    rows = [("source model (before fine-tuning)", [study["runs"]["teacher"]], "vision")]
    for arm, (label, _) in FINETUNE_ARMS.items():
        for head in ("alignment", "vision"):
            rows.append((f"after: {label}", list(arm_runs(study, regime, arm).values()), head))
    for label, runs, head in rows:
        ps = [r["pseudo"][regime][head] for r in runs if r.get("status") == "done" and (r.get("pseudo") or {}).get(regime)]
        if not ps:
            continue
        at = [next(t for t in p["thresholds"] if abs(t["threshold"] - 0.9) < 1e-9) for p in ps]
        kept_acc = [t["accuracy"] for t in at if t["accuracy"] is not None]
        w(f"| {label} | {head} | {fmt([p['accuracy'] for p in ps])} | {fmt([t['slots_kept_percent'] for t in at])} | "
          f"{fmt([t['kept_percent'] for t in at])} | {fmt(kept_acc)} |")
    w("")


def vision_section(w, study: dict) -> None:
    seeds = study["seeds"]
    w(f"Both from scratch, {study['steps']['vision']} steps, the same LR schedule; test = regime A's test sets, "
      f"vision head, last validation-selected checkpoint; seeds {seeds}.\n")
    w("| arm | test word accuracy % | per seed |")
    w("|---|---|---|")
    for arm, (label, _) in VISION_ARMS.items():
        vals = per_seed(study, "A", arm, "vision")
        w(f"| {label} | {fmt(list(vals.values()))} | {', '.join(f'{v:.1f}' for _, v in sorted(vals.items())) or '-'} |")
    d = paired(per_seed(study, "A", "vis_seqclr", "vision"), per_seed(study, "A", "vis_ce", "vision"))
    w(f"\nCE + SeqCLR minus CE only: {fmt(d)} points ({', '.join(f'{x:+.1f}' for x in d) or '-'}): **{verdict(d)}**.\n")


def header(w, study: dict, title: str) -> None:
    m, t = study["machine"], study["timing"]
    w(f"# {title}\n")
    if study.get("quick"):
        w("**This page comes from a --quick smoke run: its numbers mean nothing.**\n")
    w(f"Generated by `{study['command']}` ({t['total_s'] / 60:.1f} min wall; {m['cpu']}, {m['cpu_count']} cores, "
      f"flags {', '.join(m.get('cpu_flags') or []) or 'no bf16/AMX'}, torch {m['torch']}, {study['lanes']} runs side by "
      f"side with {study['threads_per_run']} thread each; load average at start {m['load_average_at_start'][0]:.2f}). "
      "Every number and verdict below is computed from that run by experiments/study_report.py; see "
      "experiments/README.md for the design.\n")
    if study.get("sources"):
        src = study["sources"]
        w(f"The source model and the LM were trained by `{src['command']}` ({src['timing']['total_s'] / 60:.1f} min "
          f"wall; {src['machine']['cpu']}) and reused here.\n")


def runs_section(w, study: dict, number: int) -> None:
    bad = [(n, r) for n, r in study["runs"].items() if r["status"] != "done"]
    w(f"## {number}. Runs\n")
    w(f"{len(study['runs']) - len(bad)} of {len(study['runs'])} runs finished.")
    for n, r in bad:
        w(f"- `{n}`: {r['status']} ({r['note']})")
    reused = [n for n, r in study["runs"].items() if r.get("reused")]
    if reused:
        w(f"- reused, finished by an earlier run_study.py command with the same settings: {', '.join(f'`{n}`' for n in reused)}")
    w("")


def finetune_page(w, study: dict, out: Path, figs: Path) -> None:
    regimes = list(study["regimes"])
    plot_accuracy(study, regimes, figs / "accuracy.png")
    plot_pseudo(study, regimes, figs / "pseudo_labels.png")
    plot_curves(study, out, regimes, figs / "curves.png")
    header(w, study, "The reproduction study: SemiMTR's claims where they can hold")
    s, gate = study["steps"], study["gate"]
    w(f"Plan (from step times measured on this machine at the start): source model {s['teacher']} steps, language "
      f"model {s['lm']}, fine-tuning arms {s['finetune']} steps each.\n")
    acc = gate["teacher_valid_accuracy"]
    w(f"**Teacher gate** (source model reads >= {GATE:g} % of regime-A validation words): "
      f"{'-' if acc is None else f'{acc:.1f} %'}, **{'passed' if gate['passed'] else 'not passed'}**.\n")
    w("![test accuracy](results/accuracy.png)\n")
    w("## 1. Fine-tuning: supervised-only against consistency regularization\n")
    w("Every arm starts from the same source model + language model, sees the same labeled crops per step in "
      "expectation (supervised batch 16 = the labeled half of the consistency batch of 32), follows the same LR "
      "schedule and keeps the checkpoint chosen on its regime's validation set (alignment head).\n")
    for regime in regimes:
        finetune_section(w, study, out, regime)
        unseen_section(w, study, regime)
    w("## 2. Pseudo-labels before and after fine-tuning\n")
    w("![pseudo-labels](results/pseudo_labels.png)\n")
    for regime in regimes:
        pseudo_section(w, study, regime)
    w("## 3. Vision pre-training: CE only against CE + SeqCLR\n")
    vision_page = figs.parent / "results-vision.md"
    w("Its own plan and page, since from-scratch arms long enough to leave the plateau do not fit beside the "
      "fine-tuning arms in one 90-minute budget: `python experiments/run_study.py --plan vision` writes "
      + ("[results-vision.md](results-vision.md).\n" if vision_page.is_file() else
         "`results-vision.md`; **not run yet** for this study.\n"))
    w("## 4. Learning curves\n")
    w("![curves](results/curves.png)\n")
    runs_section(w, study, 5)


def vision_page(w, study: dict, out: Path, figs: Path) -> None:
    plot_curves(study, out, [], figs / "vision_curves.png")
    header(w, study, "The reproduction study: vision pre-training, CE only against CE + SeqCLR")
    w("## 1. Test word accuracy\n")
    vision_section(w, study)
    w("## 2. Learning curves\n")
    w("![curves](results/vision_curves.png)\n")
    runs_section(w, study, 3)


def with_kept_sections(old: str, new: str) -> str:
    """``new`` with the sections other scripts keep on the page (``<!-- BEGIN name ... -->`` up to
    ``<!-- END name -->`` in ``old``, e.g. benchmarks/adapt_gain.py's) put back before its first ``## ``."""
    kept = re.findall(r"<!-- BEGIN .*?<!-- END [^>]*-->", old, flags=re.S)
    if not kept:
        return new
    i = new.find("\n## ")
    i = len(new) if i < 0 else i + 1
    return new[:i] + "\n\n".join(kept) + "\n\n" + new[i:]


def write_report(study: dict, out: Path, page: Path) -> None:
    """Write ``page`` and its plots (``<page dir>/results/*.png``) from ``study`` (one plan's results)."""
    out, page = Path(out), Path(page)
    figs = page.parent / "results"
    figs.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    (vision_page if study.get("plan") == "vision" else finetune_page)(lines.append, study, out, figs)
    page.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if page.is_file():
        text = with_kept_sections(page.read_text(encoding="utf-8"), text)
    tmp = page.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(page)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results.json (or results-vision.json) of a study run")
    ap.add_argument("--page", type=Path, default=None,
                    help="default docs/results.md, or docs/results-vision.md for a vision plan")
    args = ap.parse_args(argv)
    study = json.loads(args.results.read_text())
    docs = Path(__file__).resolve().parents[1] / "docs"
    args.page = args.page or docs / ("results-vision.md" if study.get("plan") == "vision" else "results.md")
    write_report(study, args.results.parent, args.page)
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
