#!/usr/bin/env python
"""The reproduction study of SemiMTR's claims, in one command, on 2 CPU cores.

    python experiments/run_study.py [--real data/real] [--budget-minutes 90] [--out runs/study]

In order (everything lands in ``--out``; the page and its plots in ``--page``):

1. data: the regime-A ``semimtr synth`` LMDBs (experiments/study_plan.py); regime B is the
   folder of ``experiments/prepare_real_crops.py`` given with ``--real`` (left out without it).
2. calibration: a few steps of each run kind, two at a time as the study runs them (``--quick``:
   nominal step times).
3. plan: the source model (``--teacher-steps``) and the language model (``--lm-steps``) are fixed;
   fine-tuning steps F (vision arms 2F) are the most that fit ``--budget-minutes``.
4. runs, two side by side with 1 torch thread each: the source model and the LM; per seed the
   vision arms from scratch; per seed and regime the four fine-tuning arms from the source
   model + LM. Every run keeps the checkpoint chosen on its validation set (never on test),
   is scored on its regime's test sets with every head, and fine-tuned models (and the source
   model, "before") label the unlabeled pool: word accuracy and share of slots passing each
   threshold. A run that no longer fits the budget is skipped and recorded as skipped.
5. report: ``results.json``, the page and its plots (experiments/study_report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_plan import (GATE, KINDS, PSEUDO_THRESHOLDS, RECIPES, REPO, Sizes, Steps, plan_jobs, regime_a,  # noqa: E402
                        regime_a_sets, regime_b, set_steps)
from study_pool import Job, Pool, log, run_jobs  # noqa: E402


# ============================================================================ worker side
def run_one(spec: dict) -> None:
    """Train one run, score its selected checkpoint, label the pools; write ``result.json``."""
    import torch

    torch.set_num_threads(1)
    os.chdir(REPO)  # recipes name packaged files relative to the repository
    from semimtr_cli.fsutil import atomic_write_json
    from semimtr_cli.train.recipe import load_recipe
    from semimtr_cli.train.trainer import train

    out = Path(spec["out"])
    recipe = load_recipe(RECIPES / spec["recipe"], spec["overrides"])
    t0 = time.time()
    summary = train(recipe, out / "run", log=lambda m: print(m, flush=True))
    result = {"name": spec["name"], "train_seconds": time.time() - t0, "summary": summary}
    best = out / "run" / "best.pt"
    ckpt = best if best.is_file() else out / "run" / "last.pt"
    result["checkpoint"] = ckpt.name
    t1 = time.time()
    if spec.get("eval"):
        result["test"] = score_sets(ckpt, spec["eval"]["sets"], spec["eval"]["heads"])
    if spec.get("pseudo"):
        result["pseudo"] = {pool: label_pool(ckpt, p["paths"], p["heads"]) for pool, p in spec["pseudo"].items()}
    result["eval_seconds"] = time.time() - t1
    atomic_write_json(out / "result.json", result)


def score_sets(ckpt: Path, sets: dict[str, str], heads: list[str]) -> dict:
    """``{set: {head: word accuracy %, "evaluated": n}}`` with ``semimtr eval``'s protocol."""
    from semimtr_cli.data.benchmarks import custom_sets
    from semimtr_cli.evaluate import Protocol, evaluate_set
    from semimtr_cli.predict import load_predictor

    predictor = load_predictor(ckpt, device="cpu")
    out = {}
    for name, path in sets.items():
        res = evaluate_set(predictor, custom_sets(path)[0], Protocol(), heads, batch_size=64)
        out[name] = {h: res.row(h)["accuracy"] for h in heads} | {"evaluated": res.evaluated}
    return out


def label_pool(ckpt: Path, paths: list[str], heads: list[str]) -> dict:
    """Pseudo-labels of the (labeled copy of the) unlabeled pool, weak view as fine-tuning's teacher sees it."""
    from semimtr_cli.predict import load_predictor
    from semimtr_cli.pseudolabel_stats import summarize
    from semimtr_cli.pseudolabels import run_teacher

    predictor = load_predictor(ckpt, device="cpu")
    out = {}
    for head in heads:
        s = summarize(run_teacher(predictor, paths, head=head, view="weak", thresholds=PSEUDO_THRESHOLDS, batch_size=64))
        out[head] = {"accuracy": s["accuracy"], "evaluated": s["evaluated"],
                     "thresholds": [{k: t[k] for k in ("threshold", "slots_kept_percent", "kept_percent", "accuracy")}
                                    for t in s["thresholds"]]}
    return out


