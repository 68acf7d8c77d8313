"""experiments/prepare_real_crops.py on a miniature of the two repositories' layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import load_script, word_png

from semimtr_cli.data.lmdb.io import LmdbReader

prep = load_script("experiments/prepare_real_crops.py")


def _fake_clones(root: Path) -> tuple[Path, Path]:
    enctc, ic15 = root / "enctc", root / "ic15"
    ic03 = enctc / "data" / "icdar03"
    (ic03 / "images").mkdir(parents=True)
    words = [f"word{i}" for i in range(10)]
    (ic03 / "lexicon.txt").write_text("\n".join(words) + "\n")
    (ic03 / "annotation.txt").write_text("".join(f"./images/{i:04d}.jpg {i}\n" for i in range(10)))
    for i, w in enumerate(words):
        (ic03 / "images" / f"{i:04d}.jpg").write_bytes(word_png(w, fmt="JPEG"))
    svt = enctc / "data" / "svt1"
    (svt / "img").mkdir(parents=True)
    (svt / "img" / "00_00.jpg").write_bytes(word_png("street", size=(200, 80), fmt="JPEG"))
    boxes = "".join(f'<taggedRectangle height="30" width="60" x="{10 + 60 * k}" y="20"><tag>W{k}</tag></taggedRectangle>'
                    for k in range(3))
    (svt / "train.xml").write_text(f"<tagset><image><imageName>img/00_00.jpg</imageName><taggedRectangles>{boxes}"
                                   "</taggedRectangles></image></tagset>")
    gt = ic15 / "train_data" / "ic15_data"
    gt.mkdir(parents=True)
    (ic15 / "train_data" / "train").mkdir()
    lines = []
    for i in range(20):
        (ic15 / "train_data" / "train" / f"word_{i}.png").write_bytes(word_png(f"t{i}"))
        lines.append(f"train/word_{i}.png\t{'###' if i == 0 else f'T{i}'}")
    (gt / "rec_gt_train.txt").write_text("\n".join(lines) + "\n")
    return enctc, ic15


def _labels(path: Path) -> list[str | None]:
    reader = LmdbReader(path)
    return list(reader.raw_labels())


def test_prepare_splits_sources_without_overlap(tmp_path):
    enctc, ic15 = _fake_clones(tmp_path)
    out = tmp_path / "real"
    report = prep.prepare(enctc, ic15, out, labeled=6, valid_fraction=0.1, test_fraction=0.2, skip=("iiit5k",))
    assert report["sources"] == {"svt": 3, "ic03": 10, "ic15": 19}  # '###' is no word for charset 36
    assert report["dropped_labels"]["ic15"] == {"empty after normalisation": 1}
    assert report["splits"]["labeled"] == 6 and sum(report["splits"].values()) == 32
    labeled, valid, test = (_labels(out / s) for s in ("labeled", "valid", "test"))
    truth = _labels(out / "unlabeled_truth")
    assert len(LmdbReader(out / "unlabeled")) == len(truth) == report["splits"]["unlabeled"]
    assert all(lab is None or lab == "" for lab in _labels(out / "unlabeled"))
    every = labeled + valid + test + truth
    assert len(set(every)) == len(every) == 32  # all labels distinct in the fixture: no crop in two splits
    assert not (tmp_path / "real.tmp").exists()
    prefix = {"svt": "w", "ic03": "word", "ic15": "t"}  # svt W0.., ic03 word0.., ic15 T1.. (lower-cased)
    for split, labels in (("test", test), ("labeled", labeled)):
        ranges = prep.source_ranges(out, split)
        assert [k for r in ranges.values() for k in r] == list(range(1, len(labels) + 1))
        for source, keys in ranges.items():  # each 1-based key range holds that source's crops
            assert all(labels[k - 1].startswith(prefix[source]) and labels[k - 1][len(prefix[source]):].isdigit() for k in keys)


def test_prepare_names_the_bad_line_and_writes_nothing(tmp_path):
    enctc, ic15 = _fake_clones(tmp_path)
    ann = enctc / "data" / "icdar03" / "annotation.txt"
    ann.write_text(ann.read_text() + "./images/0000.jpg notanumber\n")
    with pytest.raises(prep.PrepareError, match=r"annotation.txt:11: expected"):
        prep.prepare(enctc, ic15, tmp_path / "real", skip=("iiit5k",))
    assert not (tmp_path / "real").exists() and not (tmp_path / "real.tmp").exists()
    with pytest.raises(prep.PrepareError, match="IIIT5K: missing IIIT5K training labels"):
        prep.prepare(enctc, None, tmp_path / "real")


def test_iiit5k_labels_from_the_char_bound_file(tmp_path):
    """Snapshots without the 4 MiB traindata.mat still carry trainCharBound.mat (ImgName, chars)."""
    sio = pytest.importorskip("scipy.io")
    import numpy as np

    base = tmp_path / "enctc" / "data" / "IIIT5K"
    (base / "train").mkdir(parents=True)
    rows = np.zeros((1, 2), dtype=[("ImgName", object), ("chars", object), ("charBB", object)])
    for k, word in enumerate(("You", "cafe")):
        (base / "train" / f"{k}_1.png").write_bytes(word_png(word))
        rows[0, k] = (f"train/{k}_1.png", word, np.zeros((len(word), 4)))
    sio.savemat(base / "trainCharBound.mat", {"trainCharBound": rows})
    crops = prep.iiit5k_train(tmp_path / "enctc")
    assert [(c.name, c.label) for c in crops] == [("0_1", "You"), ("1_1", "cafe")]
    assert crops[1].data == (base / "train" / "1_1.png").read_bytes()


def test_unseen_export_writes_the_benchmark_test_splits_that_eval_resolves(tmp_path):
    from semimtr_cli.data.benchmarks import resolve_sets

    enctc, ic15 = _fake_clones(tmp_path)
    for folder, words in (("IIIT5K", ["alpha", "beta"]), ("svt1", ["gamma"])):
        base = enctc / "data" / folder
        (base / "test").mkdir(parents=True, exist_ok=True)
        (base / "lexicon.txt").write_text("\n".join(words) + "\n")
        (base / "annotation.txt").write_text("".join(f"./test/{i}.png {i}\n" for i in range(len(words))))
        for i, w in enumerate(words):
            (base / "test" / f"{i}.png").write_bytes(word_png(w))
    (ic15 / "train_data" / "test").mkdir()
    (ic15 / "train_data" / "test" / "word_1.png").write_bytes(word_png("delta"))
    (ic15 / "train_data" / "ic15_data" / "rec_gt_test.txt").write_text("test/word_1.png\tDelta\n")
    out = tmp_path / "unseen"
    assert prep.export_unseen(enctc, ic15, out) == {"IIIT5k_3000": 2, "SVT_647": 1, "IC15_2077": 1}
    sets, _ = resolve_sets("IIIT5k,SVT,IC15", out)
    assert [(s.benchmark, _labels(s.path)) for s in sets] == [("IIIT5k", ["alpha", "beta"]), ("SVT", ["gamma"]),
                                                              ("IC15", ["Delta"])]
    assert not (tmp_path / "unseen.tmp").exists()
    with pytest.raises(prep.PrepareError, match="exists"):
        prep.export_unseen(enctc, ic15, out)
