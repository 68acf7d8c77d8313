"""Synthetic word crops rendered on the fly inside the loader workers (a recipe data source).

A :class:`SynthCropDataset` is the streaming twin of ``semimtr synth``: the same renderer, fonts,
styles and word lists, but no files. It behaves like a :class:`~.datasets.CropDataset` (same
item dicts, same views and augmentation), so it mixes with LMDBs through the weighted sampler.

Which crop an item is:

- ``fresh=True`` (training): the crop is sample ``draw`` of the renderer, where ``draw`` is the
  sampler's global draw number. Draw numbers never repeat within a run, so a run never sees the
  same crop twice, and the crop depends only on ``(seed, draw)``: exact resume still holds.
- ``fresh=False`` (validation, fixed sets): the crop is sample ``index``, so the set is the same
  ``crops_per_epoch`` crops every time.

``crops_per_epoch`` is the dataset's length: what the sampler counts as one pass over it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.datasets import item_key, make_item, render_views, unlabeled_target
from semimtr_cli.data.synth.backgrounds import list_backgrounds
from semimtr_cli.data.synth.fonts import font_manifest, resolve_fonts
from semimtr_cli.data.synth.generate import SynthPlan, draw_sample, plan_synth
from semimtr_cli.data.synth.scene import SceneSpec
from semimtr_cli.data.text.words import WordList, packaged_words, read_words_file


@dataclass
class SynthSource:
    """One streamed synthetic source in a recipe (``data.labeled_synth`` and friends).

    style: ``clean``, ``wild`` or ``scene`` (see ``semimtr synth``). fonts: a font folder or
    ``system`` (None = the bundled fonts); font_set: preset/names as ``synth --font-set`` (None =
    the style's default). backgrounds: a folder of photographs (scene style; None = textures).
    words: a word file (None = the packaged English list); vocab_size: keep its first N words.
    seed: renderer seed (streamed crops use their own generator keys: no ``semimtr synth``
        output, whatever its seed, holds a crop a streamed run trained on).
    crops_per_epoch: length of one pass for the sampler. case / digits_fraction / height: as
    ``semimtr synth``. scene: overrides of the scene style's :class:`~.scene.SceneSpec` (its
    probabilities and ranges, e.g. ``{curve_prob: 0}``; scene style only).
    """

    style: Literal["clean", "wild", "scene"] = "clean"
    seed: int = 0
    crops_per_epoch: int = 10000
    fonts: str | None = None
    font_set: str | None = None
    backgrounds: str | None = None
    words: str | None = None
    vocab_size: int | None = None
    case: Literal["lower", "mixed", "upper", "as-is"] = "mixed"
    digits_fraction: float = 0.1
    height: int = 32
    scene: SceneSpec | None = None

    def describe(self) -> str:
        return f"synth:{self.style}(seed {self.seed}, {self.crops_per_epoch} per epoch)"

    def word_list(self) -> WordList:
        words = read_words_file(self.words) if self.words else packaged_words()
        return words.limited(self.vocab_size)


def plan_for(source: SynthSource, charset: Charset) -> SynthPlan:
    """The renderer plan of ``source``, keeping only words the charset encodes (1..max_length)."""
    if source.crops_per_epoch < 1:
        raise SemimtrError(f"{source.describe()}: crops_per_epoch must be >= 1")
    fonts = resolve_fonts(Path(source.fonts) if source.fonts else None, source.font_set, source.style)
    backgrounds = list_backgrounds(source.backgrounds) if source.backgrounds else []
    plan, _ = plan_synth(source.seed, words=source.word_list(), fonts=fonts, style=source.style,
                         height=source.height, case=source.case, digits_fraction=source.digits_fraction,
                         backgrounds=backgrounds)
    if source.scene is not None:
        if source.style != "scene":
            raise SemimtrError(f"{source.describe()}: 'scene' overrides need style: scene, not '{source.style}'")
        plan = dataclasses.replace(plan, scene=source.scene)
    fits = tuple(w for w in plan.words if charset.normalize_with_reason(w)[0] is not None)
    if not fits:
        raise SemimtrError(f"{source.describe()}: no word of the list fits charset '{charset.name}' "
                           f"(1..{charset.max_length} characters after normalisation)")
    return dataclasses.replace(plan, words=fits, stream=True)


def source_manifest(source: SynthSource, charset: Charset) -> dict:
    """What a streamed source draws from, for a run's metadata: its settings, the exact font
    files (names and hashes) and the number of background photographs."""
    plan = plan_for(source, charset)
    return {"source": source.describe(), **dataclasses.asdict(source), "fonts_used": font_manifest(plan.fonts),
            "background_files": len(plan.backgrounds), "words_kept": len(plan.words)}


class SynthCropDataset(Dataset):
    """Crops rendered per item from ``source`` (see the module docstring for which crop).

    Args mirror :class:`~.datasets.CropDataset`: ``labeled`` False gives length-0 targets;
    ``views`` are per-view transforms; ``seed`` keys the augmentation generators;
    ``source_id`` picks the frozen pipeline of a per-source augmentation.
    """

    def __init__(self, source: SynthSource, charset: Charset, *, labeled: bool = True,
                 views: Sequence = (None,), image_size: tuple[int, int] = (32, 128), seed: int = 0,
                 fresh: bool = True, source_id: int = 0):
        self.source = source
        self.charset = charset
        self.labeled = labeled
        self.views = tuple(views)
        self.image_size = tuple(image_size)
        self.seed = int(seed)
        self.fresh = fresh
        self.source_id = int(source_id)
        self.plan = plan_for(source, charset)

    def __len__(self) -> int:
        return self.source.crops_per_epoch

    def describe(self, i: int) -> str:
        return f"{self.source.describe()}:sample-{i}"

    def sample(self, number: int) -> tuple[np.ndarray, str]:
        """(HxWx3 uint8 crop, normalised label) of renderer sample ``number``.

        Words that do not fit were dropped from the plan; a random number longer than
        ``max_length`` is redrawn from a re-seeded plan (deterministically).
        """
        plan = self.plan
        for attempt in range(16):
            img, text, _ = draw_sample(plan, number)
            label = self.charset.normalize(text)
            if label:
                return np.asarray(img), label
            plan = dataclasses.replace(self.plan, seed=self.plan.seed + 7919 * (attempt + 1))
        raise SemimtrError(f"{self.describe(number)}: no drawable label fits charset '{self.charset.name}' in 16 tries")

    def __getitem__(self, key) -> dict:
        index, draw = item_key(key)
        number = draw if self.fresh else index
        img, text = self.sample(number)
        if self.labeled:
            ids, length = self.charset.encode_padded(text)
            label = torch.tensor(ids, dtype=torch.int64)
        else:
            label, length = unlabeled_target(self.charset)
        rng = np.random.default_rng([self.seed, draw, number])
        image = render_views(img, self.views, rng, source=self.source_id, draw=draw, image_size=self.image_size)
        return make_item(image, label, length, number)
