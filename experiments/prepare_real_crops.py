"""Real word crops for the study's regime B, from local clones of two public repositories.

    python experiments/prepare_real_crops.py --enctc CLONE_OF_liuhu-bigeye/enctc.crnn \
        --ic15 CLONE_OF_simplify23/Light-STR-Competition-No.5 --out data/real [--labeled 300]

The study's splits come only from training splits (never a benchmark test split):

| source | files read | crops |
|---|---|---|
| IIIT5K train | `data/IIIT5K/trainset.lmdb` (CRNN keys), else `traindata.mat` or `trainCharBound.mat` (needs scipy) + `data/IIIT5K/train/` | 2000 |
| SVT train | `data/svt1/train.xml` word boxes cut from `data/svt1/img/` | 257 |
| IC03 | `data/icdar03/annotation.txt` (index into `lexicon.txt`) + `data/icdar03/images/` | 860 |
| IC15 train | `train_data/ic15_data/rec_gt_train.txt` + `train_data/train/` | 4468 |

IC03's 860 crops are that dataset's own filtered test list; it is not one of the six benchmarks
the paper reports, but ICDAR 2013 inherits most of IC03's images (Baek et al., ICCV 2019), so a
model that trained on them is not scored on IC13 as unseen. `--skip ic03` leaves it out.

``--unseen-out DIR`` also writes the IIIT5K, SVT and IC15 *test* splits as LMDBs for
evaluation only: ``run_study.py --unseen DIR`` scores the regime-B models on them after training
(no run trains on them or is selected with them). IC13's test set is left out (see above).

Labels that the charset cannot hold (punctuation-only words, empty or too long) are dropped and
counted. Each source is shuffled with ``--seed`` and split: ``--test-fraction`` held out as the
study's test set, ``--valid-fraction`` for checkpoint selection, ``--labeled`` crops in all
(shared out in proportion to the sources) keep their labels, the rest form the unlabeled pool.
Output (built in ``OUT.tmp`` and renamed, so a failed run leaves nothing half-written)::

    OUT/labeled  OUT/valid  OUT/test        labeled LMDBs
    OUT/unlabeled                           the pool without labels (for training)
    OUT/unlabeled_truth                     the same crops with labels: pseudo-label accuracy only
    OUT/report.json                         counts per source and split, dropped labels, the build reports
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.lmdb.build import build_lmdb

SOURCES = ("iiit5k", "svt", "ic03", "ic15")
SPLITS = ("labeled", "valid", "test", "unlabeled")


class PrepareError(Exception):
    """A missing or malformed input file; the message names it."""


@dataclass
class Crop:
    source: str
    name: str       # unique within the source (used for the staged file name)
    label: str
    data: bytes     # encoded image


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise PrepareError(f"{path}: missing ({what})")
    return path


def _read(path: Path) -> bytes:
    data = _need(path, "image listed by the annotation").read_bytes()
    if data.startswith(b"version https://git-lfs"):
        raise PrepareError(f"{path}: a Git LFS pointer, not the file; run `git lfs pull` in that clone")
    return data


def iiit5k_train(enctc: Path) -> list[Crop]:
    """IIIT5K's 2000 training crops with labels from the repo's CRNN-style LMDB or the .mat file."""
    base = enctc / "data" / "IIIT5K"
    db = base / "trainset.lmdb"
    if (db / "data.mdb").is_file() and not (db / "data.mdb").read_bytes()[:30].startswith(b"version https"):
        import lmdb

        out = []
        with lmdb.open(str(db), readonly=True, lock=False) as env, env.begin() as txn:
            n = int(txn.get(b"num-samples") or 0)
            for i in range(1, n + 1):
                image, label = txn.get(b"image-%09d" % i), txn.get(b"label-%09d" % i)
                if image is None or label is None:
                    raise PrepareError(f"{db}: sample {i} of {n} has no image or label")
                out.append(Crop("iiit5k", f"{i:05d}", label.decode("utf-8"), image))
        return out
    # traindata.mat (GroundTruth) is over 4 MiB and missing from some snapshots; trainCharBound.mat
    # (99 KB) names the same 2000 images with their words in the field ``chars``
    for name, key, field in (("traindata.mat", "traindata", "GroundTruth"), ("trainCharBound.mat", "trainCharBound", "chars")):
        mat = base / name
        if mat.is_file():
            break
    else:
        raise PrepareError(f"{base}: missing IIIT5K training labels (trainset.lmdb, traindata.mat or trainCharBound.mat)")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise PrepareError(f"{mat}: reading it needs scipy (pip install scipy)") from None
    rows = loadmat(str(mat))[key][0]
    return [Crop("iiit5k", Path(str(r["ImgName"][0])).stem, str(r[field][0]), _read(base / str(r["ImgName"][0])))
            for r in rows]


def svt_train(enctc: Path) -> list[Crop]:
    """SVT's training words, cut from the full street images by their boxes (clamped to the image)."""
    base = enctc / "data" / "svt1"
    xml = _need(base / "train.xml", "SVT training boxes")
    out = []
    for image in ET.parse(xml).getroot().iter("image"):
        name = image.findtext("imageName")
        with Image.open(io.BytesIO(_read(base / name))) as full:
            full = full.convert("RGB")
            for k, rect in enumerate(image.iter("taggedRectangle")):
                x, y, w, h = (int(float(rect.get(a))) for a in ("x", "y", "width", "height"))
                box = (max(0, x), max(0, y), min(full.width, x + w), min(full.height, y + h))
                if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                    raise PrepareError(f"{xml}: box {k} of {name} lies outside the image")
                buf = io.BytesIO()
                full.crop(box).save(buf, format="PNG")
                out.append(Crop("svt", f"{Path(name).stem}_{k}", rect.findtext("tag") or "", buf.getvalue()))
    return out


