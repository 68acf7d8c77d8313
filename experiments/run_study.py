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
import shutil
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_plan import (  # noqa: E402
    GATE,
    PLANS,
    PSEUDO_THRESHOLDS,
    RECIPES,
    REPO,
    Sizes,
    Steps,
    calibration_kinds,
    plan_jobs,
    regime_a,
    regime_a_sets,
    regime_b,
    scored_crops,
    set_steps,
)
from study_pool import Job, Pool, log, run_jobs  # noqa: E402

# ============================================================================ worker side
HEADS = ["alignment", "language", "vision"]
POOL_MEASURED = 1000  # regime-B pool crops labeled for the pseudo-label statistics (regime A: 500 per style)


def run_one(spec: dict) -> None:
    """Train one run, score its selected checkpoint, label the pools; write ``result.json``."""
    import torch

    torch.set_num_threads(1)
    os.chdir(REPO)  # recipes name packaged files relative to the repository
    from semimtr_cli.core.fsutil import atomic_write_json
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
    if spec.get("unseen"):
        result["unseen"] = score_sets(ckpt, spec["unseen"]["sets"], spec["unseen"]["heads"])
    if spec.get("pseudo"):
        result["pseudo"] = {pool: label_pool(ckpt, p["paths"], p["heads"]) for pool, p in spec["pseudo"].items()}
    result["eval_seconds"] = time.time() - t1
    atomic_write_json(out / "result.json", result)


def score_sets(ckpt: Path, sets: dict[str, str], heads: list[str]) -> dict:
    """``{set: {head: word accuracy %, "evaluated": n}}`` with ``semimtr eval``'s protocol."""
    from semimtr_cli.data.benchmarks import custom_sets
    from semimtr_cli.evaluation.protocol import Protocol
    from semimtr_cli.evaluation.scoring import evaluate_set
    from semimtr_cli.infer.predictor import load_predictor

    predictor = load_predictor(ckpt, device="cpu")
    out = {}
    for name, path in sets.items():
        res = evaluate_set(predictor, custom_sets(path)[0], Protocol(), heads, batch_size=64)
        out[name] = {h: res.row(h)["accuracy"] for h in heads} | {"evaluated": res.evaluated}
    return out


def label_pool(ckpt: Path, paths: list[str], heads: list[str]) -> dict:
    """Pseudo-labels of the (labeled copy of the) unlabeled pool, weak view as fine-tuning's teacher sees it."""
    from semimtr_cli.infer.predictor import load_predictor
    from semimtr_cli.pseudolabels.run import run_teacher
    from semimtr_cli.pseudolabels.stats import summarize

    predictor = load_predictor(ckpt, device="cpu")
    out = {}
    for head in heads:
        s = summarize(run_teacher(predictor, paths, head=head, view="weak", thresholds=PSEUDO_THRESHOLDS, batch_size=64))
        out[head] = {"accuracy": s["accuracy"], "evaluated": s["evaluated"],
                     "thresholds": [{k: t[k] for k in ("threshold", "slots_kept_percent", "kept_percent", "accuracy")}
                                    for t in s["thresholds"]]}
    return out


# ============================================================================ driver side
QUICK_STEP_SECONDS = {"teacher": 0.4, "lm": 0.3, "vis_ce": 0.3, "vis_seqclr": 0.9, "ft_supervised": 0.4,
                      "ft_consistency": 0.8}


def quick_step_seconds(kinds) -> dict[str, float]:
    """Nominal step times for ``--quick`` (a per-regime kind takes its class's)."""
    return {k: next(v for c, v in QUICK_STEP_SECONDS.items() if k == c or k.startswith(c + "_")) for k in kinds}


def make_data(data: Path, sizes: Sizes) -> dict:
    """Render the regime-A LMDBs (reused when a folder's recorded settings match)."""
    from semimtr_cli.data.synth.generate import generate

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