# ============================================================================ driver side
QUICK_STEP_SECONDS = {"teacher": 0.4, "lm": 0.3, "vis_ce": 0.3, "vis_seqclr": 0.9, "ft_supervised": 0.4, "ft_consistency": 0.8}

def make_data(data: Path, sizes: Sizes) -> dict:
    """Render the regime-A LMDBs (reused when a folder's recorded settings match)."""
    from semimtr_cli.data.synth import generate

    info = {}
    for name, s in regime_a_sets(sizes).items():
        path, stamp = data / name, data / f"{name}.json"
        if stamp.is_file() and json.loads(stamp.read_text()) == s and path.is_dir():
            info[name] = {**s, "reused": True}
            continue
        summary = generate(path, s["count"], seed=s["seed"], lmdb=True, unlabeled=s["unlabeled"], style=s["style"],
                           overwrite=True, workers=2)
        stamp.write_text(json.dumps(s))
        info[name] = {**s, "seconds": round(summary["seconds"], 1)}
    return info


def step_seconds(run_dir: Path) -> tuple[float, float]:
    """(median seconds per training step, seconds to the first logged step) from a run's metrics.jsonl."""
    events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [(e["step"], e["seconds"]) for e in events if e.get("event") == "train"]
    rates = [(s1 - s0) / (k1 - k0) for (k0, s0), (k1, s1) in zip(train, train[1:]) if k1 > k0][1:]
    if not rates:
        rates = [train[-1][1] / max(1, train[-1][0])] if train else [0.0]
    return statistics.median(rates), train[0][1] if train else 0.0


def calibrate(out: Path, regimes, lanes: int, steps: int, deadline: float) -> tuple[dict, float]:
    """Median seconds per step of every kind in KINDS, and the start-up seconds of a run."""
    a = regimes[0]
    jobs = []
    for kind, (recipe, ov) in KINDS.items():
        data = ([] if kind == "lm" else a.data_overrides() if kind.startswith("ft") else
                [f"data.unlabeled=[{','.join(a.unlabeled)}]"] if kind == "vis_seqclr" else [])
        jobs.append(Job(kind, kind, {"name": kind, "recipe": recipe, "overrides": data + ov + [
            f"train.max_steps={steps}", "train.eval_every=0", "train.save_every=0", "train.log_every=1", "data.valid=[]"]},
            steps=steps))
    pool = Pool(out / "calibration", lanes, deadline, Path(__file__).resolve())
    run_jobs(pool, jobs, lambda j: 0.0)
    step_s, startup = {}, []
    for job in jobs:
        if job.status != "done":
            raise SystemExit(f"calibration run {job.name} failed: {job.note}")
        step_s[job.name], first = step_seconds(out / "calibration" / job.name / "run")
        res = json.loads(pool.result_path(job).read_text())
        startup.append(job.wall_s - res["train_seconds"] + first)
    return step_s, max(3.0, statistics.median(startup))


def fit_finetune(seconds: float, lanes: int, step_cost: float, side: float, overhead: float, cap: int) -> int:
    """Fine-tuning steps F (multiple of 10, 10..cap) such that F * step_cost + side + overhead fits
    ``lanes`` lanes for ``seconds``; ``step_cost``: seconds of all fine-tuning runs' F-th step together."""
    f = int((seconds * lanes - side - overhead) / step_cost) if step_cost > 0 else cap
    return max(10, min(cap, f - f % 10))


def ft_step_cost(step_s: dict, seeds: int, n_regimes: int) -> float:
    return seeds * n_regimes * (step_s["ft_supervised"] + 3 * step_s["ft_consistency"])


def plan_steps(args, step_s: dict, startup: float, n_regimes: int, time_left: float) -> Steps:
    """The first plan: the source model holds one lane while the LM and the vision arms run beside it;
    fine-tuning gets what is left (re-planned when the source models are done, see ``Replanner``)."""
    seeds, lanes, t = len(args.seeds), args.lanes, step_s
    pre = args.teacher_steps * t["teacher"]
    side = args.lm_steps * t["lm"] + seeds * args.vision_steps * (t["vis_ce"] + t["vis_seqclr"])
    overhead = startup * 4 * seeds * n_regimes + args.eval_allowance * 4 * seeds * n_regimes
    f = fit_finetune(time_left - pre, lanes, ft_step_cost(t, seeds, n_regimes), max(0.0, side - (lanes - 1) * pre),
                     overhead, args.max_finetune_steps)
    return Steps(args.teacher_steps, args.lm_steps, args.vision_steps, f)


