"""What a few labels and many unlabeled crops add: the README quickstart's adaptation, over seeds.

    python benchmarks/adapt_gain.py [--seeds 0 1 2] [--threads 2] [--work /tmp/adapt_gain] \
        [--oracle] [--reuse] [--out benchmarks/results/adapt_gain.json] [--page docs/results.md]

For every seed ``s`` this runs the quickstart's steps 2-4 as written in README.md, in a folder
of its own: ``semimtr synth`` renders the dot-matrix domain (500 labeled, 5000 unlabeled, 500
validation and 1000 held-out test crops, data seeds ``11 + 100 s`` ... ``14 + 100 s``; seed 0
is the README's), ``semimtr finetune`` adapts the shipped model with recipes/adapt/supervised.yaml
and with recipes/adapt/semimtr.yaml (``--seed s``; ``best.pt`` chosen on the validation crops),
and ``semimtr eval`` scores ``default`` and both ``best.pt`` files on the test crops, every head.
The JSON keeps each seed's accuracies and command times, the mean and 95 % interval (Student t
over seeds) of every model and head, and of the two gains: supervised - default (what the labels
gave) and SemiMTR - supervised (what the unlabeled crops added). ``--page`` rewrites the marked
section of docs/results.md from it.

``--oracle`` adds the ceiling: the same 5000 unlabeled crops rendered again *with* their labels
(same seed), and a third fine-tuning with recipes/adapt/supervised.yaml on all 5500 labels at
SemiMTR's 48 crops per step (``runs/adapt-oracle``): what the unlabeled crops could add at most
in these steps if SemiMTR's teacher read every one of them right. ``--reuse`` keeps the outputs
a previous run left in ``--work`` (an LMDB, a run folder with ``summary.json``) instead of making
them again; the JSON names what it reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from study_report import mean_ci  # noqa: E402

from semimtr_cli.core.fsutil import atomic_write_json, atomic_write_text  # noqa: E402
from semimtr_cli.core.runtime import machine_record  # noqa: E402
from semimtr_cli.data.lmdb.io import is_lmdb_dir  # noqa: E402

SETS = (("labeled", 500, 11, []), ("unlabeled", 5000, 12, ["--unlabeled"]), ("valid", 500, 13, []), ("test", 1000, 14, []))
MODELS = ("default", "supervised", "semimtr", "oracle")
HEADS = ("alignment", "vision", "language")
BEGIN, END = "<!-- BEGIN adapt_gain (benchmarks/adapt_gain.py) -->", "<!-- END adapt_gain -->"


# the unlabeled crops again (their count and seed), labels kept
ORACLE_SET = next(("unlabeled-with-labels", count, base, []) for name, count, base, _ in SETS if name == "unlabeled")
ORACLE_OVERRIDES = ["--set", f"data.labeled=[data/dotmatrix/labeled,data/dotmatrix/{ORACLE_SET[0]}]",
                    "--set", "train.batch_size=48"]  # every crop SemiMTR sees per step, all labeled


def commands(seed: int, threads: int, oracle: bool = False) -> list[tuple[str, list[str], str | None]]:
    """(name, argv, output path or None) of the quickstart's steps 2-4 for ``seed``, run in the seed's
    folder; ``oracle`` adds the labeled copy of the unlabeled crops and the oracle fine-tuning."""
    sets = SETS + ((ORACLE_SET,) if oracle else ())
    out = [(f"synth {name}", ["semimtr", "synth", "--style", "dotmatrix", "--out", f"data/dotmatrix/{name}", "--count",
                              str(count), "--seed", str(base + 100 * seed), "--lmdb", *extra], f"data/dotmatrix/{name}")
           for name, count, base, extra in sets]
    arms = {"supervised": ("supervised", []), "semimtr": ("semimtr", []),  # arm: (recipe, overrides)
            **({"oracle": ("supervised", ORACLE_OVERRIDES)} if oracle else {})}
    for arm, (recipe, overrides) in arms.items():
        out.append((f"finetune {arm}", ["semimtr", "finetune", "--recipe", str(ROOT / "recipes" / "adapt" / f"{recipe}.yaml"),
                                        "--out", f"runs/adapt-{arm}", "--seed", str(seed), "--threads", str(threads),
                                        *overrides], f"runs/adapt-{arm}"))
    out.append(("eval", ["semimtr", "eval", "default", *(f"runs/adapt-{arm}/best.pt" for arm in arms),
                         "--bench", "data/dotmatrix/test", "--baseline", "default", "--head", "all",
                         "--threads", str(threads), "--json", "eval.json"], None))
    return out


def finished(path: Path) -> bool:
    """Whether ``path`` is a complete output of an earlier run: an LMDB, or a run folder with its summary."""
    return is_lmdb_dir(path) or (path / "summary.json").is_file()


def accuracies(eval_json: Path) -> dict[str, dict[str, float]]:
    """{model: {head: word accuracy %}} from ``semimtr eval --json`` of the test set."""
    names = {"default": "default", **{f"runs/adapt-{m}/best.pt": m for m in MODELS[1:]}}
    out: dict[str, dict[str, float]] = {}
    for r in json.loads(eval_json.read_text()):
        out.setdefault(names[r["checkpoint"]], {})[r["head"]] = r["sets"][0]["accuracy"]
    return out


def run_seed(seed: int, work: Path, threads: int, oracle: bool = False, reuse: bool = False) -> dict:
    folder = work / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    seconds, reused = {}, []
    for name, argv, output in commands(seed, threads, oracle):
        if reuse and output and finished(folder / output):
            reused.append(name)
            continue
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"seed {seed}: `{' '.join(argv)}` failed:\n{done.stderr[-2000:]}")
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"seed {seed}: {name} {seconds[name]} s", flush=True)
    return {"seed": seed, "seconds": seconds, "reused": reused, "accuracy": accuracies(folder / "eval.json")}


def summarise(per_seed: list[dict]) -> dict:
    """Mean and 95 % half-interval of every model/head and of the two gains, over seeds."""
    def stat(values: list[float]) -> dict:
        mean, half = mean_ci(values)
        return {"mean": round(mean, 2), "ci95": None if half is None else round(half, 2), "values": values}

    acc = [s["accuracy"] for s in per_seed]
    models = [m for m in MODELS if all(m in a for a in acc)]

    def gain(better: str, base: str) -> dict:
        return {h: stat([round(a[better][h] - a[base][h], 2) for a in acc]) for h in HEADS}

    out = {"accuracy": {m: {h: stat([a[m][h] for a in acc]) for h in HEADS} for m in models},
           "labels_gain": gain("supervised", "default"), "unlabeled_gain": gain("semimtr", "supervised")}
    if "oracle" in models:  # the most the unlabeled crops could add in these steps, had they all been labeled
        out["oracle_gain"] = gain("oracle", "supervised")
    return out


def markdown(result: dict) -> str:
    """The results.md section: one table per head row, the gains, the machine and the command."""
    s, m = result["summary"], result["machine"]

    def cell(d: dict) -> str:
        return f"{d['mean']:.1f}" + ("" if d["ci95"] is None else f" ± {d['ci95']:.1f}")

    oracle = "oracle_gain" in s
    reused = sorted({name for r in result["per_seed"] for name in r.get("reused", [])})
    lines = [BEGIN, "## 0. The quickstart: what unlabeled crops add (dot-matrix domain)", "",
             f"`{result['command']}` ({len(result['seeds'])} seeds; {m['cpu']}, {m['cores']} cores, flags "
             f"{', '.join(m['cpu_flags']) or 'none of the bf16/AMX/AVX-512 ones'}, torch {m['torch']}; "
             f"{result['minutes_per_seed']:.1f} min per seed"
             + (f" for what ran this time, reusing {', '.join(reused)} from an earlier run of the same recipes"
                if reused else "")
             + "). Word accuracy (%) on the 1000 held-out test crops of "
             "each seed, mean ± 95 % interval over seeds; `best.pt` chosen on the 500 validation crops.", "",
             "| head | default (shipped) | + 500 labels (supervised) | + 5000 unlabeled (SemiMTR) | labels gave | unlabeled added |"
             + (" all 5500 labeled (oracle) | oracle over supervised |" if oracle else ""),
             "|---|---|---|---|---|---|" + ("---|---|" if oracle else "")]
    for h in HEADS:
        a = s["accuracy"]
        lines.append(f"| {h} | {cell(a['default'][h])} | {cell(a['supervised'][h])} | {cell(a['semimtr'][h])} | "
                     f"{cell(s['labels_gain'][h])} | {cell(s['unlabeled_gain'][h])} |"
                     + (f" {cell(a['oracle'][h])} | {cell(s['oracle_gain'][h])} |" if oracle else ""))
    models = list(s["accuracy"])
    lines += ["", f"Per seed (alignment head, {' / '.join(models)}): " + "; ".join(
        f"seed {r['seed']}: " + " / ".join(f"{r['accuracy'][mm]['alignment']:.1f}" for mm in models) for r in result["per_seed"])]
    if oracle:
        lines += ["", "The oracle fine-tunes with recipes/adapt/supervised.yaml on the 500 labels and the 5000 "
                  "unlabeled crops *with* their labels, 48 crops per step (SemiMTR's): what the unlabeled crops "
                  "could add at most in these steps had the teacher read every one of them right."]
    lines += ["", END]
    return "\n".join(lines)


def write_page(page: Path, section: str) -> None:
    """Replace the marked section of ``page`` (or insert it before the page's first ``## `` heading)."""
    text = page.read_text(encoding="utf-8")
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        i = text.index("\n## ")
        text = text[:i + 1] + section + "\n\n" + text[i + 1:]
    atomic_write_text(page, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/adapt_gain"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "adapt_gain.json")
    ap.add_argument("--page", type=Path, default=None, help="rewrite this page's adapt_gain section (docs/results.md)")
    ap.add_argument("--oracle", action="store_true", help="also fine-tune on the unlabeled crops with their labels (the ceiling)")
    ap.add_argument("--reuse", action="store_true", help="keep finished LMDBs and run folders found in --work")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    per_seed = [run_seed(s, args.work, args.threads, args.oracle, args.reuse) for s in args.seeds]
    if args.reuse and args.out.is_file():  # the reused commands' times, as the earlier record has them
        earlier = {r["seed"]: r["seconds"] for r in json.loads(args.out.read_text())["per_seed"]}
        for r in per_seed:
            r["seconds"] = {**{k: v for k, v in earlier.get(r["seed"], {}).items() if k in r["reused"]}, **r["seconds"]}
    result = {
        "command": "python benchmarks/adapt_gain.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_record(), "threads": args.threads, "seeds": args.seeds,
        "minutes_per_seed": (time.perf_counter() - start) / 60 / len(args.seeds),
        "per_seed": per_seed, "summary": summarise(per_seed),
    }
    atomic_write_json(args.out, result)
    print(markdown(result))
    if args.page:
        write_page(args.page, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
