"""Benchmark registry: folder-name matching, the two usual layouts, protocols, custom sets, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import word_png

from semimtr_cli.core.errors import SemimtrError, UsageError, as_flag
from semimtr_cli.data.benchmarks import match_folder, resolve_protocol, resolve_sets
from semimtr_cli.data.lmdb.io import write_lmdb

# PARSeq's `test/` layout and the SemiMTR `evaluation/benchmark` layout (sizes = sample counts)
PARSEQ = {"IIIT5k": 3, "SVT": 2, "IC13_857": 2, "IC13_1015": 4, "IC15_1811": 2, "IC15_2077": 5, "SVTP": 2, "CUTE80": 3}
SEMIMTR = {"IIIT5k_3000": 3, "SVT": 2, "IC13_1015": 4, "IC15_2077": 5, "SVTP": 2, "CUTE80": 3}


def make_lmdb(path: Path, n: int, label: str = "word") -> Path:
    write_lmdb(path, [(word_png(label, seed=i), label) for i in range(n)])
    return path


def make_layout(root: Path, sub: str, sizes: dict[str, int]) -> Path:
    for name, n in sizes.items():
        make_lmdb(root / sub / name, n)
    return root


@pytest.mark.parametrize("name, expected", [
    ("IIIT5k", ("IIIT5k", None)), ("IIIT5K_3000", ("IIIT5k", 3000)), ("iiit5k_3000", ("IIIT5k", 3000)),
    ("SVT", ("SVT", None)), ("SVTP", ("SVTP", None)), ("svt-p", ("SVTP", None)),
    ("IC13_857", ("IC13", 857)), ("IC13_1015", ("IC13", 1015)), ("ic15_2077", ("IC15", 2077)),
    ("CUTE80", ("CUTE", None)), ("CUTE", ("CUTE", None)), ("COCOv1.4", ("COCO", None)),
    ("MJ_train", None), ("SVTX", None),
])
def test_match_folder(name, expected):
    got = match_folder(name)
    assert (None if got is None else (got[0].name, got[1])) == expected


def test_parseq_layout_paper_and_abinet_protocols(tmp_path):
    root = make_layout(tmp_path, "data/test", PARSEQ)
    sets, subsets = resolve_sets("IIIT5k,SVT,IC13,IC15,SVTP,CUTE", root, "paper")
    assert [s.name for s in sets] == ["IIIT5k", "SVT", "IC13_1015", "IC15_2077", "SVTP", "CUTE"]
    assert [s.num_samples for s in sets] == [3, 2, 4, 5, 2, 3]
    assert sets[2].path == root / "data/test/IC13_1015"
    assert subsets["IC13"] == 1015 and subsets["IC15"] == 2077
    sets, subsets = resolve_sets("benchmark", root, "abinet")
    assert [s.name for s in sets] == ["IIIT5k", "SVT", "IC13_857", "IC15_1811", "SVTP", "CUTE"]
    assert [s.num_samples for s in sets] == [3, 2, 2, 2, 2, 3]
    # a single override inside the list beats the protocol
    sets, _ = resolve_sets("IC13_857,IC15", root, "paper")
    assert [s.name for s in sets] == ["IC13_857", "IC15_2077"]


def test_semimtr_layout_and_missing_subset_error(tmp_path):
    root = make_layout(tmp_path, "evaluation/benchmark", SEMIMTR)
    sets, _ = resolve_sets("IIIT5k,SVT,IC13,IC15,SVTP,CUTE", root)
    assert [s.path.name for s in sets] == ["IIIT5k_3000", "SVT", "IC13_1015", "IC15_2077", "SVTP", "CUTE80"]
    with pytest.raises(SemimtrError) as info:
        resolve_sets("IC13,IC15", root, "abinet")
    msg = str(info.value)
    assert "IC13 (857 images)" in msg and "IC15 (1811 images)" in msg
    assert str(root) in msg and "IC13_1015" in msg and "4 samples" in msg  # where it looked, what it found


def test_bare_folder_matched_by_size(tmp_path):
    make_lmdb(tmp_path / "IC13", 3)  # unknown size: the only copy is used
    sets, subsets = resolve_sets("IC13", tmp_path)
    assert sets[0].path == tmp_path / "IC13" and subsets["IC13"] is None


def test_not_found_lists_unrecognised_lmdbs(tmp_path):
    make_lmdb(tmp_path / "evaluation" / "my_set", 2)
    with pytest.raises(SemimtrError) as info:
        resolve_sets("SVT", tmp_path)
    assert "SVT" in str(info.value) and "my_set (unrecognised name)" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SemimtrError, match="found no LMDB"):
        resolve_sets("CUTE", empty)


def test_custom_sets_lmdb_folder_and_label_file(tmp_path):
    lmdb = make_lmdb(tmp_path / "mine" / "street_signs", 3)
    make_lmdb(tmp_path / "many" / "a", 1)
    make_lmdb(tmp_path / "many" / "b", 2)
    folder = tmp_path / "crops"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(word_png("ab", seed=i))
    (folder / "labels.tsv").write_text("0.png\tab\n1.png\tcd\n2.png\tef\nmissing.png\tgh\n")
    sets, _ = resolve_sets(f"{lmdb},{tmp_path / 'many'},{folder}", None)
    assert [(s.name, s.kind, s.num_samples) for s in sets] == [
        ("street_signs", "lmdb", 3), ("a", "lmdb", 1), ("b", "lmdb", 2), ("crops", "folder", 4)]
    assert sets[3].records[3][2] == "line 4: missing.png"  # kept: counted as unreadable at eval time
    sets, _ = resolve_sets(str(folder / "labels.tsv"), None)
    assert sets[0].kind == "folder" and sets[0].num_samples == 4


def test_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not a known benchmark"):
        resolve_sets("IIIT6k", tmp_path)
    with pytest.raises(UsageError, match="^data ROOT is needed") as err:
        resolve_sets("SVT", None)
    assert err.value.render(as_flag).startswith("--data ROOT is needed to find named benchmarks (or pass LMDB paths in --bench)")
    with pytest.raises(UsageError, match="unknown protocol 'nope'") as err:
        resolve_protocol("nope")
    assert err.value.render(as_flag).startswith("unknown --protocol 'nope'; choose one of")
    assert resolve_protocol("SemiMTR") == "paper" and resolve_protocol("sub") == "abinet"
