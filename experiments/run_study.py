#!/usr/bin/env python
"""The small-scale reproduction study of SemiMTR's claims, in one command.

    python experiments/run_study.py --budget-minutes 60 [--out runs/study] [--seeds 0 1 2] [--quick]

What it does, in order (everything lands in ``--out``; the page and plots in ``--page``):

1. data: ``semimtr synth`` crops -- a small clean labeled set (sans fonts), a larger shifted
   unlabeled set (serif + mono fonts, half clean, half wild style), a shifted validation set
   (learning curves) and three held-out test sets: shifted (clean serif + mono, the target),
   wild (serif + mono) and clean sans (the labeled distribution).
2. calibration: a few training steps of each run kind, two at a time as the study runs them;
   the median step time of each kind is recorded.
3. plan: one step count per stage chosen so that every run fits ``--budget-minutes`` (with a
   safety margin for start-up, validation and test evaluation).
4. runs, two side by side (1 torch thread each), every seed: vision pre-training CE-only and
   CE + SeqCLR; fine-tuning from the SeqCLR vision model + the shared language model with
   supervised-only, SemiMTR consistency (one-hot teacher), soft teacher, threshold 0.9. Each
   run is evaluated on the test sets with every head (last weights; no test-set selection).
   A run that no longer fits the budget is skipped and recorded as skipped.
5. report: ``results.json`` and the results page with tables (mean +- std over seeds) and plots.

Each run is a subprocess of this script (``--job SPEC.json``) so that threads, memory and a
hard stop at the deadline are per run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "study"
HEADS = ("alignment", "language", "vision")

# the fine-tuning arms: name -> (label, recipe overrides)
FINETUNE_ARMS = {
    "ft_supervised": ("supervised only", ["consistency.enabled=false"]),
    "ft_semimtr": ("SemiMTR (one-hot teacher)", []),
    "ft_soft": ("SemiMTR, soft teacher", ["consistency.one_hot=false"]),
    "ft_threshold": ("SemiMTR, threshold 0.9", ["consistency.threshold=0.9"]),
}
VISION_ARMS = {
    "vis_ce": ("CE only (labeled)", ["seqclr.mode=ce_only"]),
    "vis_seqclr": ("CE + SeqCLR (labeled + unlabeled)", ["seqclr.mode=semimtr"]),
}


# ============================================================================ worker side
def run_job(spec_path: Path) -> None:
    """Run the spec file: one run, or several one after the other (``{"parts": [spec, ...]}``)."""
    spec = json.loads(spec_path.read_text())
    for part in spec.get("parts", [spec]):
        run_one(part)


def run_one(spec: dict) -> None:
    """Train one run as ``spec`` says, evaluate its last weights, write ``result.json``."""
    import torch

    torch.set_num_threads(spec.get("threads", 1))
    from semimtr_cli.data.benchmarks import custom_sets
    from semimtr_cli.evaluate import Protocol, evaluate_set, load_predictor
    from semimtr_cli.fsutil import atomic_write_json
    from semimtr_cli.train.recipe import load_recipe
    from semimtr_cli.train.trainer import train

    out = Path(spec["out"])
    recipe = load_recipe(spec["recipe"], spec["overrides"])
    t0 = time.time()
    summary = train(recipe, out / "run", log=lambda m: print(m, flush=True))
    train_s = time.time() - t0
    result = {"name": spec["name"], "train_seconds": train_s, "summary": summary, "test": {}}
    if spec.get("eval_sets"):
        t1 = time.time()
        predictor = load_predictor(out / "run" / "last.pt")
        torch.set_num_threads(spec.get("threads", 1))
        result["parameters"] = sum(p.numel() for p in predictor.model.parameters())
        for set_name, path in spec["eval_sets"].items():
            evset = custom_sets(path)[0]
            res = evaluate_set(predictor, evset, Protocol(), list(predictor.heads), batch_size=64)
            result["test"][set_name] = {h: res.row(h)["accuracy"] for h in predictor.heads}
            result["test"][set_name]["evaluated"] = res.evaluated
        result["eval_seconds"] = time.time() - t1
    atomic_write_json(out / "result.json", result)


# ============================================================================ driver side
@dataclass
class Job:
    name: str
    kind: str  # calibration kind: lm, vis1, vis2, ft1, ft2
    stage_recipe: str
    overrides: list[str]
    deps: list[str] = field(default_factory=list)
    seed: int | None = None
    arm: str | None = None
    steps: int = 0
    evals: bool = True
    status: str = "pending"  # pending, running, done, failed, skipped
    started: float | None = None
    ended: float | None = None
    proc: subprocess.Popen | None = None
    note: str = ""
    results: list[Path] = field(default_factory=list)  # files the job must write


KIND_OF = {"vis_ce": "vis1", "vis_seqclr": "vis2", "ft_supervised": "ft1", "ft_semimtr": "ft2",
           "ft_soft": "ft2", "ft_threshold": "ft2", "lm": "lm"}


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


WORD_LENGTHS = (3, 6)  # letters per word in every study set (the model has 8 slots)


def study_words() -> list[str]:
    """The packaged English word list, words of 3-6 letters (8,610 words)."""
    from semimtr_cli.data.wordlist import packaged_words

    lo, hi = WORD_LENGTHS
    return [w for w in packaged_words().words if lo <= len(w) <= hi and w.isalpha()]


def make_data(data: Path, sizes: dict, workers: int) -> dict:
    """Render the study's data sets (skipped when already there with the same settings).

    Every set: lower-case words of 3-6 letters from the packaged list, no numbers.
    """
    from semimtr_cli.data.synth import generate
    from semimtr_cli.data.synth_fonts import resolve_fonts

    words = study_words()

    specs = {
        "labeled": dict(count=sizes["labeled"], seed=101, style="clean", font_set="sans", unlabeled=False),
        "unlabeled_shift": dict(count=sizes["unlabeled"] // 2, seed=201, style="clean", font_set="serif,mono", unlabeled=True),
        "unlabeled_wild": dict(count=sizes["unlabeled"] // 2, seed=202, style="wild", font_set="serif,mono", unlabeled=True),
        "valid_shift": dict(count=sizes["valid"], seed=303, style="clean", font_set="serif,mono", unlabeled=False),
        "test_shift": dict(count=sizes["test"], seed=404, style="clean", font_set="serif,mono", unlabeled=False),
        "test_wild": dict(count=sizes["test"], seed=405, style="wild", font_set="serif,mono", unlabeled=False),
        "test_clean": dict(count=sizes["test_clean"], seed=505, style="clean", font_set="sans", unlabeled=False),
    }
    info = {}
    # language-model corpus: the packaged list cut to 7 letters, so that the one-edit disturbance
    # of the LM validation (which may insert a letter) stays within the model's 8 slots
    from semimtr_cli.data.wordlist import packaged_words

    corpus = data / "lm_words.txt"
    data.mkdir(parents=True, exist_ok=True)
    lm_words = [w for w in packaged_words().words if 1 <= len(w) <= 7 and w.isalnum()]
    corpus.write_text("\n".join(lm_words) + "\n", encoding="utf-8")
    info["lm_corpus"] = {"path": str(corpus), "words": len(lm_words)}
    for name, s in specs.items():
        path = data / name
        stamp = path / "study.json"
        if stamp.is_file() and json.loads(stamp.read_text()) == s:
            info[name] = {**s, "path": str(path), "reused": True}
            continue
        fonts = resolve_fonts(None, s["font_set"], s["style"])
        summary = generate(path, s["count"], seed=s["seed"], lmdb=True, unlabeled=s["unlabeled"], style=s["style"],
                           fonts=fonts, words=words, case="lower", digits_fraction=0.0, overwrite=True, workers=workers)
        stamp.write_text(json.dumps(s))
        info[name] = {**s, "path": str(path), "fonts": [Path(f).name for f in fonts], "words": len(words),
                      "seconds": round(summary.get("seconds", 0.0), 1) if isinstance(summary, dict) else None}
    return info


def base_overrides(data: Path, seed: int, steps: int, eval_every: int, batch: int, lm_batch: int, kind: str) -> list[str]:
    ov = [f"train.seed={seed}", f"train.max_steps={steps}", f"train.eval_every={eval_every}", "train.save_every=0",
          f"train.log_every={max(1, min(10, steps // 20 or 1))}"]
    if kind == "lm":
        return ov + [f"train.batch_size={lm_batch}", f"data.corpus={data / 'lm_words.txt'}"]
    return ov + [f"train.batch_size={batch}", f"data.labeled=[{data / 'labeled'}]",
                 f"data.unlabeled=[{data / 'unlabeled_shift'},{data / 'unlabeled_wild'}]",
                 f"data.valid=[{data / 'valid_shift'}]"]


class Pool:
    """Runs Job subprocesses, at most ``lanes`` at a time, each logging to its folder."""

    def __init__(self, root: Path, lanes: int, deadline: float):
        self.root, self.lanes, self.deadline = root, lanes, deadline

    def start(self, job: Job, spec: dict) -> None:
        d = self.root / job.name
        d.mkdir(parents=True, exist_ok=True)
        (d / "spec.json").write_text(json.dumps(spec, indent=1))
        job.results = [Path(p["out"]) / "result.json" for p in spec.get("parts", [spec])]
        logf = open(d / "job.log", "w")
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        job.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--job", str(d / "spec.json")],
                                    stdout=logf, stderr=subprocess.STDOUT, cwd=str(REPO), env=env,
                                    start_new_session=True)
        job.status, job.started = "running", time.time()

    def poll(self, job: Job) -> bool:
        """True when the job has finished (done/failed); kills it past the hard deadline."""
        rc = job.proc.poll()
        if rc is None:
            if time.time() > self.deadline:
                os.killpg(job.proc.pid, signal.SIGKILL)
                job.proc.wait()
                job.status, job.ended, job.note = "failed", time.time(), "killed at the budget deadline"
                return True
            return False
        job.ended = time.time()
        ok = rc == 0 and all(p.is_file() for p in job.results)
        job.status = "done" if ok else "failed"
        if not ok:
            tail = (self.root / job.name / "job.log").read_text(errors="replace").strip().splitlines()[-3:]
            job.note = f"exit {rc}: " + " | ".join(tail)
        return True


def run_jobs(pool: Pool, jobs: list[Job], make_spec, estimate) -> None:
    """Dependency-aware greedy scheduling in list order; skips jobs that cannot finish in time."""
    running: list[Job] = []
    while True:
        for job in list(running):
            if pool.poll(job):
                running.remove(job)
                took = job.ended - job.started
                log(f"{job.name}: {job.status} in {took:.0f} s {job.note}")
        by_name = {j.name: j for j in jobs}
        for job in jobs:
            if job.status != "pending":
                continue
            if any(by_name[d].status in ("failed", "skipped") for d in job.deps):
                job.status, job.note = "skipped", "a run it starts from failed or was skipped"
                log(f"{job.name}: skipped ({job.note})")
        pending = [j for j in jobs if j.status == "pending"]
        if not pending and not running:
            return
        for job in pending:
            if len(running) >= pool.lanes:
                break
            if any(by_name[d].status != "done" for d in job.deps):
                continue
            est = estimate(job)
            if time.time() + est > pool.deadline:
                job.status, job.note = "skipped", f"would not finish within the budget (estimate {est:.0f} s)"
                log(f"{job.name}: skipped ({job.note})")
                continue
            pool.start(job, make_spec(job))
            running.append(job)
            log(f"{job.name}: started ({job.steps} steps, estimate {est:.0f} s)")
        time.sleep(0.5)


def step_time_from_metrics(run_dir: Path, batch: int) -> float | None:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [batch / e["images_per_s"] for e in events if e.get("event") == "train" and e.get("images_per_s")]
    times = times[1:] if len(times) > 2 else times  # drop the first (warm-up) window
    return statistics.median(times) if times else None


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-minutes", type=float, default=60.0, help="wall-clock budget of the whole study")
    ap.add_argument("--out", default="runs/study", help="study folder (data, runs, results.json)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="tiny data and steps: a smoke test of the pipeline")
    ap.add_argument("--page", default=None, help="results page to write (default docs/results.md; OUT/results.md with --quick)")
    ap.add_argument("--lanes", type=int, default=2, help="runs side by side (1 torch thread each)")
    ap.add_argument("--max-steps", type=int, default=1500, help="upper bound of the planned steps per run")
    ap.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.job:
        run_job(Path(args.job))
        return 0

    t_start = time.time()
    deadline = t_start + args.budget_minutes * 60
    out = Path(args.out).resolve()
    if (out / "runs").exists() or (out / "calibration").exists():
        raise SystemExit(f"{out} already holds a study; remove its runs/ and calibration/ folders or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    page = Path(args.page) if args.page else (out / "results.md" if args.quick else REPO / "docs" / "results.md")
    quick = args.quick
    sizes = (dict(labeled=96, unlabeled=192, valid=32, test=48, test_clean=32) if quick else
             dict(labeled=1000, unlabeled=4000, valid=200, test=600, test_clean=300))
    batch, lm_batch = (8, 32) if quick else (16, 128)

    log(f"study in {out}, budget {args.budget_minutes} min, seeds {args.seeds}, lanes {args.lanes}")
    t0 = time.time()
    data = out / "data"
    data_info = make_data(data, sizes, workers=1 if quick else 2)
    data_seconds = time.time() - t0
    log(f"data ready in {data_seconds:.0f} s")
    eval_sets = {name: str(data / name) for name in ("test_shift", "test_wild", "test_clean")}
    recipes = {"lm": RECIPES / "pretrain_lm.yaml", "vis": RECIPES / "pretrain_vision.yaml", "ft": RECIPES / "finetune.yaml"}

    # ------------------------------------------------------------------ calibration
    cal_steps = 3 if quick else 12
    cal_overrides = {
        "lm": (recipes["lm"], []),
        "vis1": (recipes["vis"], ["seqclr.mode=ce_only"]),
        "vis2": (recipes["vis"], ["seqclr.mode=semimtr"]),
        "ft1": (recipes["ft"], ["consistency.enabled=false"]),
        "ft2": (recipes["ft"], []),
    }
    # two lanes, each running its parts one after the other in one process
    lanes_parts = [["vis2", "lm", "ft1"], ["ft2", "vis1"]] if args.lanes >= 2 else [["vis2", "lm", "ft1", "ft2", "vis1"]]
    cal_jobs = [Job(f"lane{i}", "cal", "", [], steps=cal_steps, evals=False, arm=",".join(parts))
                for i, parts in enumerate(lanes_parts)]
    cal_pool = Pool(out / "calibration", args.lanes, deadline)

    def cal_part(kind: str) -> dict:
        recipe, extra = cal_overrides[kind]
        ov = base_overrides(data, 0, cal_steps, 0, batch, lm_batch, kind) + ["train.log_every=1"]
        if kind != "lm":
            ov.append("data.valid=[]")
        return {"name": kind, "recipe": str(recipe), "overrides": extra + ov,
                "out": str(out / "calibration" / kind), "threads": 1}

    def cal_spec(job: Job) -> dict:
        return {"parts": [cal_part(k) for k in job.arm.split(",")]}

    t0 = time.time()
    run_jobs(cal_pool, cal_jobs, cal_spec, lambda j: 0.0)
    calibration_seconds = time.time() - t0
    step_s: dict[str, float] = {}
    startup_s = []
    for job in cal_jobs:
        if job.status != "done":
            raise SystemExit(f"calibration run {job.name} failed: {job.note}")
        lane_steps = 0.0
        for kind in job.arm.split(","):
            res = json.loads((out / "calibration" / kind / "result.json").read_text())
            b = lm_batch if kind == "lm" else batch
            step_s[kind] = step_time_from_metrics(out / "calibration" / kind / "run", b) or res["train_seconds"] / cal_steps
            lane_steps += step_s[kind] * cal_steps
        startup_s.append(((job.ended - job.started) - lane_steps) / len(job.arm.split(",")))
    startup = max(3.0, statistics.median(startup_s))
    log("step times (s): " + ", ".join(f"{k} {v:.3f}" for k, v in step_s.items()) + f"; start-up {startup:.1f} s")

    # ------------------------------------------------------------------ plan
    n_valid_points = 6
    valid_n = min(200, sizes["valid"])
    test_n = 2 * sizes["test"] + sizes["test_clean"]
    # an eval forward pass costs about a third of a training step of the same images
    eval_img_s = step_s["ft1"] / batch / 3.0

    def overhead(kind: str) -> float:
        if kind == "lm":
            return startup + 5.0
        return startup + (n_valid_points * valid_n + test_n) * eval_img_s * (1.0 if kind.startswith("ft") else 0.7)

    seeds = args.seeds
    kinds_per_seed = ["vis1", "vis2", "ft1", "ft2", "ft2", "ft2"]
    report_s = 60.0 if not quick else 10.0
    available = (deadline - time.time() - report_s) * args.lanes * 0.8
    # steps: F per vision arm and fine-tuning run, 3F for the shared warm start, F for the LM.
    # The warm start blocks both lanes (the LM runs beside it, then nothing else is ready).
    fixed = args.lanes * overhead("vis1") + sum(overhead(k) for k in kinds_per_seed) * len(seeds)
    per_step = args.lanes * 3 * step_s["vis1"] + sum(step_s[k] for k in kinds_per_seed) * len(seeds)
    steps = int((available - fixed) / per_step) if per_step > 0 else args.max_steps
    steps = min(args.max_steps, steps)
    steps = max(2, steps - steps % 10) if steps >= 20 else max(2, steps)
    boot_steps, lm_steps = 3 * steps, steps
    eval_every = max(1, steps // n_valid_points)
    log(f"plan: warm start {boot_steps} steps, then {steps} steps per vision / fine-tuning run, "
        f"{lm_steps} language-model steps, validation every {eval_every} steps")

    # ------------------------------------------------------------------ runs
    boot_ckpt = out / "runs" / "warmstart" / "run" / "last.pt"
    jobs: list[Job] = [
        Job("warmstart", "vis1", str(recipes["vis"]), ["seqclr.mode=ce_only", "optim.schedule=constant", "augment.supervised=none"],
            seed=1000, arm="warmstart", steps=boot_steps),
        Job("lm", "lm", str(recipes["lm"]), [], steps=lm_steps, evals=False),
    ]
    for s in seeds:
        for arm in ("vis_seqclr", "vis_ce"):
            jobs.append(Job(f"{arm}_s{s}", KIND_OF[arm], str(recipes["vis"]), VISION_ARMS[arm][1] + [f"init.vision={boot_ckpt}"],
                            seed=s, arm=arm, steps=steps, deps=["warmstart"]))
        for arm, (_, ov) in FINETUNE_ARMS.items():
            jobs.append(Job(f"{arm}_s{s}", KIND_OF[arm], str(recipes["ft"]), ov, seed=s, arm=arm, steps=steps,
                            deps=["lm", f"vis_seqclr_s{s}"]))
    pool = Pool(out / "runs", args.lanes, deadline - report_s * 0.5)

    def job_spec(job: Job) -> dict:
        seed = job.seed if job.seed is not None else 0
        every = 0 if job.kind == "lm" else (max(1, job.steps // n_valid_points))
        ov = base_overrides(data, seed, job.steps, every, batch, lm_batch, job.kind)
        if job.kind.startswith("ft"):
            ov += [f"init.vision={out / 'runs' / f'vis_seqclr_s{seed}' / 'run' / 'last.pt'}",
                   f"init.language={out / 'runs' / 'lm' / 'run' / 'last.pt'}"]
        return {"name": job.name, "recipe": job.stage_recipe, "overrides": job.overrides + ov,
                "out": str(out / "runs" / job.name), "threads": 1,
                "eval_sets": eval_sets if job.evals else {}}

    def estimate(job: Job) -> float:
        return job.steps * step_s[job.kind] + overhead(job.kind)

    t0 = time.time()
    run_jobs(pool, jobs, job_spec, estimate)
    runs_seconds = time.time() - t0

    # ------------------------------------------------------------------ collect + report
    results = {}
    for job in jobs:
        entry = {"status": job.status, "note": job.note, "seed": job.seed, "arm": job.arm, "kind": job.kind,
                 "steps": job.steps, "estimate_s": round(estimate(job), 1),
                 "wall_s": round(job.ended - job.started, 1) if job.started and job.ended else None}
        rfile = out / "runs" / job.name / "result.json"
        if job.status == "done" and rfile.is_file():
            entry.update(json.loads(rfile.read_text()))
        results[job.name] = entry
    import torch

    study = {
        "command": "python experiments/run_study.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "budget_minutes": args.budget_minutes,
        "quick": quick,
        "seeds": seeds,
        "lanes": args.lanes,
        "threads_per_run": 1,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_at_start": list(os.getloadavg())},
        "data": data_info,
        "batch_size": batch,
        "lm_batch_size": lm_batch,
        "steps": steps,
        "lm_steps": lm_steps,
        "warmstart_steps": boot_steps,
        "eval_every": eval_every,
        "calibration": {"steps": cal_steps, "step_seconds": step_s, "startup_seconds": startup},
        "timing": {"data_s": data_seconds, "calibration_s": calibration_seconds, "runs_s": runs_seconds},
        "runs": results,
    }
    from semimtr_cli.fsutil import atomic_write_json

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from study_report import write_report

    study["timing"]["total_s"] = time.time() - t_start  # up to writing the page
    write_report(study, out, page)
    study["timing"]["with_page_s"] = time.time() - t_start
    atomic_write_json(out / "results.json", study)
    log(f"wrote {out / 'results.json'} and {page}; total {study['timing']['total_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