def lexicon_words(base: Path, source: str) -> list[Crop]:
    """Crops listed as ``annotation.txt`` lines ``./images/X.jpg INDEX`` into ``lexicon.txt`` (the
    enctc.crnn layout of IC03 and of the IIIT5K and SVT test sets)."""
    lexicon = _need(base / "lexicon.txt", f"{source} words").read_text(encoding="utf-8").splitlines()
    out = []
    ann = _need(base / "annotation.txt", f"{source} crop list")
    for n, line in enumerate(ann.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= len(lexicon):
            raise PrepareError(f"{ann}:{n}: expected '<image> <lexicon index>', got {line!r}")
        out.append(Crop(source, Path(parts[0]).stem, lexicon[int(parts[1])], _read(base / parts[0])))
    return out


def ic03_words(enctc: Path) -> list[Crop]:
    """IC03's 860 filtered word crops."""
    return lexicon_words(enctc / "data" / "icdar03", "ic03")


def ic15_split(ic15: Path, split: str = "train") -> list[Crop]:
    """ICDAR 2015's crops of one split (``rec_gt_<split>.txt``: ``<split>/word_N.png<TAB>label``;
    train 4468, test 2077)."""
    base = ic15 / "train_data"
    gt = _need(base / "ic15_data" / f"rec_gt_{split}.txt", f"IC15 {split} labels")
    out = []
    for n, line in enumerate(gt.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise PrepareError(f"{gt}:{n}: expected '<image><TAB><label>', got {line!r}")
        path, label = line.split("\t", 1)
        out.append(Crop("ic15", Path(path).stem, label, _read(base / path)))
    return out


def ic15_train(ic15: Path) -> list[Crop]:
    """ICDAR 2015's 4468 training crops."""
    return ic15_split(ic15, "train")


def split_counts(n: int, labeled: int, valid_fraction: float, test_fraction: float) -> dict[str, int]:
    """Crops per split for one source of ``n`` kept crops (``labeled`` already apportioned)."""
    test = int(round(n * test_fraction))
    valid = int(round(n * valid_fraction))
    lab = min(labeled, max(0, n - test - valid))
    return {"labeled": lab, "valid": valid, "test": test, "unlabeled": n - test - valid - lab}


def apportion(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """``total`` shared out in proportion to ``sizes`` (largest remainders; sums to ``total``)."""
    whole = sum(sizes.values())
    if whole == 0:
        return {k: 0 for k in sizes}
    exact = {k: total * v / whole for k, v in sizes.items()}
    out = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: out[k] - exact[k])[: total - sum(out.values())]:
        out[k] += 1
    return out


def stage_split(folder: Path, crops: list[Crop]) -> Path:
    """Write the crops as files plus a labels.tsv that build-lmdb reads; returns the TSV path."""
    folder.mkdir(parents=True)
    lines = []
    for c in crops:
        name = f"{c.source}_{c.name}.img"
        (folder / name).write_bytes(c.data)
        lines.append(f"{name}\t{c.label}")
    tsv = folder / "labels.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tsv


def build(tsv: Path, out: Path, *, unlabeled: bool = False) -> dict:
    """``semimtr build-lmdb TSV --out OUT [--unlabeled]`` (its library call); returns its report."""
    report = build_lmdb([tsv], out, fmt="tsv", unlabeled=unlabeled)  # bad crops are skipped and listed
    return report.to_dict()


def prepare(enctc: Path | None, ic15: Path | None, out: Path, *, labeled: int = 300, valid_fraction: float = 0.1,
            test_fraction: float = 0.2, seed: int = 0, skip: tuple[str, ...] = (), charset: str = "36") -> dict:
    """Read, filter, split and build; returns the report (also written to ``OUT/report.json``)."""
    if out.exists():
        raise PrepareError(f"{out}: exists; remove it first")
    readers = {"iiit5k": (iiit5k_train, enctc), "svt": (svt_train, enctc), "ic03": (ic03_words, enctc), "ic15": (ic15_train, ic15)}
    cs = Charset.from_spec(charset)
    kept: dict[str, list[Crop]] = {}
    dropped: dict[str, dict[str, int]] = {}
    for name, (read, clone) in readers.items():
        if name in skip or clone is None:
            continue
        crops, dropped[name] = [], {}
        for c in read(Path(clone)):
            text, why = cs.normalize_with_reason(c.label)
            if text is None:
                dropped[name][why] = dropped[name].get(why, 0) + 1
                continue
            c.label = text
            crops.append(c)
        kept[name] = crops
    if not kept:
        raise PrepareError("no source read: give --enctc and/or --ic15")
    shares = apportion(labeled, {k: len(v) for k, v in kept.items()})
    rng = np.random.default_rng(seed)
    splits: dict[str, list[Crop]] = {s: [] for s in SPLITS}
    counts: dict[str, dict[str, int]] = {}
    for name, crops in kept.items():
        order = rng.permutation(len(crops))
        counts[name] = split_counts(len(crops), shares[name], valid_fraction, test_fraction)
        start = 0
        for split in ("test", "valid", "labeled", "unlabeled"):
            splits[split].extend(crops[i] for i in order[start:start + counts[name][split]])
            start += counts[name][split]
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        stage = tmp / "staging"
        builds = {}
        for split, crops in splits.items():
            tsv = stage_split(stage / split, crops)
            if split == "unlabeled":
                builds["unlabeled"] = build(tsv, tmp / "unlabeled", unlabeled=True)
                builds["unlabeled_truth"] = build(tsv, tmp / "unlabeled_truth")
            else:
                builds[split] = build(tsv, tmp / split)
        shutil.rmtree(stage)
        report = {"sources": {k: len(v) for k, v in kept.items()}, "dropped_labels": dropped, "per_source": counts,
                  "splits": {s: len(c) for s, c in splits.items()}, "seed": seed, "charset": charset,
                  "valid_fraction": valid_fraction, "test_fraction": test_fraction, "builds": builds}
        (tmp / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def source_ranges(out: Path, split: str) -> dict[str, range]:
    """{source: 1-based LMDB indices} of ``OUT/split``: :func:`prepare` writes each split source
    after source, in the order of ``report.json``'s ``per_source``."""
    counts = json.loads((Path(out) / "report.json").read_text())["per_source"]
    ranges, start = {}, 1
    for name, split_counts_ in counts.items():
        ranges[name] = range(start, start + split_counts_[split])
        start += split_counts_[split]
    return ranges


# The benchmark test splits whose images the study's training splits do not contain, for
# evaluation only (folder names that ``semimtr eval --bench ... --data DIR`` resolves). IC13 is left
# out: its test images largely repeat IC03's, which regime B trains on.
UNSEEN = {"IIIT5k_3000": ("enctc", lambda c: lexicon_words(c / "data" / "IIIT5K", "iiit5k_test")),
          "SVT_647": ("enctc", lambda c: lexicon_words(c / "data" / "svt1", "svt_test")),
          "IC15_2077": ("ic15", lambda c: ic15_split(c, "test"))}


def export_unseen(enctc: Path | None, ic15: Path | None, out: Path) -> dict[str, int]:
    """Write the benchmark test splits of ``UNSEEN`` as LMDBs under ``out`` (labels as published;
    ``semimtr eval`` applies its protocol). Never used for training or selection. Returns crops
    written per set (build-lmdb skips unreadable images)."""
    clones = {"enctc": enctc, "ic15": ic15}
    if out.exists():
        raise PrepareError(f"{out}: exists; remove it first")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {}
    try:
        for name, (clone, read) in UNSEEN.items():
            if clones[clone] is None:
                continue
            crops = read(Path(clones[clone]))
            counts[name] = build(stage_split(tmp / "staging" / name, crops), tmp / name)["written"]
        shutil.rmtree(tmp / "staging", ignore_errors=True)
        if not counts:
            raise PrepareError("no benchmark test split read: give --enctc and/or --ic15")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--enctc", type=Path, help="clone of liuhu-bigeye/enctc.crnn (IIIT5K, SVT, IC03)")
    ap.add_argument("--ic15", type=Path, help="clone of simplify23/Light-STR-Competition-No.5 (IC15)")
    ap.add_argument("--out", type=Path, help="the study's regime-B folder")
    ap.add_argument("--labeled", type=int, default=300, help="labeled target crops in all (default 300)")
    ap.add_argument("--valid-fraction", type=float, default=0.1)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", nargs="*", default=[], choices=SOURCES)
    ap.add_argument("--charset", default="36")
    ap.add_argument("--unseen-out", type=Path, default=None,
                    help="also write the IIIT5K, SVT and IC15 test splits here, for evaluation only "
                         "(run_study.py --unseen)")
    args = ap.parse_args()
    if args.out is None and args.unseen_out is None:
        ap.error("give --out and/or --unseen-out")
    try:
        if args.unseen_out:
            counts = export_unseen(args.enctc, args.ic15, args.unseen_out)
            print(f"{args.unseen_out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " (evaluation only)")
        if args.out is None:
            return
        report = prepare(args.enctc, args.ic15, args.out, labeled=args.labeled, valid_fraction=args.valid_fraction,
                         test_fraction=args.test_fraction, seed=args.seed, skip=tuple(args.skip), charset=args.charset)
    except (PrepareError, SemimtrError) as exc:
        sys.exit(f"error: {exc}")
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in report["splits"].items())
          + " | per source " + ", ".join(f"{k} {v}" for k, v in report["sources"].items())
          + " | dropped labels " + json.dumps(report["dropped_labels"]))


if __name__ == "__main__":
    main()
