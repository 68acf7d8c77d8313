"""experiments/crop_shape_accuracy.py: crops fall in the right source and shape buckets."""

from __future__ import annotations

from helpers import load_script


def test_buckets_count_each_crop_once_per_grouping_and_score_it():
    module = load_script("experiments/crop_shape_accuracy.py")
    # keys 1-2 one source, 3-5 another; (height px, width / height / letters)
    shapes = [(18, 0.6), (40, 0.2), (30, 0.45), (60, 0.1), (25, 0.55)]
    report = module.buckets(shapes, wrong={2, 4}, ranges={"iiit5k": range(1, 3), "ic15": range(3, 6)})
    assert report["iiit5k"]["all"] == {"n": 2, "accuracy": 50.0}
    assert report["iiit5k"]["height 0-20"] == {"n": 1, "accuracy": 100.0}
    assert report["iiit5k"]["per letter 0-0.3"] == {"n": 1, "accuracy": 0.0}  # the tall box, read wrong
    assert report["ic15"]["height >=48"] == {"n": 1, "accuracy": 0.0}
    assert report["ic15"]["per letter >=0.5"] == {"n": 1, "accuracy": 100.0}
    for groups in report.values():  # every crop in exactly one height and one box-per-letter bucket
        n = groups["all"]["n"]
        assert sum(g["n"] for k, g in groups.items() if k.startswith("height")) == n
        assert sum(g["n"] for k, g in groups.items() if k.startswith("per letter")) == n
