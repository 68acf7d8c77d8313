"""The six benchmark test sets as LMDBs, from local copies of three public repositories.

    python benchmarks/prepare_benchmarks.py --enctc CLONE_OF_liuhu-bigeye/enctc.crnn \
        --ic15 CLONE_OF_simplify23/Light-STR-Competition-No.5 \
        --cased CLONE_OF_Jyouhou/Case-Sensitive-Scene-Text-Recognition-Datasets --out data/benchmarks

| set | files read | crops |
|---|---|---|
| IIIT5k_3000 | enctc: `data/IIIT5K/testCharBound.mat` (words, needs scipy) + `data/IIIT5K/test/` (the cased repository relabels two crops with whole phrases over 25 characters, which the protocol would skip) | 3000 |
| SVT_647 | cased: `svt_test/` | 647 |
| IC13_1015 | enctc: `data/icdar13/Challenge2_Test_Task3_GT.txt` + images; words of letters and digits only (1095 -> 1015, the usual rule) | 1015 |
| IC15_2077 | ic15: `train_data/ic15_data/rec_gt_test.txt` + `train_data/` | 2077 |
| SVTP_645 | cased: `svtp_test/` | 645 |
| CUTE80_288 | cased: `cute80_test/` | 288 |

These are *test* splits: for scoring only (``semimtr eval --bench paper --data OUT``,
``benchmarks/compare_ocr.py``); no recipe trains on them and no run is selected with them. Labels
are stored as given (case-sensitive where the source is); the protocol normalises them at eval
time. Each LMDB is built through build-lmdb's library call (every crop validated, a report per
set) in ``OUT.tmp`` and renamed into place at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semimtr_cli.data.lmdb.build import build_lmdb  # noqa: E402

CASED_SETS = {"SVT_647": "svt_test", "SVTP_645": "svtp_test", "CUTE80_288": "cute80_test"}
ALNUM = re.compile(r"[A-Za-z0-9]+")


def cased_rows(root: Path) -> list[tuple[Path, str]]:
    """(image, label) of a set of the case-sensitive repository: IMG/<n>.* with label/<n>.txt."""
    rows = []
    for label_file in sorted((root / "label").glob("*.txt"), key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem):
        images = sorted((root / "IMG").glob(label_file.stem + ".*"))
        if not images:
            raise SystemExit(f"{label_file}: no image {label_file.stem}.* in {root / 'IMG'}")
        rows.append((images[0], label_file.read_text(encoding="utf-8").strip()))
    return rows


def iiit5k_rows(enctc: Path) -> list[tuple[Path, str]]:
    from scipy.io import loadmat

    base = enctc / "data" / "IIIT5K"
    rows = loadmat(str(base / "testCharBound.mat"))["testCharBound"][0]
    return [(base / str(r["ImgName"][0]), str(r["chars"][0])) for r in rows]


def ic13_rows(enctc: Path) -> list[tuple[Path, str]]:
    folder = enctc / "data" / "icdar13"
    rows = []
    for line in (folder / "Challenge2_Test_Task3_GT.txt").read_text(encoding="utf-8-sig").splitlines():
        name, _, quoted = line.partition(", ")
        label = quoted.strip()[1:-1] if quoted.strip().startswith('"') else quoted.strip()
        if ALNUM.fullmatch(label):
            rows.append((folder / "Challenge2_Test_Task3_Images" / name.strip(), label))
    return rows


def ic15_rows(ic15: Path) -> list[tuple[Path, str]]:
    base = ic15 / "train_data"
    rows = []
    for line in (base / "ic15_data" / "rec_gt_test.txt").read_text(encoding="utf-8").splitlines():
        name, _, label = line.partition("\t")
        rows.append((base / name, label))
    return rows


def write_set(rows: list[tuple[Path, str]], out: Path, stage: Path) -> dict:
    """One LMDB through build-lmdb's library call (images named relative to their common folder)."""
    root = Path(os.path.commonpath([str(p.resolve().parent) for p, _ in rows]))
    tsv = stage / f"{out.name}.tsv"
    tsv.write_text("".join(f"{p.resolve().relative_to(root)}\t{label}\n" for p, label in rows), encoding="utf-8")
    return build_lmdb([tsv], out, fmt="tsv", images_root=root).to_dict()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--enctc", type=Path, required=True)
    ap.add_argument("--ic15", type=Path, required=True)
    ap.add_argument("--cased", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "_tsv").mkdir(parents=True)
    sets = {"IIIT5k_3000": iiit5k_rows(args.enctc)}
    sets.update({name: cased_rows(args.cased / folder) for name, folder in CASED_SETS.items()})
    sets["IC13_1015"] = ic13_rows(args.enctc)
    sets["IC15_2077"] = ic15_rows(args.ic15)
    report = {}
    for name, rows in sets.items():
        built = write_set(rows, tmp / name, tmp / "_tsv")
        report[name] = {"rows": len(rows), "written": built.get("written"), "skipped": built.get("skipped_count")}
    shutil.rmtree(tmp / "_tsv")
    (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.out.exists():
        shutil.rmtree(args.out)
    tmp.rename(args.out)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