def calibrate(folder: Path, kinds: dict, lanes: int, steps: int, deadline: float) -> tuple[dict, float, dict]:
    """Median seconds per step of every kind (``kind -> (recipe, overrides, LMDB to score)``), the
    start-up seconds of a run, and seconds per scored crop per regime (from the kinds that score)."""
    jobs = [Job(kind, kind, {"name": kind, "recipe": recipe, "overrides": ov + [
        f"train.max_steps={steps}", "train.eval_every=0", "train.save_every=0", "train.log_every=1", "data.valid=[]"],
        "eval": {"sets": {"calibration": score}, "heads": ["vision"] if recipe == "pretrain_vision.yaml" else HEADS}
        if score else None}, steps=steps)
        for kind, (recipe, ov, score) in kinds.items()]
    pool = Pool(folder, lanes, deadline, Path(__file__).resolve())
    run_jobs(pool, jobs, lambda j: 0.0)
    step_s, startup, score_s = {}, [], {}
    for job in jobs:
        if job.status != "done":
            raise SystemExit(f"calibration run {job.name} failed: {job.note}")
        step_s[job.name], first = step_seconds(folder / job.name / "run")
        res = json.loads(pool.result_path(job).read_text())
        startup.append(job.wall_s - res["train_seconds"] - res["eval_seconds"] + first)
        if res.get("test"):
            regime = "B" if job.name.endswith("_B") else "A"
            score_s[regime] = res["eval_seconds"] / max(1, res["test"]["calibration"]["evaluated"])
    return step_s, max(3.0, statistics.median(startup)), score_s


def fit_steps(seconds: float, lanes: int, step_cost: float, side: float, overhead: float, cap: int) -> int:
    """Steps N (multiple of 10, 10..cap) such that N * step_cost + side + overhead fits ``lanes``
    lanes for ``seconds``; ``step_cost``: seconds of the N-th step of all the runs sized together."""
    f = int((seconds * lanes - side - overhead) / step_cost) if step_cost > 0 else cap
    return max(10, min(cap, f - f % 10))


def ft_step_cost(step_s: dict, seeds: int, regimes: list[str]) -> float:
    """Seconds of one step of every fine-tuning run together (per regime: 1 supervised + 3 consistency arms)."""
    return seeds * sum(step_s[f"ft_supervised_{r}"] + 3 * step_s[f"ft_consistency_{r}"] for r in regimes)


def plan_steps(args, step_s: dict, regimes: list[str], time_left: float, sources_left: bool, overhead: float) -> Steps:
    """Steps per run kind. ``overhead``: lane-seconds of start-up and scoring of the runs being
    sized. ``vision``: the arms' steps fill the budget. ``finetune``: the source model and the LM
    run side by side first (unless a ``sources`` run left them); fine-tuning gets what is left
    (re-planned when they finish, see ``Replanner``)."""
    seeds, lanes, t = len(args.seeds), args.lanes, step_s
    if args.plan == "vision":
        # two lanes end together only approximately (six runs of two lengths): 5 % packing loss
        v = fit_steps(time_left * 0.95, lanes, seeds * (t["vis_ce"] + t["vis_seqclr"]), 0.0, overhead, args.vision_steps)
        return Steps(0, 0, v, 0)
    if args.plan == "sources":
        return Steps(args.teacher_steps, args.lm_steps, 0, 0)
    pre = 0.0
    if sources_left:
        teacher, lm = args.teacher_steps * t["teacher"], args.lm_steps * t["lm"]
        pre = max(teacher, lm) if lanes > 1 else teacher + lm
    f = fit_steps(time_left - pre, lanes, ft_step_cost(t, seeds, regimes), 0.0, overhead, args.max_finetune_steps)
    return Steps(args.teacher_steps, args.lm_steps, 0, f)


