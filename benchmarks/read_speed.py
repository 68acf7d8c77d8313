"""``semimtr read`` on a folder of crops beside RapidOCR's recognizer on the same files, wall clock.

    pip install -e ".[anchor]"
    python benchmarks/read_speed.py --data data/benchmarks [--set IIIT5k_3000] [--limit 1000] \
        [--checkpoints default model.onnx] [--threads 2] [--out benchmarks/results/read_speed.json]

What a user runs: the first ``--limit`` crops of one benchmark set are written to a temporary
folder as image files (their stored bytes), then each command reads the whole folder in a fresh
process and is timed from start to exit (Python start, model load, decoding and writing
included): ``semimtr read CKPT DIR --threads T --csv FILE`` per checkpoint (a ``.onnx`` file
goes through the ONNX backend), and a script that gives every file to RapidOCR's recognizer
(``use_det=False``, ``use_cls=False``, ``T`` intra-op threads), one call per crop, as its users
read crops. Word accuracy under the paper protocol is reported beside crops/s, so a faster
reader cannot hide a worse one.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semimtr_cli.core.fsutil import atomic_write_json  # noqa: E402
from semimtr_cli.core.runtime import machine_record  # noqa: E402
from semimtr_cli.data.lmdb.io import LmdbReader  # noqa: E402
from semimtr_cli.evaluation.protocol import Protocol, normalize_prediction  # noqa: E402

RAPIDOCR_SCRIPT = """
import csv, sys
from pathlib import Path
from rapidocr_onnxruntime import RapidOCR
folder, out, threads = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "text"])
    for p in sorted(folder.iterdir()):
        try:
            result, _ = engine(str(p), use_det=False, use_cls=False, use_rec=True)
            text = result[0][0] if result else ""
        except Exception:
            text = ""
        w.writerow([str(p), text])
"""


def write_crops(lmdb_path: Path, limit: int, folder: Path) -> dict[str, str]:
    """The first ``limit`` crops of an LMDB as files under ``folder``: {file name: label}."""
    reader = LmdbReader(lmdb_path)
    labels = {}
    for i in range(min(limit, len(reader))):
        data = reader.image_bytes(i)
        ext = ".png" if data[:4] == b"\x89PNG" else ".jpg"
        name = f"{i:06d}{ext}"
        (folder / name).write_bytes(data)
        labels[name] = reader.label(i) or ""
    return labels


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def accuracy(predictions: Path, labels: dict[str, str], protocol: Protocol) -> tuple[float, int]:
    """Word accuracy % (paper protocol) of a CSV with path,text columns; and the crops counted."""
    with predictions.open(newline="", encoding="utf-8") as f:
        texts = {Path(row["path"]).name: row["text"] for row in csv.DictReader(f)}
    right = counted = 0
    for name, raw in labels.items():
        label, _ = protocol.charset.normalize_with_reason(raw)
        if label is None:
            continue
        counted += 1
        right += normalize_prediction(texts.get(name, ""), protocol.charset) == label
    return 100.0 * right / max(counted, 1), counted


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding the benchmark LMDBs")
    ap.add_argument("--set", default="IIIT5k_3000")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--checkpoints", nargs="+", default=["default"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-anchor", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "read_speed.json")
    args = ap.parse_args(argv)
    protocol = Protocol()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "crops"
        folder.mkdir()
        labels = write_crops(args.data / args.set, args.limit, folder)
        for ckpt in args.checkpoints:
            out = Path(tmp) / "semimtr.csv"
            seconds = timed(["semimtr", "read", ckpt, str(folder), "--threads", str(args.threads), "--csv", str(out)])
            acc, counted = accuracy(out, labels, protocol)
            rows[f"semimtr read {ckpt}"] = {"seconds": round(seconds, 2), "crops_per_s": round(len(labels) / seconds, 1),
                                            "accuracy": round(acc, 2), "crops_scored": counted}
            print(ckpt, rows[f"semimtr read {ckpt}"], flush=True)
        if not args.skip_anchor:
            out = Path(tmp) / "rapidocr.csv"
            seconds = timed([sys.executable, "-c", RAPIDOCR_SCRIPT, str(folder), str(out), str(args.threads)])
            acc, counted = accuracy(out, labels, protocol)
            rows["rapidocr"] = {"seconds": round(seconds, 2), "crops_per_s": round(len(labels) / seconds, 1),
                                "accuracy": round(acc, 2), "crops_scored": counted}
            print("rapidocr", rows["rapidocr"], flush=True)
    if "rapidocr" in rows:
        for name, row in rows.items():
            row["speed_vs_rapidocr"] = round(row["crops_per_s"] / rows["rapidocr"]["crops_per_s"], 2)
    report = {"benchmark": "read_speed", "machine": machine_record(), "threads": args.threads, "set": args.set,
              "crops": len(labels), "command": "python benchmarks/read_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "results": rows}
    atomic_write_json(args.out, report)
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
