"""End-to-end evaluation throughput (images/s): LMDB read + decode + preprocess + model + greedy
decode + metrics, exactly the path of ``semimtr eval`` (semimtr_cli.evaluation.scoring.evaluate_set), at a
given batch size with 0 and N DataLoader workers. Writes JSON (default
benchmarks/results/eval_speed.json).

The benchmark LMDB is rendered by the synthetic generator (``wild`` style, PNG, about 32 px
high), the model is built at the chosen size with random weights (speed does not depend on the
weights). Each (model, workers) setting is run ``--repeats`` times, interleaved, median kept.

With ``--official-repo CLONE --official-python PY`` the paper model's rows also time the official
evaluation path (benchmarks/official_eval.py in a subprocess: the official dataset class, the
teacher-student fusion model on two identical views, greedy decoding) on the same LMDB, weights,
batch, workers and threads, right after ours in every repeat, and report the ratio.

Example (about 3 minutes on 2 cores):
    python benchmarks/eval_speed.py --threads 2 --images 256 --batch-size 64 --workers 0,2
    python benchmarks/eval_speed.py --models paper --official-repo CLONE --official-python OFFICIAL_ENV/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.fsutil import atomic_write_json
from semimtr_cli.core.runtime import machine_record
from semimtr_cli.data.benchmarks import resolve_sets
from semimtr_cli.data.synth.generate import generate
from semimtr_cli.evaluation.protocol import Protocol
from semimtr_cli.evaluation.scoring import evaluate_set
from semimtr_cli.infer.predictor import Predictor
from semimtr_cli.model.checkpoint import save_checkpoint
from semimtr_cli.model.config import ModelConfig
from semimtr_cli.model.factory import build_model


def official_run(args, lmdb: Path, weights: Path, workers: int) -> dict:
    """One pass of the official evaluation path (benchmarks/official_eval.py) in a subprocess."""
    cmd = [args.official_python, str(Path(__file__).with_name("official_eval.py")), "--repo", str(args.official_repo),
           "--lmdb", str(lmdb), "--weights", str(weights), "--batch-size", str(args.batch_size),
           "--workers", str(workers), "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"official evaluation failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads of the main process")
    ap.add_argument("--images", type=int, default=256, help="benchmark size (samples in the LMDB)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", default="0,2", help="comma list of DataLoader worker counts")
    ap.add_argument("--models", default="paper,tiny", help="comma list of model presets (paper, tiny)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--official-repo", type=Path, default=None, help="local copy of the official SemiMTR code")
    ap.add_argument("--official-python", default=sys.executable, help="interpreter with the official requirements")
    ap.add_argument("--out", default="benchmarks/results/eval_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    workers = [int(w) for w in args.workers.split(",")]
    cs = Charset.preset("36")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gen = generate(root / "test" / "IIIT5k", args.images, seed=0, lmdb=True, style="wild")
        sets, subsets = resolve_sets("IIIT5k", root)
        proto = Protocol(subsets=subsets)
        for preset in args.models.split(","):
            torch.manual_seed(0)
            cfg = ModelConfig() if preset == "paper" else ModelConfig.preset(preset)
            model = build_model("full", cfg, cs)
            ckpt = save_checkpoint(root / f"{preset}.pt", model, cs)
            official = args.official_repo is not None and preset == "paper"
            if official:
                torch.save(model.state_dict(), root / "paper_state.pt")
            predictor = Predictor(ckpt, device="cpu", precision=args.precision)
            # warm-up (allocator, kernels) on one batch
            with torch.inference_mode():
                predictor.forward(torch.zeros(min(args.batch_size, 8), 3, cfg.image_h, cfg.image_w))
            runs: dict[int, list[float]] = {w: [] for w in workers}
            off_runs: dict[int, list[dict]] = {w: [] for w in workers}
            accuracy = None
            for _ in range(args.repeats):
                for w in workers:
                    start = time.perf_counter()
                    with torch.inference_mode():
                        res = evaluate_set(predictor, sets[0], proto, ["alignment"], batch_size=args.batch_size, workers=w)
                    seconds = time.perf_counter() - start
                    assert res.evaluated + len(res.bad_images) + sum(res.skipped_labels.values()) == args.images
                    runs[w].append(args.images / seconds)
                    accuracy = res.metrics["alignment"].accuracy
                    if official:
                        off_runs[w].append(official_run(args, sets[0].path, root / "paper_state.pt", w))
            for w in workers:
                row = {"model": preset, "workers": w, "batch_size": args.batch_size, "precision": args.precision,
                       "images_per_s": statistics.median(runs[w]), "runs": runs[w]}
                line = f"{preset:6s} workers={w}: {statistics.median(runs[w]):.1f} images/s (runs {runs[w]})"
                if official:
                    off = [r["images_per_s"] for r in off_runs[w]]
                    row.update(official_images_per_s=statistics.median(off), official_runs=off,
                               ratio_by_repeat=[round(a / b, 3) for a, b in zip(runs[w], off)],
                               word_accuracy=accuracy, official_word_accuracy=off_runs[w][-1]["word_accuracy"])
                    row["ratio_median"] = statistics.median(row["ratio_by_repeat"])
                    line += f"; official {row['official_images_per_s']:.1f} images/s, ratio {row['ratio_median']:.2f}x"
                results.append(row)
                print(line, flush=True)
    payload = {
        "what": "semimtr eval end to end (LMDB decode + preprocess + model + decode + metrics), images/s",
        "machine": machine_record(),  # load average at the end: other processes on the machine skew the figures
        "threads": args.threads, "images": args.images, "mean_width": gen["mean_width"], "results": results,
        "command": "python benchmarks/eval_speed.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
    }
    atomic_write_json(Path(args.out), payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
