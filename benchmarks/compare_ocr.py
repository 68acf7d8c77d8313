"""The shipped model beside the OCR people install today, on the same crops and cores, in one run.

    pip install -e ".[anchor]"          # rapidocr-onnxruntime: the anchor (benchmark only)
    python benchmarks/prepare_benchmarks.py ... --out data/benchmarks
    python benchmarks/compare_ocr.py --data data/benchmarks [--checkpoint default] [--threads 2] \
        [--limit N] [--out benchmarks/results/compare_ocr.json]

Both read the six benchmark test sets (IIIT5k 3000, SVT 647, IC13 1015, IC15 2077, SVTP 645,
CUTE 288) under the paper's protocol: labels and predictions lower-cased, symbols outside a-z0-9
removed, word accuracy; every crop counts (an unreadable crop is a wrong word). The toolkit runs
``semimtr eval``'s library call (its checkpoint's final head, batches of 64, ``--threads``
threads); RapidOCR runs its recognizer alone (PP-OCRv4 rec, ONNX Runtime, ``--threads`` intra-op
threads, one crop per call, no detection, no angle classifier), as its users call it on crops.
crops/s is each system's wall time over the crops it read, decoding included. ``--limit N``
scores the first N crops of each set (a quick look; the tables use all).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semimtr_cli.core.fsutil import atomic_write_json  # noqa: E402
from semimtr_cli.core.runtime import machine_record  # noqa: E402
from semimtr_cli.data.benchmarks import resolve_sets  # noqa: E402
from semimtr_cli.data.image import as_uint8_array, decode_image  # noqa: E402
from semimtr_cli.data.lmdb.io import LmdbReader  # noqa: E402
from semimtr_cli.evaluation.protocol import Protocol, normalize_prediction  # noqa: E402
from semimtr_cli.evaluation.scoring import evaluate_checkpoints  # noqa: E402


def limited_copy(evset, limit: int | None, out: Path):
    """The set itself, or (with ``limit``) an LMDB of its first ``limit`` crops under ``out``."""
    if not limit:
        return evset
    from semimtr_cli.data.lmdb.io import write_lmdb

    reader = LmdbReader(evset.path)
    n = min(limit, len(reader))
    path = out / evset.name
    write_lmdb(path, [(reader.image_bytes(i), reader.label(i)) for i in range(n)])
    return resolve_sets(str(path), None)[0][0]


def rapidocr_scores(sets, protocol: Protocol, threads: int) -> dict:
    """Word accuracy and crops/s of RapidOCR's recognizer per set."""
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
    out = {}
    for evset in sets:
        reader = LmdbReader(evset.path)
        right = counted = 0
        start = time.perf_counter()
        for i in range(len(reader)):
            label, _ = protocol.charset.normalize_with_reason(reader.label(i) or "")
            if label is None:
                continue
            counted += 1
            try:
                img = as_uint8_array(decode_image(reader.image_bytes(i)))
                result, _ = engine(np.ascontiguousarray(img[..., ::-1]), use_det=False, use_cls=False, use_rec=True)
                text = result[0][0] if result else ""
            except Exception:  # an unreadable crop is a wrong word, as in the toolkit's protocol
                text = ""
            right += normalize_prediction(text, protocol.charset) == label
        seconds = time.perf_counter() - start
        out[evset.name] = {"accuracy": 100.0 * right / max(counted, 1), "crops": counted,
                           "crops_per_s": counted / seconds}
    return out


def toolkit_scores(checkpoint: str, sets, protocol: Protocol, threads: int) -> dict:
    torch.set_num_threads(threads)
    report = evaluate_checkpoints([checkpoint], sets, protocol, batch_size=64, workers=0, device="cpu")
    result = report.results[0]
    return {"head": result["head"], "precision": result.get("precision"),
            **{s["name"]: {"accuracy": s["accuracy"], "crops": s["evaluated"],
                           "crops_per_s": s["evaluated"] / s["seconds"]} for s in result["sets"]}}


def weighted(rows: dict, names: list[str]) -> dict:
    crops = sum(rows[n]["crops"] for n in names)
    return {"accuracy": sum(rows[n]["accuracy"] * rows[n]["crops"] for n in names) / crops,
            "crops_per_s": crops / sum(rows[n]["crops"] / rows[n]["crops_per_s"] for n in names)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding the six benchmark LMDBs")
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--skip-anchor", action="store_true", help="score the toolkit only")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "compare_ocr.json")
    args = ap.parse_args(argv)
    sets, subsets = resolve_sets("benchmark", args.data)  # the six, with the paper protocol's subsets
    protocol = Protocol(subsets=subsets)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sets = [limited_copy(s, args.limit, Path(tmp)) for s in sets]
        names = [s.name for s in sets]
        ours = toolkit_scores(args.checkpoint, sets, protocol, args.threads)
        anchor = None if args.skip_anchor else rapidocr_scores(sets, protocol, args.threads)
    report = {"benchmark": "compare_ocr", "machine": machine_record(), "threads": args.threads,
              "limit": args.limit, "command": "python benchmarks/compare_ocr.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "semimtr": {"checkpoint": args.checkpoint, **ours, "weighted": weighted(ours, names)}}
    if anchor is not None:
        import rapidocr_onnxruntime

        report["rapidocr"] = {"version": getattr(rapidocr_onnxruntime, "__version__", "1.4.4"), **anchor,
                              "weighted": weighted(anchor, names)}
    atomic_write_json(args.out, report)
    header = "| system | " + " | ".join(names) + " | weighted | crops/s |"
    print(header + "\n|" + "---|" * (len(names) + 3))
    for system in ("semimtr", "rapidocr"):
        if system in report:
            r = report[system]
            cells = " | ".join(f"{r[n]['accuracy']:.1f}" for n in names)
            print(f"| {system} | {cells} | {r['weighted']['accuracy']:.1f} | {r['weighted']['crops_per_s']:.0f} |")
    print(json.dumps({"out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
