"""Peak resident memory (RSS) of typical jobs, each measured in its own child process.

Settings: eval forward of the paper-size model (batch 64 and 8), a few training steps of each
stage at paper size (batch 8; the language model at batch 256) and at tiny size (batch 32),
with the data loader in-process. Each child runs the real code path and reports its own
``ru_maxrss``; the parent writes benchmarks/results/memory.json. Usage:

    python benchmarks/memory.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, torch
from pathlib import Path
sys.path.insert(0, {root!r})
torch.set_num_threads({threads})
kind, size, batch, tmp = {kind!r}, {size!r}, {batch}, Path({tmp!r})
if kind == "eval":
    from semimtr_cli.core.charset import Charset
    from semimtr_cli.model.factory import build_model
    model = build_model("full", None, Charset.preset("36")).eval()
    with torch.no_grad():
        model(torch.randn(batch, 3, 32, 128))
else:
    from semimtr_cli.train.recipe import load_recipe
    from semimtr_cli.train.trainer import train
    recipes = {{"paper": "recipes/semimtr/{{}}.yaml", "tiny": "recipes/cpu-tiny/{{}}.yaml"}}
    sets = [f"data.labeled=[{{tmp / 'lab'}}]", f"data.unlabeled=[{{tmp / 'unl'}}]", "data.valid=[]",
            "data.labeled_synth=[]", "data.unlabeled_synth=[]", "data.valid_synth=[]",
            "data.corpus={root}/semimtr_cli/resources/english_words.txt", "data.corpus_format=lines",
            "data.valid_corpus=null", "data.valid_split=0", "data.num_workers=0", "train.max_steps=3",
            f"train.batch_size={{batch}}", "train.eval_every=0", "train.save_every=0", "train.device=cpu",
            "train.precision=fp32", "data.weights=[0.5,0.5]"]
    train(load_recipe(Path({root!r}) / recipes[size].format(kind), sets), tmp / f"run-{{kind}}-{{size}}")
print(json.dumps({{"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

SETTINGS = [
    ("eval", "paper", 64), ("eval", "paper", 8),
    ("pretrain_vision", "paper", 8), ("pretrain_lm", "paper", 256), ("finetune", "paper", 8),
    ("pretrain_vision", "tiny", 32), ("finetune", "tiny", 32),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "memory.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from semimtr_cli.core.runtime import machine_record
    from semimtr_cli.data.synth.generate import generate

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "lab", 128, seed=0, lmdb=True)
        generate(Path(tmp) / "unl", 128, seed=1, lmdb=True, unlabeled=True)
        for kind, size, batch in SETTINGS:
            code = CHILD.format(root=str(ROOT), threads=args.threads, kind=kind, size=size, batch=batch, tmp=tmp)
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                raise SystemExit(f"{kind}/{size} failed:\n{proc.stderr[-2000:]}")
            peak = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
            row = {"stage": kind.replace("_", "-"), "size": size, "batch_size": batch, "peak_rss_mb": round(peak, 1)}
            results.append(row)
            print(json.dumps(row), flush=True)
    out = {"benchmark": "memory", "machine": machine_record(),
           "threads": args.threads, "note": "peak RSS of a child process doing only this job (CPU, fp32)",
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
