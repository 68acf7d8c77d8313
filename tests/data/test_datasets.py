import numpy as np
import pytest
import torch
from helpers import word_png
from torch.utils.data import DataLoader

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.datasets import CropDataset, MixedDataset, MixedSampler, collate
from semimtr_cli.data.lmdb.io import write_lmdb
from semimtr_cli.data.text.corpus import TextCorpusDataset, read_corpus_words

CS = Charset.preset("36")


@pytest.fixture()
def lmdbs(tmp_path):
    labeled = [(word_png(w, seed=i), w) for i, w in enumerate(["Hello", "World!", "@@", "x" * 30, "abc1"])]
    labeled.append((word_png("u"), "unlabeleddata"))
    labeled.append((b"broken", "broken"))
    labeled.append((word_png("tiny", size=(5, 5)), "tiny"))
    write_lmdb(tmp_path / "lab" / "a", labeled)
    write_lmdb(tmp_path / "unl", [(word_png(f"u{i}", seed=i), None) for i in range(6)])
    return tmp_path


def test_labeled_filtering_is_counted(lmdbs):
    ds = CropDataset(lmdbs / "lab", CS)
    assert len(ds) == 5  # Hello, World!, abc1, broken, tiny (labels valid; images checked lazily)
    assert ds.stats.total == 8 and ds.stats.kept == 5
    assert ds.stats.skipped == {"label empty after normalisation": 1, "label longer than 25 characters": 1, "no label": 1}
    item = ds[1]
    assert item["image"].shape == (3, 32, 128)
    assert CS.decode(item["label"].tolist()) == "world" and int(item["length"]) == 6
    assert not bool(item["substituted"])


def test_bad_images_substituted_skipped_or_raised(lmdbs):
    sub = CropDataset(lmdbs / "lab", CS)
    item = sub[3]  # "broken" -> next good sample wraps to ... flagged
    assert bool(item["substituted"]) and int(item["index"]) != 3
    skip = CropDataset(lmdbs / "lab", CS, on_bad="skip")
    assert skip[4] is None  # 5x5 px image is below the official 7 px minimum
    batch = collate([skip[0], skip[3], skip[4]])
    assert batch["image"].shape[0] == 1 and batch["dropped"] == 2
    with pytest.raises(SemimtrError, match=r"image-000000007"):
        CropDataset(lmdbs / "lab", CS, on_bad="raise")[3]


def test_unlabeled_two_view_items_are_reproducible(lmdbs):
    def jitter(img, rng):
        return np.clip(img.astype(np.int16) + rng.integers(-40, 40), 0, 255).astype(np.uint8)

    ds = CropDataset(lmdbs / "unl", CS, labeled=False, views=(None, jitter), seed=3)
    a, b = ds[(2, 10)], ds[(2, 10)]
    assert a["image"].shape == (2, 3, 32, 128) and int(a["length"]) == 0
    assert torch.equal(a["image"], b["image"])
    assert not torch.equal(ds[(2, 11)]["image"][1], a["image"][1])
    # labeled LMDB read as unlabeled: every sample kept, lengths 0
    as_unl = CropDataset(lmdbs / "lab", CS, labeled=False)
    assert len(as_unl) == 8 and int(as_unl[0]["length"]) == 0


def test_mixed_sampler_weights_epoch_and_shards():
    s = MixedSampler([100, 1000], [0.3, 0.7], seed=1)
    assert len(s) == int(1000 / 0.7)
    keys = list(s)
    parts = np.array([k[0] for k in keys])
    assert abs(parts.mean() - 0.7) < 0.05
    # each part's indices come from permutations: the small part cycles through all 100
    small = [k[1] for k in keys if k[0] == 0]
    assert sorted(small[:100]) == list(range(100))
    assert keys == list(MixedSampler([100, 1000], [0.3, 0.7], seed=1))
    s.set_epoch(1)
    assert list(s) != keys
    # DDP shards: disjoint, together the global sequence
    r0 = MixedSampler([10, 20], seed=0, rank=0, world_size=2)
    r1 = MixedSampler([10, 20], seed=0, rank=1, world_size=2)
    d0, d1 = {k[2] for k in r0}, {k[2] for k in r1}
    assert d0.isdisjoint(d1) and len(d0) == len(d1) == len(r0)
    # resume: start skips consumed draws
    full = list(r0)
    r0.set_epoch(0, start=3)
    assert list(r0) == full[3:]


def test_mixed_dataset_through_dataloader(lmdbs):
    lab = CropDataset(lmdbs / "lab", CS)
    unl = CropDataset(lmdbs / "unl", CS, labeled=False)
    mixed = MixedDataset([lab, unl])
    sampler = MixedSampler([len(lab), len(unl)], [0.5, 0.5], seed=0)
    loader = DataLoader(mixed, batch_size=4, sampler=sampler, collate_fn=collate, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 32, 128)
    assert set(batch["part"].tolist()) <= {0, 1}
    assert all((batch["length"][batch["part"] == 1] == 0).tolist())


def test_bad_mixes_are_errors():
    with pytest.raises(SemimtrError):
        MixedSampler([0, 5])
    with pytest.raises(SemimtrError):
        MixedSampler([5, 5], [1.0])
    with pytest.raises(SemimtrError, match="not found"):
        CropDataset("/no/such/lmdb", CS)


def test_text_corpus_keeps_every_occurrence_in_order_and_counts_skips_per_occurrence():
    """Repeated words are encoded once but stay where they occur; a skipped word counts each time."""
    words = ["the", "!!", "Cat", "the", "a", "!!", "cat", "the"]
    ds = TextCorpusDataset(words, CS, min_length=2)
    assert [ds.word(i) for i in range(len(ds))] == ["the", "cat", "the", "cat", "the"]
    assert ds.stats.kept == 5 and ds.stats.total == 8
    assert ds.stats.skipped == {"empty after normalisation": 2, "shorter than 2 characters": 1}
    assert [int(ds[i]["length"]) for i in range(len(ds))] == [4, 4, 4, 4, 4]
    assert ds.distinct_words() == ["cat", "the"]  # "Cat" and "cat" normalise to one word


def test_text_corpus_formats(tmp_path):
    (tmp_path / "w.txt").write_text("Hello\nworld\n\n!!!\n", encoding="utf-8")
    (tmp_path / "t.txt").write_text("the quick brown\nfox", encoding="utf-8")
    (tmp_path / "c.csv").write_text("inp,gt\nab,cd\nef,gh\n", encoding="utf-8")
    assert read_corpus_words(tmp_path / "w.txt") == ["Hello", "world", "!!!"]
    assert read_corpus_words(tmp_path / "t.txt") == ["the", "quick", "brown", "fox"]
    assert read_corpus_words(tmp_path / "c.csv") == ["cd", "gh"]
    ds = TextCorpusDataset.from_file(tmp_path / "w.txt", CS)
    assert len(ds) == 2 and ds.word(0) == "hello" and ds.stats.skipped == {"empty after normalisation": 1}
    item = ds[1]
    assert int(item["length"]) == 6 and item["label"].shape == (26,)
    with pytest.raises(SemimtrError, match="no column"):
        read_corpus_words(tmp_path / "c.csv", column="nope")
