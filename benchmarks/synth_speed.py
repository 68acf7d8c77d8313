"""Streaming synthetic crops per second on one core, per style and font set.

What a loader worker does for a streamed source: render sample ``draw`` of the plan
(``SynthCropDataset.__getitem__``: text, font, renderer) and turn it into the model input
(32x96, no augmentation). One process, one thread; every setting is timed ``--rounds`` times over
``--crops`` crops and the median is kept. Settings: the clean, wild and scene styles with the
bundled fonts, and the scene style with ``--fonts`` (default: the system's font folders, when
they hold fonts). The machine record (CPU, flags, load) goes into the JSON: on a shared machine
the load average says how far to trust it.

    python benchmarks/synth_speed.py [--crops 400] [--rounds 3] [--fonts system] \
        [--out benchmarks/results/synth_speed.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.core.fsutil import atomic_write_json
from semimtr_cli.core.runtime import machine_record
from semimtr_cli.data.synth.stream import SynthCropDataset, SynthSource


def crops_per_second(source: SynthSource, crops: int, rounds: int) -> dict:
    ds = SynthCropDataset(source, Charset.preset("36"), image_size=(32, 96), fresh=True)
    for draw in range(20):  # warm the font and glyph caches
        ds[(draw, draw)]
    rates = []
    for r in range(rounds):
        start = time.perf_counter()
        for draw in range(crops):
            ds[(draw, 10_000 * (r + 1) + draw)]
        rates.append(crops / (time.perf_counter() - start))
    return {"crops_per_s": round(statistics.median(rates), 1), "rounds": [round(x, 1) for x in rates],
            "fonts": len(ds.plan.fonts)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crops", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fonts", default="system", help="font folder or 'system' for the scene-with-fonts row")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "synth_speed.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    settings = {
        "clean, bundled fonts": SynthSource(style="clean", seed=1),
        "wild, bundled fonts": SynthSource(style="wild", seed=2),
        "scene, bundled fonts": SynthSource(style="scene", seed=3, font_set="all"),
        f"scene, {args.fonts} fonts": SynthSource(style="scene", seed=4, fonts=args.fonts),
    }
    results = {}
    for name, source in settings.items():
        try:
            results[name] = crops_per_second(source, args.crops, args.rounds)
        except SemimtrError as exc:  # e.g. no system fonts on this machine
            results[name] = {"skipped": str(exc)}
        print(f"{name}: {results[name]}", flush=True)
    report = {"benchmark": "synth_speed", "machine": machine_record(), "crops": args.crops, "rounds": args.rounds,
              "command": "python benchmarks/synth_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "results": results}
    atomic_write_json(args.out, report)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
