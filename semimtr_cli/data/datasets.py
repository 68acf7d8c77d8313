"""Word-crop datasets over LMDBs: labeled, unlabeled, and multi-view (teacher/student, SeqCLR).

Every item is a dict of tensors:

- ``image``: (3, H, W) float32 normalised model input, or (V, 3, H, W) for V views;
- ``label``: (T,) int64 class ids padded with null (T = charset.max_slots); zeros if unlabeled;
- ``length``: int64 scalar, characters + 1 stop slot; **0 for unlabeled samples**, so every
  supervised loss ignores them (the official convention);
- ``index``: int64 scalar, the sample's position in its dataset;
- ``substituted``: bool scalar, True when the stored image could not be decoded (or was too
  small) and another sample took its place (training only; counted by the trainer).

Augmentation is random but reproducible: every item's generator is
``numpy.random.default_rng([seed, draw, index])`` where ``draw`` is the sampler's global draw
number, so results do not depend on worker count and a resumed run sees the same views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.augment.pipelines import PerSourcePipeline
from semimtr_cli.data.image import DEFAULT_HEIGHT, DEFAULT_WIDTH, MIN_SIDE, as_uint8_array, decode_image, to_model_input
from semimtr_cli.data.lmdb.io import LmdbReader, find_lmdbs, is_unlabeled_marker

# transform(image HxWx3 uint8, rng) -> image HxWx3 uint8 (size may change)
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class BadSample(SemimtrError):
    """A stored image that cannot be used (undecodable or too small); the message names its key."""  # the official loader rejects crops whose width or height is <= 6 px


@dataclass
class FilterStats:
    """What a dataset left out at construction, per reason (labeled datasets only)."""

    total: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def add_skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "skipped": dict(self.skipped)}


def item_key(key) -> tuple[int, int]:
    """A dataset key is an index or an ``(index, draw)`` pair from :class:`MixedSampler`."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return int(key), int(key)


