"""Write docs/model-card.md from what the shipped model's runs and benchmarks recorded.

    python experiments/model_card.py --runs runs/default --compare benchmarks/results/compare_ocr.json \
        [--calibration runs/default/calibration.json] [--segments experiments/default_model_segments.json]

Reads each stage's ``summary.json`` (steps, hours, images/s, precision, machine, best validation;
kept in experiments/results/default_model_stages.json, since run folders do not outlive a machine),
the six-benchmark table of ``benchmarks/compare_ocr.py`` (the shipped model beside RapidOCR) and,
when given, ``semimtr calibrate --json``'s report (ECE before/after). ``--segments`` is a JSON
list of the training segments as they really ran (sessions, warm restarts, deviations from the
recipes), copied into the card's segment table. Nothing is measured here: every number comes
from those files, so the card can be regenerated after each training segment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"1a-vision": "stage 1a: vision from scratch, clean crops",
          "1b-vision": "stage 1b: vision, scene crops + real training splits",
          "2-lm": "stage 2: language model, wordfreq English",
          "3-finetune": "stage 3: full model, SemiMTR consistency"}
RECORD = ROOT / "experiments" / "results" / "default_model_stages.json"


def stage_record(name: str, summary: dict) -> dict:
    """One stage's row facts from its run folder's ``summary.json``."""
    machine = summary.get("machine", {})
    best = summary.get("best") or {}
    return {"name": name, "steps": summary["steps"], "hours": round(summary["wall_seconds"] / 3600, 2),
            "images_per_s": round(summary["images_per_s"]), "precision": summary.get("precision"),
            "cpu": machine.get("cpu", "?"), "threads": machine.get("threads", "?"),
            "bf16_flags": ", ".join(f for f in machine.get("cpu_flags", []) if "bf16" in f or "amx" in f) or "no native bf16",
            "best": f"{best.get('metric', '')} {best.get('value', 0):.1f} % at step {best.get('step', '')}"}


def update_record(runs: Path, record: Path = RECORD) -> list[dict]:
    """The stored stage rows, updated with every run folder under ``runs`` that holds a summary
    (run folders do not outlive a machine; the record in the repository does)."""
    rows = {r["name"]: r for r in (json.loads(record.read_text()) if record.is_file() else [])}
    for summary in sorted(runs.glob("*/summary.json")):
        name = summary.parent.name  # keys set by hand in the record (``shipped: false``) are kept
        rows[name] = {**rows.get(name, {}), **stage_record(name, json.loads(summary.read_text()))}
    ordered = sorted(rows.values(), key=lambda r: r["name"])
    record.write_text(json.dumps(ordered, indent=1) + "\n")
    return ordered


def stage_label(name: str) -> str:
    """The table's words for a run folder: a named stage, or a warm restart of stage 3
    (``train_default_model.py --warm NAME``, from the weights shipped at the time)."""
    if name in STAGES:
        return STAGES[name]
    return f"stage 3 again: warm restart from the then-shipped weights (`{name}`)" if name.endswith("finetune-warm") else name


def stage_rows(rows: list[dict]) -> list[str]:
    """Table rows; a run whose record says ``"shipped": false`` (it did not beat the weights it
    started from) is marked so."""
    return [f"| {stage_label(r['name'])}{' (not shipped)' if r.get('shipped') is False else ''} | {r['steps']} | {r['hours']:.2f} | {r['images_per_s']} | "
            f"{r['precision']} on {r['cpu']} ({r['bf16_flags']}), {r['threads']} thread(s) | {r['best']} |" for r in rows]


def benchmark_table(compare: dict) -> list[str]:
    systems = [k for k in ("semimtr", "rapidocr") if k in compare]
    names = [k for k in compare["semimtr"] if isinstance(compare["semimtr"][k], dict) and "accuracy" in compare["semimtr"][k]
             and k != "weighted"]
    lines = ["| system | " + " | ".join(names) + " | weighted | crops/s |", "|" + "---|" * (len(names) + 3)]
    for system in systems:
        r = compare[system]
        label = f"semimtr `default` ({r.get('head')} head)" if system == "semimtr" else f"RapidOCR {r.get('version', '')} recognizer"
        lines.append(f"| {label} | " + " | ".join(f"{r[n]['accuracy']:.1f}" for n in names)
                     + f" | {r['weighted']['accuracy']:.1f} | {r['weighted']['crops_per_s']:.0f} |")
    m = compare.get("machine", {})
    lines.append("")
    lines.append(f"Machine: {m.get('cpu', '?')} ({', '.join(m.get('cpu_flags', []))}), {compare.get('threads')} threads; "
                 f"command: `{compare.get('command')}`.")
    return lines


def head_table(results: list[dict]) -> list[str]:
    """Word accuracy per head and set (``eval --head all``) and the alignment head's fusion flips."""
    names = [x["name"] for x in results[0]["sets"]]
    lines = ["| head | " + " | ".join(names) + " | weighted |", "|" + "---|" * (len(names) + 2)]
    for r in results:
        lines.append(f"| {r['head']} | " + " | ".join(f"{x['accuracy']:.1f}" for x in r["sets"])
                     + f" | {r['weighted_average']['accuracy']:.1f} |")
    flips = [x.get("fusion") or {} for x in results[0]["sets"]]
    fixed, broken = sum(f.get("fixed", 0) for f in flips), sum(f.get("broken", 0) for f in flips)
    lines += ["", f"Over the six sets the alignment head turned {fixed} wrong vision reads into right words and "
              f"{broken} right ones into wrong words."]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--compare", type=Path, required=True)
    ap.add_argument("--calibration", type=Path, default=None)
    ap.add_argument("--segments", type=Path, default=None)
    ap.add_argument("--heads", type=Path, default=None, help="semimtr eval default --head all --json FILE")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "model-card.md")
    args = ap.parse_args(argv)
    compare = json.loads(args.compare.read_text())
    template = (ROOT / "experiments" / "model_card_template.md").read_text(encoding="utf-8")
    segments = json.loads(args.segments.read_text()) if args.segments else []
    seg_lines = ["| segment | when | what ran | steps | notes |", "|---|---|---|---|---|"] + [
        f"| {s['name']} | {s['when']} | {s['what']} | {s['steps']} | {s['notes']} |" for s in segments]
    calibration = "not calibrated yet"
    if args.calibration and args.calibration.is_file():
        c = json.loads(args.calibration.read_text())
        heads = c.get("heads", [])
        calibration = "; ".join(
            f"{h['head']}: T {h['temperature']:.2f}, ECE on held-out crops {h['ece']['held_out']['before']:.1f} % -> "
            f"{h['ece']['held_out']['after']:.1f} %" for h in heads) + (
            f" ({c['fitted']} crops fitted, {c['held_out']} held out, of {', '.join(c['sets'])})")
    heads = head_table(json.loads(args.heads.read_text())) if args.heads else ["(not measured)"]
    text = (template.replace("{{STAGES}}", "\n".join(stage_rows(update_record(args.runs)))).replace("{{HEADS}}", "\n".join(heads))
            .replace("{{BENCHMARKS}}", "\n".join(benchmark_table(compare)))
            .replace("{{SEGMENTS}}", "\n".join(seg_lines))
            .replace("{{CALIBRATION}}", calibration))
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
