#!/usr/bin/env python
"""Where a model misses on the held-out real crops: word accuracy by source and by crop shape.

    python experiments/crop_shape_accuracy.py CHECKPOINT [CHECKPOINT ...] [--real data/real]
        [--split test] [--json FILE]

Each checkpoint is scored once with ``semimtr eval --errors`` (its final head) on ``REAL/SPLIT``
(``experiments/prepare_real_crops.py``), then each crop falls in a bucket by source and by

* **height**: the crop's height in pixels as stored (a real crop under 32 px is upsampled to the
  model's 32);
* **box per letter**: ``width / height / letters``, how wide the box is for its word. A level
  word in a tight box gives about 0.4-0.7; well under 0.3 the box is much taller than the
  word: steeply rotated or vertical text in the axis-aligned box a detector cut around it.

Only the real crops' training splits are read; never a benchmark test split.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from prepare_real_crops import source_ranges  # noqa: E402
from semimtr_cli.core.fsutil import atomic_write_json  # noqa: E402
from semimtr_cli.data.lmdb.io import LmdbReader, key_index  # noqa: E402

HEIGHTS = (0, 20, 32, 48, 10**6)  # px
PER_LETTER = (0.0, 0.3, 0.5, 10.0**6)


def crop_shapes(lmdb: Path) -> list[tuple[int, float]]:
    """(height in px, width / height / letters) of each crop of ``lmdb``, in key order."""
    reader = LmdbReader(lmdb)
    shapes = []
    for i in range(len(reader)):
        data, label = reader.sample(i)
        w, h = Image.open(io.BytesIO(data)).size
        shapes.append((h, w / h / max(1, len(label or ""))))
    return shapes


def wrong_keys(checkpoint: str, lmdb: Path, threads: int) -> set[int]:
    """1-based keys of the crops the checkpoint's final head reads wrong."""
    with tempfile.TemporaryDirectory() as tmp:
        errors = Path(tmp) / "errors.csv"
        subprocess.run(["semimtr", "eval", checkpoint, "--bench", str(lmdb), "--threads", str(threads), "--errors", str(errors)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return {key_index(r["key"]) for r in csv.DictReader(errors.open(encoding="utf-8"))}


def _bucket(value: float, edges: tuple) -> str:
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo <= value < hi:
            return f"{lo:g}-{hi:g}" if hi < 10**6 else f">={lo:g}"
    raise ValueError(value)


def buckets(shapes: list[tuple[int, float]], wrong: set[int], ranges: dict[str, range]) -> dict:
    """{source: {"all" | "height H0-H1" | "per letter P0-P1": {"n", "accuracy"}}}."""
    out: dict[str, dict] = {}
    for source, keys in ranges.items():
        groups: dict[str, list[bool]] = {"all": []}
        for k in keys:
            height, per_letter = shapes[k - 1]
            right = k not in wrong
            for name in ("all", f"height {_bucket(height, HEIGHTS)}", f"per letter {_bucket(per_letter, PER_LETTER)}"):
                groups.setdefault(name, []).append(right)
        out[source] = {name: {"n": len(v), "accuracy": round(100.0 * sum(v) / len(v), 1)}
                       for name, v in sorted(groups.items()) if v}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--real", type=Path, default=ROOT / "data" / "real")
    ap.add_argument("--split", default="test")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    lmdb = args.real / args.split
    shapes, ranges = crop_shapes(lmdb), source_ranges(args.real, args.split)
    report = {}
    for checkpoint in args.checkpoints:
        report[checkpoint] = buckets(shapes, wrong_keys(checkpoint, lmdb, args.threads), ranges)
        for source, groups in report[checkpoint].items():
            cells = " | ".join(f"{name} {g['accuracy']:.0f} % (n={g['n']})" for name, g in groups.items())
            print(f"{checkpoint} {source}: {cells}", flush=True)
    if args.json:
        atomic_write_json(args.json, {"split": str(lmdb), "checkpoints": report,
                                      "command": "python experiments/crop_shape_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