class CropDataset(Dataset):
    """Word crops from one or more LMDBs (each path may be a root holding several LMDBs).

    Args:
        paths: LMDB folders or roots searched recursively.
        charset: label normalisation and encoding.
        labeled: True keeps only samples whose normalised label is valid (1..max_length
            characters) and counts the rest in :attr:`stats`; False ignores labels entirely
            (every sample has length 0).
        views: one transform per view (``None`` = no augmentation, a
            :class:`PerSourcePipeline` = one pipeline per LMDB). One view gives ``image``
            (3,H,W); two or more give (V,3,H,W).
        seed: base of the per-item random generators.
        first_source: the per-source pipeline index of the first LMDB (the others follow), so
            that the LMDBs of every part of a training mix get their own frozen pipeline.
        on_bad: what to do with an undecodable or too-small image: ``"substitute"`` (training:
            take the next good sample and flag it), ``"skip"`` (evaluation: the item is ``None``,
            dropped and counted by :func:`collate`) or ``"raise"`` (a SemimtrError naming the key).
    """

    def __init__(
        self,
        paths: Sequence[str | Path] | str | Path,
        charset: Charset,
        *,
        labeled: bool = True,
        views: Sequence[Transform | None] = (None,),
        image_size: tuple[int, int] = (DEFAULT_HEIGHT, DEFAULT_WIDTH),
        seed: int = 0,
        min_side: int = MIN_SIDE,
        on_bad: str = "substitute",
        first_source: int = 0,
    ):
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise SemimtrError("no LMDB path given")
        if not views:
            raise SemimtrError("a dataset needs at least one view")
        self.charset = charset
        self.labeled = labeled
        self.views = tuple(views)
        self.image_size = tuple(image_size)
        self.seed = int(seed)
        self.min_side = int(min_side)
        self.first_source = int(first_source)
        if on_bad not in ("substitute", "skip", "raise"):
            raise SemimtrError(f"on_bad must be substitute, skip or raise, got {on_bad!r}")
        self.on_bad = on_bad
        self.readers: list[LmdbReader] = []
        for p in paths:
            self.readers.extend(LmdbReader(x) for x in find_lmdbs(p))
        self.stats = FilterStats()
        # one (reader id, local index) array pair per LMDB; labels/lengths of the kept samples
        reader_ids, local_ids, labels, lengths = [], [], [], []
        for rid, reader in enumerate(self.readers):
            n = len(reader)
            self.stats.total += n
            if labeled:
                kept = []
                for i, raw in enumerate(reader.raw_labels()):
                    if raw is None or is_unlabeled_marker(raw):
                        self.stats.add_skip("no label")
                        continue
                    text, why = charset.normalize_with_reason(raw)
                    if text is None:
                        self.stats.add_skip(f"label {why}")
                        continue
                    ids, length = charset.encode_padded(text)
                    kept.append(i)
                    labels.append(ids)
                    lengths.append(length)
                local = np.asarray(kept, dtype=np.int64)
            else:
                local = np.arange(n, dtype=np.int64)
            reader_ids.append(np.full(len(local), rid, dtype=np.int32))
            local_ids.append(local)
        self._reader_ids = np.concatenate(reader_ids) if reader_ids else np.zeros(0, np.int32)
        self._local_ids = np.concatenate(local_ids) if local_ids else np.zeros(0, np.int64)
        if labeled:
            self._labels = torch.tensor(labels, dtype=torch.int64).reshape(-1, charset.max_slots)
            self._lengths = torch.tensor(lengths, dtype=torch.int64)
        self.stats.kept = len(self._local_ids)

    def __len__(self) -> int:
        return len(self._local_ids)

    def label_ids(self, i: int) -> torch.Tensor:
        """(max_slots,) int64 label ids of labeled sample ``i``."""
        return self._labels[i]

    def describe(self, i: int) -> str:
        """``<lmdb path>:image-<key>`` of sample ``i`` (for error messages)."""
        return f"{self.readers[self._reader_ids[i]].path}:image-{int(self._local_ids[i]) + 1:09d}"

    def load_image(self, i: int) -> np.ndarray:
        """Decoded RGB uint8 image of sample ``i``; BadSample if unreadable or too small."""
        reader = self.readers[self._reader_ids[i]]
        data = reader.image_bytes(int(self._local_ids[i]))
        try:
            img = as_uint8_array(decode_image(data, name=self.describe(i)))
        except SemimtrError as exc:
            raise BadSample(str(exc)) from None
        h, w = img.shape[:2]
        if h < self.min_side or w < self.min_side:
            raise BadSample(f"{self.describe(i)}: {w}x{h} px is smaller than {self.min_side} px")
        return img

    def __getitem__(self, key) -> dict | None:
        index, draw = item_key(key)
        n = len(self)
        substituted = False
        for attempt in range(min(n, 64)):
            i = (index + attempt) % n
            try:
                img = self.load_image(i)
                break
            except BadSample:
                if self.on_bad == "raise":
                    raise
                if self.on_bad == "skip":
                    return None
                substituted = True
        else:
            raise SemimtrError(f"{self.describe(index)} and the following samples are all unreadable")
        rng = np.random.default_rng([self.seed, draw, i])
        if self.labeled:
            label, length = self._labels[i], self._lengths[i]
        else:
            label, length = unlabeled_target(self.charset)
        image = render_views(img, self.views, rng, source=self.first_source + int(self._reader_ids[i]), draw=draw, image_size=self.image_size)
        return make_item(image, label, length, i, substituted)


def unlabeled_target(charset: Charset) -> tuple[torch.Tensor, torch.Tensor]:
    """(label, length) of an unlabeled sample: all-null ids and length 0 (no supervised slot)."""
    return torch.zeros(charset.max_slots, dtype=torch.int64), torch.tensor(0)


def render_views(img: np.ndarray, views: Sequence, rng: np.random.Generator, *, source: int, draw: int,
                 image_size: tuple[int, int]) -> torch.Tensor:
    """Model input of every view of one HxWx3 uint8 crop: (3, H, W) for one view, else (V, 3, H, W).

    ``source`` picks the frozen pipeline of a :class:`PerSourcePipeline` view (one per LMDB
    or synthetic source) and ``draw`` its augmentation ramp; all views draw from the one ``rng``.
    """
    h, w = image_size
    tensors = []
    for view in views:
        if isinstance(view, PerSourcePipeline):
            out = view(img, rng, source=source, draw=draw)
        else:
            out = img if view is None else view(img, rng)
        tensors.append(to_model_input(out, h, w))
    return tensors[0] if len(tensors) == 1 else torch.stack(tensors)


def make_item(image: torch.Tensor, label: torch.Tensor, length, index: int, substituted: bool = False) -> dict:
    """The item dict every crop dataset yields (see the module docstring)."""
    return {
        "image": image,
        "label": label,
        "length": torch.as_tensor(length),
        "index": torch.tensor(index),
        "substituted": torch.tensor(substituted),
    }


