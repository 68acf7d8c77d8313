"""Streamed synthetic crops: deterministic per (seed, draw), never repeated, mixable with LMDBs."""

import numpy as np
import pytest
import torch

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.augment.pipelines import PerSourcePipeline
from semimtr_cli.data.datasets import ConcatCrops, CropDataset, MixedDataset, MixedSampler
from semimtr_cli.data.synth.generate import generate
from semimtr_cli.data.synth.stream import SynthCropDataset, SynthSource

CS = Charset.from_spec("36")


def test_fresh_crops_follow_the_draw_and_repeat_exactly():
    ds = SynthCropDataset(SynthSource(style="wild", seed=3, crops_per_epoch=10), CS)
    a, b, c = ds[(4, 100)], ds[(4, 100)], ds[(4, 101)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(a["image"], c["image"])  # same index, next draw: a new crop
    assert a["image"].shape == (3, 32, 128) and int(a["length"]) == int((a["label"] > 0).sum()) + 1


def test_fixed_sets_follow_the_index_and_labels_are_normalised():
    ds = SynthCropDataset(SynthSource(seed=5, crops_per_epoch=6), CS, fresh=False)
    assert len(ds) == 6
    assert torch.equal(ds[(2, 0)]["image"], ds[(2, 999)]["image"])
    texts = [CS.decode(ds[i]["label"].tolist()) for i in range(6)]
    assert all(t and t == t.lower() and len(t) <= CS.max_length for t in texts)


def test_stream_never_renders_a_synth_cli_sample(tmp_path):
    """Streamed crops use their own generator keys, so no `semimtr synth` test set can leak into training."""
    generate(tmp_path / "cli", 4, seed=7, lmdb=True)
    cli = CropDataset(tmp_path / "cli", CS)
    stream = SynthCropDataset(SynthSource(seed=7, crops_per_epoch=4), CS, fresh=False)
    assert all(not torch.equal(cli[i]["image"], stream[i]["image"]) for i in range(4))


def test_unlabeled_stream_has_no_supervised_slot():
    item = SynthCropDataset(SynthSource(crops_per_epoch=3), CS, labeled=False)[(0, 0)]
    assert int(item["length"]) == 0 and int(item["label"].sum()) == 0


def test_words_longer_than_the_charset_allows_are_never_drawn():
    short = Charset.from_spec("36", max_length=4)
    ds = SynthCropDataset(SynthSource(crops_per_epoch=40, digits_fraction=0.5), short)
    assert all(len(short.normalize(w) or "") <= 4 for w in ds.plan.words)
    assert all(1 <= int(ds[(i, i)]["length"]) - 1 <= 4 for i in range(0, 40, 8))


def test_bad_source_is_a_clear_error(tmp_path):
    with pytest.raises(SemimtrError, match="crops_per_epoch"):
        SynthCropDataset(SynthSource(crops_per_epoch=0), CS)
    words = tmp_path / "w.txt"
    words.write_text("averyveryverylongwordthatistoolong\n", encoding="utf-8")
    with pytest.raises(SemimtrError, match="fits charset"):
        SynthCropDataset(SynthSource(words=str(words), digits_fraction=0.0), Charset.from_spec("36", max_length=10))


def test_concat_with_an_lmdb_through_the_weighted_sampler(tmp_path):
    generate(tmp_path / "lmdb", 5, seed=0, lmdb=True)
    lmdb = CropDataset(tmp_path / "lmdb", CS)
    stream = SynthCropDataset(SynthSource(crops_per_epoch=5), CS)
    part = ConcatCrops([lmdb, stream])
    assert len(part) == 10
    assert torch.equal(part[(2, 9)]["image"], lmdb[(2, 9)]["image"])
    assert torch.equal(part[(7, 9)]["image"], stream[(2, 9)]["image"])
    sampler = MixedSampler([len(part)], seed=1)
    mixed = MixedDataset([part])
    keys = list(sampler)
    items = [mixed[k] for k in keys[:4]]
    assert all(it["image"].shape == (3, 32, 128) for it in items)


def test_augmentation_ramp_starts_clean_and_ends_augmented():
    ramp = PerSourcePipeline("strong1", seed=0, ramp=(500, 1000))
    img = np.full((32, 80, 3), 128, np.uint8)
    img[8:24, 10:70] = 20

    def untouched(draws):
        return sum(ramp(img, np.random.default_rng([0, d]), draw=d) is img for d in draws)

    assert untouched(range(0, 500, 10)) == 50  # before the start: never augmented
    assert 15 <= untouched(range(1000, 1100, 2)) <= 35  # half-way: about half
    assert untouched(range(1500, 1550)) == 0  # after the ramp: always
    assert [ramp.augment_share(d) for d in (0, 500, 1000, 1500, 9999)] == [0.0, 0.0, 0.5, 1.0, 1.0]