class Replanner:
    """When the source model and the LM have finished, size the fine-tuning runs to the time left.

    Every finished run gives a ratio of its measured step time to its calibrated one; their
    median scales the calibration of the kinds still to run (a machine that got busier or
    quieter since), except that a kind not yet observed is never assumed faster than
    calibrated: in the first full study the calibration of one kind was taken while other jobs
    loaded the machine and of another while it was quiet, and scaling both by the same ratio
    under-planned fine-tuning by half. The deadline checks of later runs use the same times.
    """

    def __init__(self, args, jobs: list[Job], step_s: dict, allowance, regimes: list[str], deadline: float):
        self.args, self.jobs, self.step_s, self.allowance = args, jobs, step_s, allowance
        self.regimes, self.deadline, self.record = regimes, deadline, {}

    def measured_ratios(self) -> dict[str, float]:
        """name -> measured / calibrated seconds per step of every run finished here (not reused)."""
        out = {}
        for j in self.jobs:
            if j.status == "done" and j.started and self.step_s.get(j.kind, 0) > 0:
                out[j.name] = step_seconds(Path(j.spec["out"]) / "run")[0] / self.step_s[j.kind]
        return out

    def __call__(self, ended: Job) -> None:
        by = {j.name: j for j in self.jobs}
        if self.record or ended.name not in ("teacher", "lm") or any(by[n].status != "done" for n in ("teacher", "lm")):
            return
        ratios = self.measured_ratios()
        scale = max(0.25, min(4.0, statistics.median(ratios.values()))) if ratios else 1.0
        seen = {by[n].kind for n in ratios}
        t = {k: v * (scale if k in seen else max(1.0, scale)) for k, v in self.step_s.items()}
        now = time.time()
        ft = [j for j in self.jobs if j.kind.startswith("ft_") and j.status == "pending"]
        overhead = sum(self.allowance(j) for j in ft)
        f = fit_steps(self.deadline - now, self.args.lanes, ft_step_cost(t, len(self.args.seeds), self.regimes), 0.0,
                      overhead, self.args.max_finetune_steps)
        for j in ft:
            set_steps(j.spec, f, max(1, f // 10))
            j.steps = f
        self.step_s.update(t)
        self.record = {"at_s": round(now - by["teacher"].started, 1), "ratios": ratios, "scale": scale,
                       "step_seconds": t, "finetune_steps": f}
        log(f"re-plan: finished runs ran {scale:.2f}x their calibrated step time (median of {len(ratios)}); "
            f"fine-tuning {f} steps per run")


def reuse_finished(jobs: list[Job], runs: Path) -> dict:
    """Mark a job done where a finished run with the same recipe and overrides is in ``runs``: the
    source model and the LM of a ``--plan sources`` run, or the finished runs of a plan that its
    deadline cut short (rerun it with the same steps to complete it). Returns {name: train seconds}."""
    reused = {}
    for job in jobs:
        d = runs / job.name
        if not (d / "result.json").is_file() or not (d / "spec.json").is_file():
            continue
        old = json.loads((d / "spec.json").read_text())
        if (old["recipe"], old["overrides"]) != (job.spec["recipe"], job.spec["overrides"]):
            raise SystemExit(f"{d}: a finished {job.name} run with other settings is there; remove it or match its steps "
                             "(--teacher-steps, --lm-steps, --vision-steps, --max-finetune-steps)")
        job.spec["out"], job.status, job.note = str(d), "done", "reused: finished by an earlier run_study.py command"
        reused[job.name] = json.loads((d / "result.json").read_text())["train_seconds"]
    return reused


def score_unseen_of_reused(jobs: list[Job], pool: Pool) -> list[str]:
    """Score the ``--unseen`` sets of finished runs whose result lacks them (runs reused from an
    earlier command without ``--unseen``); updates their result.json. Returns the names scored."""
    import torch

    from semimtr_cli.core.fsutil import atomic_write_json

    torch.set_num_threads(max(1, pool.lanes))
    done = []
    for job in jobs:
        path = pool.result_path(job)
        if job.status != "done" or not job.spec.get("unseen") or not path.is_file():
            continue
        result = json.loads(path.read_text())
        want = job.spec["unseen"]
        if set(want["sets"]) <= set(result.get("unseen") or {}):
            continue
        ckpt = path.parent / "run" / result.get("checkpoint", "best.pt")
        result["unseen"] = score_sets(ckpt, want["sets"], want["heads"])
        atomic_write_json(path, result)
        done.append(job.name)
    return done


def unseen_sets(root: Path) -> dict[str, str]:
    """``U_<benchmark>`` -> LMDB of the benchmark test splits under ``root`` (prepare_real_crops.py
    --unseen-out): IIIT5k 3000, SVT 647 and IC15 2077."""
    from semimtr_cli.core.errors import SemimtrError
    from semimtr_cli.data.benchmarks import resolve_sets

    try:
        sets, _ = resolve_sets("IIIT5k,SVT,IC15", root)
    except SemimtrError as exc:
        raise SystemExit(f"--unseen {root}: {exc}") from None
    return {f"U_{s.benchmark}": str(s.path) for s in sets}


def lmdb_sizes(regimes) -> dict[str, int]:
    """LMDB path -> samples, for every LMDB the regimes name."""
    from semimtr_cli.data.lmdb.io import LmdbReader

    paths = {p for r in regimes for p in [*r.labeled, *r.unlabeled, *r.valid, *r.test.values(), *r.truth,
                                          *r.unseen.values()]}
    return {p: len(LmdbReader(p)) for p in paths}


def thin_pool(src: Path, dst: Path, n: int) -> Path:
    """The first of every ``len/n`` crops of a labeled pool copy as its own LMDB (every source of a
    pool built source by source keeps its share); reused when ``dst`` records the same source and n."""
    from semimtr_cli.core.fsutil import atomic_write_json
    from semimtr_cli.data.lmdb.io import LmdbReader, write_lmdb

    stamp, want = dst.with_name(dst.name + ".json"), {"source": str(src), "n": n}
    if dst.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == want:
        return dst
    reader = LmdbReader(src)
    picks = [int(i * len(reader) / n) for i in range(n)] if len(reader) > n else range(len(reader))
    write_lmdb(dst, (reader.sample(i) for i in picks), overwrite=True)
    atomic_write_json(stamp, want)
    return dst


def machine() -> dict:
    """runtime.machine_record, with the names the page reads (taken at the start of the plan)."""
    from semimtr_cli.core.runtime import machine_record

    m = machine_record()
    return m | {"cpu_count": m["cores"], "load_average_at_start": m["load_average"]}


PAGES = {"finetune": "results.md", "vision": "results-vision.md", "sources": None}
RESULTS = {"finetune": "results.json", "vision": "results-vision.json", "sources": "sources.json"}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", choices=PLANS, default="finetune",
                    help="finetune (default): source models (or those of a sources run) + the fine-tuning arms; "
                         "sources: the source model and the LM only; vision: the from-scratch vision arms")
    ap.add_argument("--budget-minutes", type=float, default=90.0, help="wall-clock budget of this plan")
    ap.add_argument("--out", default="runs/study", help="study folder (data, runs, results JSON); plans share it")
    ap.add_argument("--real", type=Path, default=None, help="regime B: output folder of prepare_real_crops.py")
    ap.add_argument("--unseen", type=Path, default=None,
                    help="with --real: folder of benchmark test splits (prepare_real_crops.py --unseen-out) that "
                         "the regime-B models and the source model are scored on after training, never selected on")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--teacher-steps", type=int, default=6000, help="source model steps (batch 32)")
    ap.add_argument("--lm-steps", type=int, default=7000, help="language model steps (batch 256; beside the source model)")
    ap.add_argument("--vision-steps", type=int, default=6000, help="cap of the planned steps of each vision arm")
    ap.add_argument("--max-finetune-steps", type=int, default=1000, help="cap of the planned fine-tuning steps")
    ap.add_argument("--lanes", type=int, default=2, help="runs side by side (1 torch thread each)")
    ap.add_argument("--quick", action="store_true", help="tiny data and steps: a smoke test of the pipeline")
    ap.add_argument("--page", default=None, help="results page (default docs/results.md or docs/results-vision.md; "
                                                 "OUT/<that name> with --quick)")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.unseen and not args.real:
        ap.error("--unseen needs --real (the unseen sets score the regime-B models)")
    if args.quick:
        args.teacher_steps, args.lm_steps = min(args.teacher_steps, 30), min(args.lm_steps, 20)
        args.vision_steps, args.max_finetune_steps = 20, 20
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.job:
        run_one(json.loads(Path(args.job).read_text()))
        return 0
    t_start = time.time()
    deadline = t_start + args.budget_minutes * 60
    machine_at_start = machine()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    page = None
    if PAGES[args.plan]:
        page = Path(args.page) if args.page else (out if args.quick else REPO / "docs") / PAGES[args.plan]
    log(f"study plan {args.plan} in {out}, budget {args.budget_minutes} min, seeds {args.seeds}, lanes {args.lanes}")

    data_info = make_data(out / "data", Sizes.quick() if args.quick else Sizes())
    regimes = [regime_a(out / "data")]
    if args.real and args.plan != "vision":
        b = regime_b(args.real.resolve())
        b.truth = [str(thin_pool(Path(b.truth[0]), out / "data" / f"B_truth_{POOL_MEASURED}", POOL_MEASURED))]
        if args.unseen:
            b.unseen = unseen_sets(args.unseen.resolve())
        regimes.append(b)
    names = [r.name for r in regimes]
    t_data = time.time() - t_start
    log(f"data ready in {t_data:.0f} s; regimes {', '.join(names)}")

    runs = out / "runs"
    nominal = Steps(args.teacher_steps, args.lm_steps, args.vision_steps, args.max_finetune_steps)
    probe = [Job(s["name"], s["kind"], s) for s in plan_jobs(args.plan, nominal, args.seeds, regimes, runs, every_of(nominal))]
    reused = reuse_finished(probe, runs)
    clash = [str(runs / j.name) for j in probe if j.status != "done" and (runs / j.name).exists()]
    if clash:
        raise SystemExit(f"{clash[0]} already exists ({len(clash)} run folders of this plan); remove them or choose "
                         "another --out")
    kinds = {k: v for k, v in calibration_kinds(args.plan, regimes).items() if k not in reused}
    if args.quick:  # plumbing only: nominal step times instead of calibration processes
        step_s, startup, score_s = quick_step_seconds(kinds), 8.0, {"A": 0.004, "B": 0.006}
    else:
        calib = out / f"calibration-{args.plan}"
        shutil.rmtree(calib, ignore_errors=True)
        step_s, startup, score_s = calibrate(calib, kinds, args.lanes, 12, deadline)
    log("seconds per step: " + ", ".join(f"{k} {v:.3f}" for k, v in step_s.items()) + f"; start-up {startup:.1f} s; "
        "seconds per scored crop: " + ", ".join(f"{k} {v:.4f}" for k, v in score_s.items()))
    sizes = lmdb_sizes(regimes)

    def allowance(job: Job) -> float:
        """Start-up and scoring seconds of one run (its validations, tests and pools)."""
        rate = score_s.get(job.spec.get("regime") or "A", max(score_s.values(), default=0.0))
        return startup + scored_crops(job.spec, sizes) * rate

    def estimate(job: Job) -> float:
        return job.steps * step_s[job.kind] + allowance(job)

    report_s = 10.0 if args.quick else 60.0
    sized = [j for j in probe if j.kind.startswith(("ft_", "vis_"))]
    steps = plan_steps(args, step_s, names, (deadline - time.time() - report_s) * 0.9, not reused,
                       sum(allowance(j) for j in sized))
    every = every_of(steps)
    log(f"plan: {steps}, validation every {every}" + (f"; reused: {', '.join(reused)}" if reused else ""))

    specs = plan_jobs(args.plan, steps, args.seeds, regimes, runs, every)
    jobs = [Job(s["name"], s["kind"], s, deps=s["deps"], steps=s["steps"]) for s in specs]
    reuse_finished(jobs, runs)
    pool = Pool(runs, args.lanes, deadline - report_s * 0.5, Path(__file__).resolve())

    calibrated = dict(step_s)
    replan = Replanner(args, jobs, step_s, allowance, names, pool.deadline)
    t0 = time.time()
    run_jobs(pool, jobs, estimate, on_end=replan if args.plan == "finetune" and not reused else None)
    rescored = score_unseen_of_reused(jobs, pool)
    if rescored:
        log(f"scored the unseen sets of reused runs: {', '.join(rescored)}")
    results = {}
    for job in jobs:
        entry = {k: job.spec.get(k) for k in ("kind", "steps", "arm", "seed", "regime")}
        reused_run = job.name in reused
        entry.update(status=job.status, note=job.note, estimate_s=None if reused_run else round(estimate(job), 1),
                     wall_s=job.wall_s, reused=reused_run)
        if job.status == "done":
            entry.update(json.loads(pool.result_path(job).read_text()))
        results[job.name] = entry
    study = {
        "plan": args.plan,
        "command": "python experiments/run_study.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "budget_minutes": args.budget_minutes, "quick": args.quick, "seeds": args.seeds, "lanes": args.lanes,
        "threads_per_run": 1, "machine": machine_at_start, "data": data_info,
        "regimes": {r.name: {"labeled": r.labeled, "unlabeled": r.unlabeled, "valid": r.valid, "test": r.test,
                             "truth": r.truth, "unseen": r.unseen} for r in regimes},
        "steps": asdict(steps) | ({"finetune": replan.record["finetune_steps"]} if replan.record else {}), "eval_every": every,
        "calibration": {"step_seconds": calibrated, "startup_seconds": startup, "score_seconds_per_crop": score_s},
        "replan": replan.record,
        "timing": {"data_s": t_data, "runs_s": time.time() - t0},
        "runs": results,
    }
    if args.plan != "vision":
        acc = (results["teacher"].get("summary") or {}).get("best", {}).get("value")
        study["gate"] = {"threshold": GATE, "teacher_valid_accuracy": acc, "passed": acc is not None and acc >= GATE}
        sources = out / RESULTS["sources"]
        if reused and sources.is_file():
            src = json.loads(sources.read_text())
            study["sources"] = {k: src[k] for k in ("command", "machine", "timing")}
    from semimtr_cli.core.fsutil import atomic_write_json

    study["timing"]["total_s"] = time.time() - t_start
    atomic_write_json(out / RESULTS[args.plan], study)
    if page:
        from study_report import write_report

        write_report(study, out, page)
    log(f"wrote {out / RESULTS[args.plan]}" + (f" and {page}" if page else "") +
        f"; total {study['timing']['total_s'] / 60:.1f} min")
    return 0


def every_of(steps: Steps) -> dict[str, int]:
    """Validation interval per kind: 12 points on the source model's curve, 3 on the LM's, 10 otherwise."""
    return {"teacher": max(1, steps.teacher // 12), "lm": max(1, steps.lm // 3), "vision": max(1, steps.vision // 10),
            "finetune": max(1, steps.finetune // 10)}


if __name__ == "__main__":
    sys.exit(main())
