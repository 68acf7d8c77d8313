"""Measure text/background colour pairs on real word crops and write the renderer's colour table.

    python scripts/measure_text_colors.py LMDB [LMDB ...] --out semimtr_cli/resources/text_colors.npy

Give only *training-split* crops (the shipped table comes from IIIT5K train, SVT train and IC15
train, the labeled and valid parts of experiments/prepare_real_crops.py's output; never a
benchmark test split). Each crop gives one (background RGB, text RGB) row
(semimtr_cli.data.synth.colors.estimate_pair); one-tone crops are skipped. Only the statistics
are written, as (N, 6) uint8.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from semimtr_cli.core.fsutil import atomic_path
from semimtr_cli.data.image import as_uint8_array, decode_image
from semimtr_cli.data.lmdb.io import LmdbReader
from semimtr_cli.data.synth.colors import estimate_pair


def measure(paths: list[Path]) -> tuple[np.ndarray, dict]:
    rows, counts = [], {}
    for path in paths:
        reader = LmdbReader(path)
        used = 0
        for i in range(len(reader)):
            pair = estimate_pair(as_uint8_array(decode_image(reader.image_bytes(i), name=f"{path}:{i}")))
            if pair is not None:
                rows.append(np.concatenate(pair))
                used += 1
        counts[str(path)] = {"crops": len(reader), "pairs": used}
    return np.clip(np.rint(np.asarray(rows)), 0, 255).astype(np.uint8), counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lmdbs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    table, counts = measure(args.lmdbs)
    with atomic_path(args.out, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, table)
    print(json.dumps({"rows": len(table), "sources": counts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
