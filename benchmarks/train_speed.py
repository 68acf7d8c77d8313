"""Training throughput per stage, paper-size and tiny models, data loader on (CPU or GPU).

For each (stage, size) it runs the real trainer (`semimtr_cli.train.trainer.train`) on
synthetic LMDBs / a word list for a few optimizer steps with ``log_every=1`` and reports
the median images/s of the steps after the first two (start-up and worker spawn excluded).
Stage 1 and 3 images are two-view crops (one crop counts once); stage 2 "images" are words.

Writes benchmarks/results/train_speed.json. Usage:

    python benchmarks/train_speed.py [--sizes tiny paper] [--stages pretrain-vision pretrain-lm finetune]
        [--threads 2] [--device cpu] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semimtr_cli.core.runtime import machine_record
from semimtr_cli.data.synth.generate import generate
from semimtr_cli.train.recipe import load_recipe
from semimtr_cli.train.trainer import train

RECIPES = {
    ("pretrain-vision", "tiny"): "recipes/cpu-tiny/pretrain_vision.yaml",
    ("pretrain-lm", "tiny"): "recipes/cpu-tiny/pretrain_lm.yaml",
    ("finetune", "tiny"): "recipes/cpu-tiny/finetune.yaml",
    ("pretrain-vision", "paper"): "recipes/semimtr/pretrain_vision.yaml",
    ("pretrain-lm", "paper"): "recipes/semimtr/pretrain_lm.yaml",
    ("finetune", "paper"): "recipes/semimtr/finetune.yaml",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "paper"])
    ap.add_argument("--stages", nargs="+", default=["pretrain-vision", "pretrain-lm", "finetune"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: 12 tiny, 5 paper)")
    ap.add_argument("--batch-tiny", type=int, default=32)
    ap.add_argument("--batch-paper", type=int, default=8, help="paper-size batch (the paper's 232-304 do not fit 2 CPU cores)")
    ap.add_argument("--batch-lm", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "lab", 512, seed=0, lmdb=True)
        generate(tmp / "unl", 512, seed=1, lmdb=True, unlabeled=True, style="wild")
        for size in args.sizes:
            for stage in args.stages:
                steps = args.steps or (12 if size == "tiny" else 5)
                batch = args.batch_lm if stage == "pretrain-lm" else (args.batch_tiny if size == "tiny" else args.batch_paper)
                sets = [
                    f"data.labeled=[{tmp / 'lab'}]", f"data.unlabeled=[{tmp / 'unl'}]", "data.valid=[]",
                    "data.labeled_synth=[]", "data.unlabeled_synth=[]", "data.valid_synth=[]",
                    f"data.corpus={ROOT / 'semimtr_cli/resources/english_words.txt'}", "data.corpus_format=lines",
                    "data.valid_corpus=null", "data.valid_split=0", "data.weights=[0.5,0.5]",
                    f"data.num_workers={0 if stage == 'pretrain-lm' else args.workers}",
                    f"train.max_steps={steps}", f"train.batch_size={batch}", "train.log_every=1",
                    "train.eval_every=0", "train.save_every=0", f"train.threads={args.threads}",
                    f"train.device={args.device}", f"train.precision={args.precision}",
                ]
                recipe = load_recipe(ROOT / RECIPES[(stage, size)], sets)
                run = tmp / f"run-{stage}-{size}"
                summary = train(recipe, run)
                events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
                rates = [e["images_per_s"] for e in events if e["event"] == "train"][2:]
                row = {"stage": stage, "size": size, "batch_size": batch, "steps": steps,
                       "images_per_s": round(statistics.median(rates), 2) if rates else None,
                       "seconds_per_step": round(batch / statistics.median(rates), 3) if rates else None,
                       "precision": summary["precision"], "device": summary["device"]}
                results.append(row)
                print(json.dumps(row), flush=True)
    out = {
        "benchmark": "train_speed",
        "machine": machine_record(),
        "threads": args.threads, "loader_workers": args.workers,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
