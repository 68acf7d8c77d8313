"""Data-loader throughput: LMDB read + decode + augmentation + resize/normalise, batched.

Builds an LMDB of ~31x69 px word crops (the size of real ICDAR 2015 crops) with the
project's own renderer, then iterates a DataLoader over CropDataset for each pipeline
(none, abinet, strong1, strong2, and the two-view teacher-student / SeqCLR datasets) with
0, 1 and 2 worker processes, batch 64. The main process does nothing but fetch batches, so
this is the rate a training loop could be fed at. Reported: images/s (crops per second; a
two-view item counts once) per setting.

Writes benchmarks/results/loader_speed.json. Usage:

    python benchmarks/loader_speed.py [--count 3000] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.runtime import machine_record
from semimtr_cli.data.augment.pipelines import PerSourcePipeline
from semimtr_cli.data.datasets import CropDataset, collate
from semimtr_cli.data.lmdb.io import write_lmdb
from semimtr_cli.data.synth.fonts import resolve_fonts
from semimtr_cli.data.synth.render import render_word

SETTINGS = {
    "none": ("none",),
    "abinet": ("abinet",),
    "strong1": ("strong1",),
    "strong2": ("strong2",),
    "teacher-student": ("abinet", "strong1"),
    "seqclr": ("strong1", "strong1"),
}


def make_lmdb(path: Path, count: int) -> None:
    """``count`` rendered crops resized to about 31x69 px, PNG-encoded."""
    import io

    import numpy as np

    fonts = resolve_fonts(style="clean")
    words = ["exit", "coffee", "hotel", "london", "sale", "open", "pizza", "street", "bank", "station"]
    samples = []
    for i in range(count):
        rng = np.random.default_rng([7, i])
        img = render_word(words[i % len(words)], fonts[i % len(fonts)], rng, "clean").resize((69, 31))
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        samples.append((buf.getvalue(), words[i % len(words)]))
    write_lmdb(path, samples)


def measure(lmdb: Path, views: tuple[str, ...], workers: int, batches: int, batch_size: int) -> float:
    cs = Charset.preset("36")
    transforms = tuple(None if v == "none" else PerSourcePipeline(v, seed=1) for v in views)
    ds = CropDataset(lmdb, cs, views=transforms)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=collate, num_workers=workers,
                        generator=torch.Generator().manual_seed(0), persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # start-up (worker spawn, LMDB open) is not throughput
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        n += len(batch["label"])
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "loader_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        lmdb = Path(tmp) / "crops"
        make_lmdb(lmdb, args.count)
        for name in args.settings:
            for w in args.workers:
                ips = measure(lmdb, SETTINGS[name], w, args.batches, args.batch_size)
                results.append({"pipeline": name, "views": list(SETTINGS[name]), "workers": w, "images_per_s": round(ips, 1)})
                print(f"{name:16s} workers={w}  {ips:8.1f} images/s", flush=True)
    out = {
        "benchmark": "loader_speed",
        "machine": machine_record(),
        "batch_size": args.batch_size,
        "image_size_px": [31, 69],
        "main_process_threads": 1,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