class Replanner:
    """When the source model and the LM have finished, size the fine-tuning runs to the time left.

    Every finished run (source model, LM, vision arms) gives a ratio of its measured step time
    to its calibrated one; their median scales the calibration of the kinds still to run (a
    machine that got busier or quieter since), except that a kind not yet observed is never
    assumed faster than calibrated: in the first full study the calibration of one kind was
    taken while other jobs loaded the machine and of another while it was quiet, and scaling
    both by the same ratio under-planned fine-tuning by half. The vision arms still to run are
    charged first; the deadline checks of later runs use the same times.
    """

    def __init__(self, args, jobs: list[Job], step_s: dict, startup: float, n_regimes: int, deadline: float):
        self.args, self.jobs, self.step_s, self.startup = args, jobs, step_s, startup
        self.n_regimes, self.deadline, self.record = n_regimes, deadline, {}

    def measured_ratios(self) -> dict[str, float]:
        """name -> measured / calibrated seconds per step of every finished run."""
        out = {}
        for j in self.jobs:
            if j.status == "done" and self.step_s.get(j.kind, 0) > 0:
                out[j.name] = step_seconds(Path(j.spec["out"]) / "run")[0] / self.step_s[j.kind]
        return out

    def __call__(self, ended: Job) -> None:
        by = {j.name: j for j in self.jobs}
        if self.record or ended.name not in ("teacher", "lm") or any(by[n].status != "done" for n in ("teacher", "lm")):
            return
        ratios = self.measured_ratios()
        scale = max(0.25, min(4.0, statistics.median(ratios.values())))
        seen = {by[n].kind for n in ratios}
        t = {k: v * (scale if k in seen else max(1.0, scale)) for k, v in self.step_s.items()}
        now = time.time()
        side = 0.0
        for j in self.jobs:
            if j.kind in ("vis_ce", "vis_seqclr") and j.status in ("pending", "running"):
                left = j.steps * t[j.kind] + self.startup
                side += left - (now - j.started if j.status == "running" else 0.0)
        ft = [j for j in self.jobs if j.kind.startswith("ft_") and j.status == "pending"]
        seeds = len(self.args.seeds)
        overhead = len(ft) * (self.startup + self.args.eval_allowance)
        f = fit_finetune(self.deadline - now, self.args.lanes, ft_step_cost(t, seeds, self.n_regimes), side, overhead,
                         self.args.max_finetune_steps)
        for j in ft:
            set_steps(j.spec, f, max(1, f // 10))
            j.steps = f
        self.step_s.update(t)
        self.record = {"at_s": round(now - by["teacher"].started, 1), "ratios": ratios, "scale": scale,
                       "step_seconds": t, "vision_left_s": round(side, 1), "finetune_steps": f}
        log(f"re-plan: finished runs ran {scale:.2f}x their calibrated step time (median of {len(ratios)}); "
            f"fine-tuning {f} steps per run")


def machine() -> dict:
    import torch

    from semimtr_cli.runtime import cpu_info

    cpu = cpu_info()
    return {"platform": platform.platform(), "cpu": cpu["model"], "cpu_flags": cpu["flags"], "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "load_average_at_start": list(os.getloadavg())}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-minutes", type=float, default=90.0, help="wall-clock budget of the whole study")
    ap.add_argument("--out", default="runs/study", help="study folder (data, runs, results.json)")
    ap.add_argument("--real", type=Path, default=None, help="regime B: output folder of prepare_real_crops.py")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--teacher-steps", type=int, default=6000, help="source model steps (batch 32)")
    ap.add_argument("--lm-steps", type=int, default=1500, help="language model steps (batch 256)")
    ap.add_argument("--vision-steps", type=int, default=800, help="steps of each from-scratch vision arm")
    ap.add_argument("--max-finetune-steps", type=int, default=1000, help="cap of the planned fine-tuning steps")
    ap.add_argument("--eval-allowance", type=float, default=40.0, help="seconds allowed per fine-tuning run for scoring")
    ap.add_argument("--lanes", type=int, default=2, help="runs side by side (1 torch thread each)")
    ap.add_argument("--quick", action="store_true", help="tiny data and steps: a smoke test of the pipeline")
    ap.add_argument("--page", default=None, help="results page (default docs/results.md; OUT/results.md with --quick)")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.teacher_steps, args.lm_steps, args.vision_steps = min(args.teacher_steps, 30), min(args.lm_steps, 20), 20
        args.max_finetune_steps = 20
        args.eval_allowance = 5.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.job:
        run_one(json.loads(Path(args.job).read_text()))
        return 0
    t_start = time.time()
    deadline = t_start + args.budget_minutes * 60
    out = Path(args.out).resolve()
    if (out / "runs").exists() or (out / "calibration").exists():
        raise SystemExit(f"{out} already holds a study; remove its runs/ and calibration/ folders or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    page = Path(args.page) if args.page else (out / "results.md" if args.quick else REPO / "docs" / "results.md")
    log(f"study in {out}, budget {args.budget_minutes} min, seeds {args.seeds}, lanes {args.lanes}")

    data_info = make_data(out / "data", Sizes.quick() if args.quick else Sizes())
    regimes = [regime_a(out / "data")] + ([regime_b(args.real.resolve())] if args.real else [])
    t_data = time.time() - t_start
    log(f"data ready in {t_data:.0f} s; regimes {', '.join(r.name for r in regimes)}")

    if args.quick:  # plumbing only: nominal step times instead of six calibration processes
        step_s, startup = dict(QUICK_STEP_SECONDS), 8.0
    else:
        step_s, startup = calibrate(out, regimes, args.lanes, 12, deadline)
    log("seconds per step: " + ", ".join(f"{k} {v:.3f}" for k, v in step_s.items()) + f"; start-up {startup:.1f} s")
    report_s = 10.0 if args.quick else 60.0
    steps = plan_steps(args, step_s, startup, len(regimes), (deadline - time.time() - report_s) * 0.9)
    every = {"teacher": max(1, steps.teacher // 12), "lm": max(1, steps.lm // 3), "vision": max(1, steps.vision // 6),
             "finetune": max(1, steps.finetune // 10)}
    log(f"plan: {steps}, validation every {every}")

    runs = out / "runs"
    specs = plan_jobs(steps, args.seeds, regimes, runs, every)
    jobs = [Job(s["name"], s["kind"], s, deps=s["deps"], steps=s["steps"]) for s in specs]
    pool = Pool(runs, args.lanes, deadline - report_s * 0.5, Path(__file__).resolve())
    eval_s = {"teacher": 2 * args.eval_allowance, "lm": 0.0}

    def estimate(job: Job) -> float:
        return job.steps * step_s[job.kind] + startup + eval_s.get(job.kind, args.eval_allowance)

    calibrated = dict(step_s)
    replan = Replanner(args, jobs, step_s, startup, len(regimes), pool.deadline)
    t0 = time.time()
    run_jobs(pool, jobs, estimate, on_end=replan)
    results = {}
    for job in jobs:
        entry = {k: job.spec.get(k) for k in ("kind", "steps", "arm", "seed", "regime")}
        entry.update(status=job.status, note=job.note, estimate_s=round(estimate(job), 1), wall_s=job.wall_s)
        if job.status == "done":
            entry.update(json.loads(pool.result_path(job).read_text()))
        results[job.name] = entry
    teacher_valid = (results["teacher"].get("summary") or {}).get("best", {}).get("value")
    study = {
        "command": "python experiments/run_study.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "budget_minutes": args.budget_minutes, "quick": args.quick, "seeds": args.seeds, "lanes": args.lanes,
        "threads_per_run": 1, "machine": machine(), "data": data_info,
        "regimes": {r.name: {"labeled": r.labeled, "unlabeled": r.unlabeled, "valid": r.valid, "test": r.test,
                             "truth": r.truth} for r in regimes},
        "steps": asdict(steps) | ({"finetune": replan.record["finetune_steps"]} if replan.record else {}), "eval_every": every,
        "gate": {"threshold": GATE, "teacher_valid_accuracy": teacher_valid,
                 "passed": teacher_valid is not None and teacher_valid >= GATE},
        "calibration": {"step_seconds": calibrated, "startup_seconds": startup}, "replan": replan.record,
        "timing": {"data_s": t_data, "runs_s": time.time() - t0},
        "runs": results,
    }
    from semimtr_cli.fsutil import atomic_write_json
    from study_report import write_report

    study["timing"]["total_s"] = time.time() - t_start
    atomic_write_json(out / "results.json", study)
    write_report(study, out, page)
    log(f"wrote {out / 'results.json'} and {page}; total {study['timing']['total_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