class ConcatCrops(Dataset):
    """Crop datasets joined end to end (LMDBs and synthetic sources in one part of a mix).

    Keys are ``index`` or ``(index, draw)`` as for :class:`CropDataset`; the draw is passed on
    unchanged so every member keeps its own reproducible randomness.
    """

    def __init__(self, members: Sequence[Dataset]):
        if not members:
            raise SemimtrError("nothing to concatenate")
        self.members = list(members)
        self._ends = np.cumsum([len(m) for m in self.members])

    def __len__(self) -> int:
        return int(self._ends[-1])

    def __getitem__(self, key):
        index, draw = item_key(key)
        m = int(np.searchsorted(self._ends, index, side="right"))
        start = 0 if m == 0 else int(self._ends[m - 1])
        return self.members[m][(index - start, draw)]


def n_sources(part: Dataset | None) -> int:
    """How many per-source pipeline indices a part of a mix uses (one per LMDB or stream)."""
    if part is None:
        return 0
    if isinstance(part, ConcatCrops):
        return sum(n_sources(m) for m in part.members)
    return len(part.readers) if isinstance(part, CropDataset) else 1  # a synthetic stream is one source


class MixedDataset(Dataset):
    """Several datasets behind one key space: key ``(part, index, draw)`` -> ``parts[part][(index, draw)]``."""

    def __init__(self, parts: Sequence[Dataset]):
        if not parts:
            raise SemimtrError("a mixed dataset needs at least one part")
        self.parts = list(parts)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, key) -> dict:
        part, index, draw = key
        item = self.parts[part][(index, draw)]
        if item is not None:
            item["part"] = torch.tensor(part)
        return item


class MixedSampler(torch.utils.data.Sampler):
    """Weighted sampling over datasets, as SemiMTR's ``WeightedDatasetRandomSampler``.

    Each draw picks a part with probability ``weights[p]`` and takes the next index of that
    part's own random permutation (a fresh permutation when one is exhausted). One epoch is
    ``int(max_p len_p / w_p)`` draws, so every part is seen about once per epoch (the official
    length). The global sequence depends only on ``(seed, epoch)``; under DDP rank ``r`` of
    ``world`` takes draws ``r, r+world, ...`` (disjoint shards, equal counts, the tail that does
    not divide evenly is dropped). Yields ``(part, index, draw)`` keys for :class:`MixedDataset`.

    ``set_epoch(e)`` chooses the epoch; ``start`` skips draws already consumed (exact resume).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float] | None = None,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_length: int | None = None,
    ):
        self.sizes = [int(s) for s in sizes]
        if not self.sizes or any(s <= 0 for s in self.sizes):
            raise SemimtrError(f"every dataset in a mix needs at least one sample, got sizes {self.sizes}")
        w = np.ones(len(self.sizes)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(w) != len(self.sizes) or (w <= 0).any():
            raise SemimtrError(f"mix weights {list(w)} must be positive, one per dataset ({len(self.sizes)})")
        self.weights = w / w.sum()
        if not 0 <= rank < world_size:
            raise SemimtrError(f"rank {rank} outside world size {world_size}")
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        total = epoch_length or int(max(s / p for s, p in zip(self.sizes, self.weights)))
        self.global_length = max(world_size, total - total % world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and how many of this rank's draws were already consumed."""
        self.epoch, self.start = int(epoch), int(start)

    def __len__(self) -> int:
        return self.global_length // self.world_size

    def global_sequence(self) -> tuple[np.ndarray, np.ndarray]:
        """(parts, indices) of the whole epoch, identical on every rank."""
        rng = np.random.default_rng([self.seed, self.epoch])
        parts = rng.choice(len(self.sizes), size=self.global_length, p=self.weights)
        indices = np.empty(self.global_length, dtype=np.int64)
        for p, size in enumerate(self.sizes):
            where = np.flatnonzero(parts == p)
            if len(where) == 0:
                continue
            reps = -(-len(where) // size)
            perms = np.concatenate([rng.permutation(size) for _ in range(reps)])
            indices[where] = perms[: len(where)]
        return parts, indices

    def __iter__(self):
        parts, indices = self.global_sequence()
        base = self.epoch * self.global_length
        for pos in range(self.rank + self.start * self.world_size, self.global_length, self.world_size):
            yield int(parts[pos]), int(indices[pos]), base + pos


def collate(items: list[dict | None]) -> dict:
    """Stack item dicts into a batch, dropping ``None`` items (counted in ``dropped``)."""
    kept = [x for x in items if x is not None]
    if not kept:
        return {"dropped": len(items)}
    batch = {k: torch.stack([x[k] for x in kept]) for k in kept[0]}
    batch["dropped"] = len(items) - len(kept)
    return batch
