"""One GPU check: the numbers a session with a GPU brings back, in one command (<= 8 min on one GPU).

    python benchmarks/gpu_check.py [--official-repo CLONE] [--steps 20] [--out benchmarks/results/gpu_check.json]
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.json    # CPU, tiny model: the plumbing

Sections, each timed and each failure recorded in the JSON instead of ending the script:

1. ``train``: every stage (pretrain-vision, pretrain-lm, finetune) through the real trainer at
   the paper batch (recipes/semimtr), ``--steps`` optimizer steps, in bf16 and in fp16 with the
   grad scaler: images/s (median of the steps after the first two) and peak GPU memory.
2. ``official``: the official modules' train step (forward, CE on every head and iteration,
   backward) at the finetune batch, fp32 and bf16 autocast, beside ours on the same weights in
   the same run (needs ``--official-repo``, a local clone of amazon-science/semimtr-text-recognition).
3. ``eval``: full-model eval images/s per precision (fp32, bf16, fp16) at batch 256.
4. ``compile``: the vision model's train step with and without ``torch.compile`` (compile time
   apart).
5. ``loader``: data-loader images/s (two views, strong augmentation, LMDB crops) with W workers,
   against the fine-tuning images/s of section 1 (the loader must keep the GPU fed).
6. ``ddp``: one process in DistributedDataParallel on nccl against the bare model, s per step.

``--dry-run`` runs every section on the CPU with the cpu-tiny model, a few steps, small
batches, fp32/bf16 only, ``torch.compile`` with the eager backend and DDP on gloo, so the test
suite keeps this script working. The JSON records the machine (runtime.machine_record).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.fsutil import atomic_write_json
from semimtr_cli.core.runtime import machine_record

STAGES = ("pretrain-vision", "pretrain-lm", "finetune")
RECIPE_FILE = {"pretrain-vision": "pretrain_vision.yaml", "pretrain-lm": "pretrain_lm.yaml", "finetune": "finetune.yaml"}


class Plan:
    """Sizes of one check: the GPU run or the CPU dry run."""

    def __init__(self, dry: bool, steps: int):
        self.dry = dry
        self.device = "cpu" if dry else "cuda"
        self.recipes = ROOT / "recipes" / ("cpu-tiny" if dry else "semimtr")
        self.steps = 3 if dry else steps
        self.warmup, self.repeats = (1, 1) if dry else (2, 5)  # timed calls per measurement
        self.batch = {"pretrain-vision": 8, "pretrain-lm": 32, "finetune": 8} if dry else None  # None: the recipe's
        self.train_precisions = ("fp32",) if dry else ("bf16", "fp16")
        self.eval_precisions = ("fp32", "bf16") if dry else ("fp32", "bf16", "fp16")
        self.official_precisions = ("fp32",) if dry else ("fp32", "bf16")  # the paper model in bf16 on a CPU takes minutes
        self.eval_batch = 8 if dry else 256
        self.model_batch = 2 if dry else 232
        self.loader_workers = (0,) if dry else (4, 8, 12)
        self.crops = 256 if dry else 4096
        self.compile_backend = "eager" if dry else "inductor"
        self.ddp_backend = "gloo" if dry else "nccl"


def timed(name: str, fn, report: dict, out: Path) -> None:
    """Run one section; its result, seconds and any error go into ``report[name]``, and the report so
    far is written to ``out`` (a run stopped by a time limit still leaves every finished section)."""
    t0 = time.time()
    try:
        report[name] = {"result": fn()}
    except Exception as exc:  # noqa: BLE001 - a GPU check reports every section it could run
        report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)}
    report[name]["seconds"] = round(time.time() - t0, 1)
    print(f"{name}: {json.dumps(report[name].get('result', report[name].get('error')))[:400]}", flush=True)
    atomic_write_json(out, report)


def peak_memory_mb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


# ------------------------------------------------------------------------------ 1. stages
def train_section(plan: Plan, data: Path) -> list[dict]:
    from semimtr_cli.train.recipe import load_recipe
    from semimtr_cli.train.trainer import train

    rows = []
    for stage in STAGES:
        for precision in plan.train_precisions:
            sets = [f"data.labeled=[{data / 'lab'}]", f"data.unlabeled=[{data / 'unl'}]", "data.valid=[]",
                    "data.labeled_synth=[]", "data.unlabeled_synth=[]", "data.valid_synth=[]",
                    f"data.corpus={ROOT / 'semimtr_cli/resources/english_words.txt'}", "data.corpus_format=lines",
                    "data.valid_corpus=null", "data.valid_split=0", f"train.max_steps={plan.steps}",
                    "train.log_every=1", "train.eval_every=0", "train.save_every=0", f"train.device={plan.device}",
                    f"train.precision={precision}"]
            if stage != "pretrain-lm":
                sets.append("data.weights=[0.5,0.5]")
            if plan.batch:  # dry run: small batches, no loader workers; GPU: the recipe's batch and workers
                sets += [f"train.batch_size={plan.batch[stage]}", "data.num_workers=0"]
            recipe = load_recipe(plan.recipes / RECIPE_FILE[stage], sets)
            with tempfile.TemporaryDirectory() as run:
                reset_peak(plan.device)
                summary = train(recipe, Path(run) / "run")
                events = [json.loads(x) for x in (Path(run) / "run" / "metrics.jsonl").read_text().splitlines()]
            rates = [e["images_per_s"] for e in events if e["event"] == "train"][2:] or \
                [e["images_per_s"] for e in events if e["event"] == "train"]
            rows.append({"stage": stage, "precision": summary["precision"], "batch": recipe.train.batch_size,
                         "steps": summary["steps"], "images_per_s": round(statistics.median(rates), 1),
                         "peak_memory_mb": peak_memory_mb(plan.device)})
    return rows


# ------------------------------------------------------------------------------ 2-4. model steps
def full_model(plan: Plan, paper: bool = False):
    """(full model on the plan's device, its model config); ``paper``: the paper-size model even in a dry run."""
    from semimtr_cli.model.factory import build_model
    from semimtr_cli.train.recipe import load_recipe

    charset = Charset.preset("36")
    recipes = ROOT / "recipes" / "semimtr" if paper else plan.recipes
    cfg = load_recipe(recipes / "finetune.yaml").model.resolved(charset)
    return build_model("full", cfg, charset).to(plan.device), cfg


def step_seconds(fn, plan: Plan) -> float:
    """Median seconds of ``fn()`` over ``plan.repeats`` calls after ``plan.warmup`` (CUDA synchronised)."""
    device, times = plan.device, []
    for k in range(plan.warmup + plan.repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        if k >= plan.warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def official_section(plan: Plan, repo: Path | None) -> dict:
    from model_speed import Variant, load_official

    if repo is None:
        return {"skipped": "no --official-repo given"}
    model, cfg = full_model(plan, paper=True)  # the official config below is the paper model
    iter_cls, _, ocfg = load_official(repo, repo / "data" / "charset_36.txt")
    official = iter_cls(ocfg).to(plan.device)
    official.load_state_dict(model.state_dict())
    x = torch.randn(plan.model_batch, 3, cfg.image_h, cfg.image_w, device=plan.device)
    target = torch.randint(0, cfg.num_classes, (plan.model_batch, cfg.max_slots), device=plan.device)
    out = {}
    for precision in plan.official_precisions:
        for name, m in (("semimtr", model), ("official", official)):
            v = Variant(name, m, precision, official=name == "official")
            v.autocast = lambda p=precision: torch.autocast(plan.device, dtype=torch.bfloat16, enabled=p == "bf16")
            s = step_seconds(lambda: v.train_step(x, target), plan)
            out[f"{name}_{precision}_images_per_s"] = round(plan.model_batch / s, 1)
        out[f"ratio_{precision}"] = round(out[f"semimtr_{precision}_images_per_s"] / out[f"official_{precision}_images_per_s"], 3)
    return out


def eval_section(plan: Plan) -> dict:
    model, cfg = full_model(plan)
    model.eval()
    x = torch.randn(plan.eval_batch, 3, cfg.image_h, cfg.image_w, device=plan.device)
    out = {}
    for precision in plan.eval_precisions:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

        def run():
            with torch.no_grad(), torch.autocast(plan.device, dtype=dtype or torch.float32, enabled=dtype is not None):
                model(x)
        out[precision] = round(plan.eval_batch / step_seconds(run, plan), 1)
    return {"batch": plan.eval_batch, "images_per_s": out}


def compile_section(plan: Plan) -> dict:
    model, cfg = full_model(plan)
    vision = model.vision.train()
    x = torch.randn(plan.model_batch, 3, cfg.image_h, cfg.image_w, device=plan.device)
    target = torch.randint(0, cfg.num_classes, (plan.model_batch * cfg.max_slots,), device=plan.device)
    dtype = torch.float32 if plan.dry else torch.bfloat16

    def step(m):
        with torch.autocast(plan.device, dtype=dtype, enabled=not plan.dry):
            loss = F.cross_entropy(m(x).logits.float().flatten(0, 1), target)
        loss.backward()
        vision.zero_grad(set_to_none=True)

    eager = step_seconds(lambda: step(vision), plan)
    compiled = torch.compile(vision, backend=plan.compile_backend)
    t0 = time.time()
    step(compiled)  # compilation happens here
    compile_s = time.time() - t0
    fast = step_seconds(lambda: step(compiled), plan)
    return {"backend": plan.compile_backend, "eager_images_per_s": round(plan.model_batch / eager, 1),
            "compiled_images_per_s": round(plan.model_batch / fast, 1), "speedup": round(eager / fast, 3),
            "compile_seconds": round(compile_s, 1)}


# ------------------------------------------------------------------------------ 5. loader
def loader_section(plan: Plan, data: Path, train_rows: list[dict]) -> dict:
    from torch.utils.data import DataLoader

    from semimtr_cli.data.augment.pipelines import PerSourcePipeline
    from semimtr_cli.data.datasets import CropDataset, collate

    ds = CropDataset(data / "lab", Charset.preset("36"),
                     views=(PerSourcePipeline("abinet", seed=1), PerSourcePipeline("strong1", seed=1)))
    batch = 8 if plan.dry else 232
    out = {}
    for workers in plan.loader_workers:
        loader = DataLoader(ds, batch_size=batch, shuffle=True, collate_fn=collate, num_workers=workers,
                            persistent_workers=workers > 0, drop_last=True)
        n, t0 = 0, None
        for k, _ in enumerate(loader):
            if k == 1:
                t0 = time.perf_counter()  # the first batch pays the worker start-up
            elif k > 1:
                n += batch  # drop_last: every batch is full
            if k >= (6 if plan.dry else 30):
                break
        out[str(workers)] = round(n / (time.perf_counter() - t0), 1) if t0 and n else None
    finetune = [r["images_per_s"] for r in train_rows if r["stage"] == "finetune"]
    best = max(v for v in out.values() if v) if any(out.values()) else None
    return {"batch": batch, "loader_images_per_s_by_workers": out, "finetune_training_images_per_s": max(finetune, default=None),
            "loader_over_training": round(best / max(finetune), 2) if best and finetune else None}


# ------------------------------------------------------------------------------ 6. ddp
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_section(plan: Plan) -> dict:
    import torch.distributed as dist

    model, cfg = full_model(plan)
    vision = model.vision.train()
    x = torch.randn(plan.model_batch, 3, cfg.image_h, cfg.image_w, device=plan.device)
    target = torch.randint(0, cfg.num_classes, (plan.model_batch * cfg.max_slots,), device=plan.device)

    def step(m):
        F.cross_entropy(m(x).logits.flatten(0, 1), target).backward()
        vision.zero_grad(set_to_none=True)

    bare = step_seconds(lambda: step(vision), plan)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    dist.init_process_group(plan.ddp_backend, rank=0, world_size=1)
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            vision, device_ids=[torch.cuda.current_device()] if plan.device == "cuda" else None)
        ddp = step_seconds(lambda: step(wrapped), plan)
    finally:
        dist.destroy_process_group()
    return {"backend": plan.ddp_backend, "bare_s_per_step": round(bare, 4), "ddp_s_per_step": round(ddp, 4),
            "overhead": round(ddp / bare, 3)}


# ------------------------------------------------------------------------------ main
def make_data(folder: Path, count: int, workers: int) -> None:
    from semimtr_cli.data.synth.generate import generate

    generate(folder / "lab", count, seed=0, lmdb=True, workers=workers)
    generate(folder / "unl", count, seed=1, lmdb=True, unlabeled=True, style="wild", workers=workers)


def default_out(dry_run: bool) -> Path:
    """Where the report goes without --out: the committed results file only for a real GPU run."""
    if dry_run:
        return Path(tempfile.gettempdir()) / "gpu_check_dry_run.json"
    return ROOT / "benchmarks" / "results" / "gpu_check.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny model, a few steps: check the plumbing")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per training run (GPU)")
    ap.add_argument("--official-repo", type=Path, default=None, help="local clone of the official SemiMTR code")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON report (default: benchmarks/results/gpu_check.json for a GPU run; a dry run "
                         "writes gpu_check_dry_run.json in the system's temp folder, never over the committed GPU figures)")
    args = ap.parse_args(argv)
    args.out = args.out or default_out(args.dry_run)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --dry-run on a CPU machine")
    plan = Plan(args.dry_run, args.steps)
    torch.manual_seed(0)
    report: dict = {"benchmark": "gpu_check", "dry_run": plan.dry, "machine": machine_record(),
                    "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        data = Path(tmp)
        timed("data", lambda: make_data(data, plan.crops, 2 if plan.dry else min(8, os.cpu_count() or 2)) or {"crops": plan.crops}, report, args.out)
        timed("train", lambda: train_section(plan, data), report, args.out)
        timed("official", lambda: official_section(plan, args.official_repo), report, args.out)
        timed("eval", lambda: eval_section(plan), report, args.out)
        timed("compile", lambda: compile_section(plan), report, args.out)
        timed("loader", lambda: loader_section(plan, data, report["train"].get("result") or []), report, args.out)
        timed("ddp", lambda: ddp_section(plan), report, args.out)
    report["total_seconds"] = round(time.time() - t0, 1)
    atomic_write_json(args.out, report)
    failed = [k for k, v in report.items() if isinstance(v, dict) and "error" in v]
    print(f"wrote {args.out} in {report['total_seconds']} s" + (f"; failed sections: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
