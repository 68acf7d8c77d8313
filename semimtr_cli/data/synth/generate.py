"""Plan and write synthetic word crops (the data behind `semimtr synth`): :func:`generate`.

Planning (:func:`plan_synth`) checks the options, the fonts' glyph coverage and the word list
once; writing renders samples (in worker processes) into a folder or an LMDB. Fonts live in
:mod:`.synth_fonts`, styles and the renderer in :mod:`.synth_render`.

Two rendering styles:

* ``clean``: plain or lightly tinted backgrounds, clear dark/light contrast, mild colour,
  rotation within +-2 degrees, little noise. Default fonts: the sans family.
* ``wild``: a shifted distribution for semi-supervised experiments: gradient / textured /
  grainy backgrounds, sometimes low contrast, shadows and outlines, blur and motion blur,
  low-resolution and JPEG artefacts, rotation within +-10 degrees, slant and perspective.
  Default fonts: the serif and mono families (so a clean labeled set and a wild unlabeled set
  differ in fonts too).

Every sample ``i`` draws from its own generator ``numpy.random.default_rng([seed, i])``, so a
sample does not depend on ``count``, on the other samples or on the number of worker processes,
and the same seed gives byte-identical files. Crops are word-shaped: ``height`` pixels high
(default 32) and as wide as the text needs (at least ``height / 2``).
"""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from semimtr_cli.core.errors import SemimtrError, UsageError, check_unit_interval, option
from semimtr_cli.core.fsutil import atomic_dir
from semimtr_cli.data.lmdb.io import LmdbWriter, is_lmdb_dir
from semimtr_cli.data.synth.dotmatrix import render_dotmatrix
from semimtr_cli.data.synth.fonts import PROBE, font_covers, font_manifest, resolve_fonts, screen_fonts
from semimtr_cli.data.synth.render import check_style, encode_image, render_word
from semimtr_cli.data.synth.scene import SCENE, SceneSpec, render_scene
from semimtr_cli.data.synth.texts import SCENE_SYMBOLS, draw_text, random_case, rank_cdf
from semimtr_cli.data.text.words import WordList, packaged_words

# ---------------------------------------------------------------------------------------------
# Planning: options, fonts and words checked once, then one picklable plan for every sample


CASES = ("lower", "mixed", "upper", "as-is")
IMAGE_FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class SynthPlan:
    """Everything one sample needs besides its index (picklable; sent once to each worker)."""

    seed: int
    words: tuple[str, ...]
    fonts: tuple[str, ...]
    font_chars: tuple[frozenset, ...]  # characters each font can draw
    style: str
    height: int
    case: str
    digits_fraction: float
    image_format: str
    stream: bool = False  # streamed training crops draw from their own generator keys
    backgrounds: tuple[str, ...] = ()  # scene style: photographs to cut background windows from
    scene: SceneSpec = SCENE  # scene style: its probabilities and ranges


# Extra generator key of streamed crops: sample i of seed s never equals `semimtr synth --seed s` sample i,
# so no synth test set can coincide with a crop a streamed training run saw.
STREAM_KEY = 0x5354


def _apply_case(word: str, case: str, rng: np.random.Generator) -> str:
    if case == "as-is":
        return word
    if case == "lower":
        return word.lower()
    if case == "upper":
        return word.upper()
    return random_case(rng, word, lower=0.5, title=0.3)


def _random_number(rng: np.random.Generator) -> str:
    length = int(rng.choice([1, 2, 3, 4, 4, 5, 6, 7]))
    digits = rng.integers(0, 10, length)
    if length > 1 and digits[0] == 0 and rng.uniform() < 0.8:
        digits[0] = rng.integers(1, 10)
    return "".join(str(d) for d in digits)


def make_sample(plan: SynthPlan, index: int) -> tuple[bytes, str, int]:
    """(encoded image, label, font index) of sample ``index``; depends only on (seed, index)."""
    img, text, font_index = draw_sample(plan, index)
    return encode_image(img, plan.image_format), text, font_index


def draw_sample(plan: SynthPlan, index: int) -> tuple[Image.Image, str, int]:
    """(RGB crop, label, font index) of sample ``index``, not encoded (streaming skips the codec)."""
    rng = np.random.default_rng([plan.seed, index, STREAM_KEY] if plan.stream else [plan.seed, index])
    for _ in range(100):
        text = _draw_text(plan, rng)
        font_index = _font_for(plan, set(text), rng)
        if font_index is not None:
            break
    else:
        raise SemimtrError(
            f"sample {index}: no font can draw 100 drawn words in a row; check {option('fonts')}/{option('words')}"
        )
    font = plan.fonts[font_index]
    if plan.style == "scene":
        img = render_scene(text, font, rng, plan.height, backgrounds=plan.backgrounds, neighbours=plan.words,
                           spec=plan.scene)
    elif plan.style == "dotmatrix":
        img = render_dotmatrix(text, font, rng, plan.height)
    else:
        img = render_word(text, font, rng, plan.style, plan.height)
    return img, text, font_index


def _draw_text(plan: SynthPlan, rng: np.random.Generator) -> str:
    if plan.style in ("scene", "dotmatrix"):  # words by frequency, sign casing, numbers/prices/codes (texts.py)
        text = draw_text(rng, plan.words, rank_cdf(len(plan.words)), plan.digits_fraction)
        return text if plan.case == "mixed" else _apply_case(text, plan.case, rng)
    if rng.uniform() < plan.digits_fraction:
        return _random_number(rng)
    return _apply_case(plan.words[int(rng.integers(len(plan.words)))], plan.case, rng)


def _font_for(plan: SynthPlan, chars: set[str], rng: np.random.Generator) -> int | None:
    """A random font index that draws every character of ``chars``, or None.

    A few random fonts are tried first (with hundreds of fonts nearly every one draws a word, and
    testing them all costs more than the word); the full scan only when those fail.
    """
    for _ in range(4):
        i = int(rng.integers(len(plan.fonts)))
        if chars <= plan.font_chars[i]:
            return i
    usable = [i for i, have in enumerate(plan.font_chars) if chars <= have]
    return usable[int(rng.integers(len(usable)))] if usable else None


_WORKER_PLAN: SynthPlan | None = None


def _init_worker(plan: SynthPlan) -> None:
    global _WORKER_PLAN
    _WORKER_PLAN = plan


def _render_chunk(indices: range) -> list[tuple[bytes, str, int]]:
    assert _WORKER_PLAN is not None
    return [make_sample(_WORKER_PLAN, i) for i in indices]


def check_options(height: int, case: str, digits_fraction: float, image_format: str) -> None:
    """Raise :class:`UsageError` for a crop height, case mode, digits fraction or format out of range."""
    if not 8 <= height <= 512:
        raise UsageError(f"must be between 8 and 512 pixels, got {height}", param="height")
    if case not in CASES:
        raise UsageError(f"unknown '{case}' (choose from: {', '.join(CASES)})", param="case")
    check_unit_interval(digits_fraction, "digits_fraction")
    if image_format not in IMAGE_FORMATS:
        raise UsageError(f"unknown '{image_format}' (choose png or jpg)", param="format")


def _as_word_list(words: WordList | Sequence[str] | None) -> WordList:
    if words is None:
        return packaged_words()
    return words if isinstance(words, WordList) else WordList(list(words), "given words")


def _alphabet(words: Sequence[str], case: str) -> set[str]:
    """Every character the plan may draw: the probe, digits, the scene style's symbols, and the
    words in each case."""
    alphabet = set(PROBE) | set("0123456789") | set(SCENE_SYMBOLS)
    for w in words:
        alphabet.update(w)
        if case != "as-is":
            alphabet.update(w.lower() + w.upper())
    return alphabet


def _usable_fonts(font_paths: Sequence[str], alphabet: set[str]) -> tuple[list[str], list[frozenset], dict[str, str]]:
    """(fonts kept, characters each draws, {skipped font: why}) -- see fonts.screen_fonts."""
    kept_fonts, skipped = screen_fonts(font_paths)
    if not kept_fonts:
        reasons = "; ".join(f"{Path(f).name}: {why}" for f, why in list(skipped.items())[:3])
        raise SemimtrError(f"none of the {len(font_paths)} fonts can write words ({reasons})")
    kept_chars = [frozenset(font_covers(path, alphabet)) for path in kept_fonts]
    return kept_fonts, kept_chars, {Path(f).name: why for f, why in skipped.items()}


def plan_synth(
    seed: int,
    *,
    words: WordList | Sequence[str] | None = None,
    fonts: Sequence[str | Path] | None = None,
    style: str = "clean",
    height: int = 32,
    case: str = "mixed",
    digits_fraction: float = 0.1,
    image_format: str = "png",
    backgrounds: Sequence[str] = (),
) -> tuple[SynthPlan, dict]:
    """Validate options, check glyph coverage, and return (plan, facts for the summary).

    Words that no chosen font can draw are dropped and counted; fonts that cannot write words
    (:func:`~semimtr_cli.data.synth.fonts.screen_fonts`) are dropped with the reason.
    """
    check_style(style)
    check_options(height, case, digits_fraction, image_format)
    word_list = _as_word_list(words)
    font_paths = [str(p) for p in (fonts if fonts is not None else resolve_fonts(style=style))]
    if not font_paths:
        raise SemimtrError("no fonts to render with")
    kept_fonts, kept_chars, bad_fonts = _usable_fonts(font_paths, _alphabet(word_list.words, case))
    union = frozenset().union(*kept_chars)
    kept_words = [w for w in word_list.words if set(w) <= union]
    if not kept_words and digits_fraction < 1.0:
        raise SemimtrError(f"no word of {word_list.source} can be drawn with the chosen fonts")
    plan = SynthPlan(
        seed=int(seed),
        words=tuple(kept_words) or ("0",),
        fonts=tuple(kept_fonts),
        font_chars=tuple(kept_chars),
        style=style,
        backgrounds=tuple(backgrounds),
        height=int(height),
        case=case,
        digits_fraction=float(digits_fraction),
        image_format=image_format,
    )
    undrawable = len(word_list) - len(kept_words)
    facts = {
        "words_source": word_list.source,
        "words": len(kept_words),
        "words_skipped": {**word_list.skipped, **({"no font draws it": undrawable} if undrawable else {})},
        "fonts_skipped": bad_fonts,
    }
    return plan, facts


def iter_samples(plan: SynthPlan, count: int, workers: int = 1, chunk: int = 64):
    """Yield ``(image bytes, label, font index)`` for indices 0..count-1 in order."""
    chunks = [range(s, min(s + chunk, count)) for s in range(0, count, chunk)]
    if workers <= 1 or len(chunks) <= 1:
        for c in chunks:
            yield [make_sample(plan, i) for i in c]
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(plan,)) as pool:
        yield from pool.map(_render_chunk, chunks)


# ---------------------------------------------------------------------------------------------
# Writing outputs

MANIFEST = "synth.json"


def _is_synth_folder(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def check_output(out: Path, *, lmdb: bool, overwrite: bool) -> None:
    """Refuse to replace an existing output without ``overwrite``, or a foreign folder ever."""
    if not out.exists():
        return
    if not out.is_dir():
        raise SemimtrError(f"output {out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    ours = is_lmdb_dir(out) or _is_synth_folder(out)
    if not overwrite:
        raise SemimtrError(f"output {out} already exists; pass {option('overwrite')} to replace it")
    if not ours:
        raise SemimtrError(f"output {out} is a non-empty folder that is neither an LMDB nor a synth output; refusing to replace it")
    if lmdb and not is_lmdb_dir(out):
        raise SemimtrError(f"output {out} holds a synth image folder; remove it or choose another {option('out')} for an LMDB")


@dataclass
class _Tally:
    """What the written samples add up to: crops per font, summed widths, encoded bytes."""

    font_counts: list[int]
    widths: int = 0
    bytes: int = 0

    def add(self, data: bytes, font_index: int, image_format: str) -> None:
        self.font_counts[font_index] += 1
        self.bytes += len(data)
        self.widths += _encoded_width(data, image_format)


def _batches(plan: SynthPlan, count: int, workers: int, on_progress) -> Iterator[list[tuple[bytes, str, int]]]:
    """The rendered batches of :func:`iter_samples`, reporting each to ``on_progress`` once consumed."""
    for batch in iter_samples(plan, count, workers):
        yield batch
        if on_progress:
            on_progress(len(batch))


def _write_lmdb(out: Path, batches, tally: _Tally, *, image_format: str, unlabeled: bool, overwrite: bool) -> None:
    with LmdbWriter(out, overwrite=overwrite) as writer:
        for batch in batches:
            for data, label, font_index in batch:
                writer.add(data, None if unlabeled else label)
                tally.add(data, font_index, image_format)


def _write_folder(out: Path, batches, tally: _Tally, *, image_format: str, unlabeled: bool, settings: dict) -> None:
    """``images/NNNNNNNNN.<format>``, ``labels.tsv`` (unless unlabeled) and the manifest, built beside ``out``."""
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        lines = []
        index = 0
        for batch in batches:
            for data, label, font_index in batch:
                index += 1
                rel = f"images/{index:09d}.{image_format}"
                (tmp / rel).write_bytes(data)
                lines.append(f"{rel}\t{label}\n")
                tally.add(data, font_index, image_format)
        if not unlabeled:
            (tmp / "labels.tsv").write_text("".join(lines), encoding="utf-8", newline="\n")
        (tmp / MANIFEST).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def _settings(plan: SynthPlan, facts: dict, count: int, unlabeled: bool) -> dict:
    """The settings written to ``synth.json`` (and repeated in the summary)."""
    return {
        "seed": plan.seed, "count": count, "style": plan.style, "height": plan.height, "case": plan.case,
        "digits_fraction": plan.digits_fraction, "format": plan.image_format, "unlabeled": unlabeled,
        "fonts": font_manifest(plan.fonts), "words_source": facts["words_source"], "words": facts["words"],
        "backgrounds": len(plan.backgrounds),
    }


def generate(
    out: str | Path,
    count: int,
    seed: int = 0,
    *,
    lmdb: bool = False,
    unlabeled: bool = False,
    words: WordList | Sequence[str] | None = None,
    fonts: Sequence[str | Path] | None = None,
    style: str = "clean",
    height: int = 32,
    case: str = "mixed",
    digits_fraction: float = 0.1,
    image_format: str = "png",
    overwrite: bool = False,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
    backgrounds: Sequence[str] = (),
) -> dict:
    """Render ``count`` word crops into ``out`` and return a summary dict.

    Output: with ``lmdb`` an LMDB (standard layout; no label keys when ``unlabeled``); else a
    folder with ``images/NNNNNNNNN.png`` (1-based, like LMDB keys), ``labels.tsv``
    (``images/...<TAB>label``, omitted when ``unlabeled``) and ``synth.json`` (the settings).
    Both are built beside ``out`` and renamed into place at the end. ``fonts``: font files
    (default: :func:`resolve_fonts` for the style). ``words``: default the packaged list.
    Options are checked before ``out`` is looked at.
    """
    out = Path(out)
    if count < 1:
        raise UsageError(f"must be at least 1, got {count}", param="count")
    plan, facts = plan_synth(
        seed, words=words, fonts=fonts, style=style, height=height, case=case,
        digits_fraction=digits_fraction, image_format=image_format, backgrounds=backgrounds,
    )
    check_output(out, lmdb=lmdb, overwrite=overwrite)
    tally = _Tally([0] * len(plan.fonts))
    settings = _settings(plan, facts, count, unlabeled)
    start = time.perf_counter()
    batches = _batches(plan, count, workers, on_progress)
    if lmdb:
        _write_lmdb(out, batches, tally, image_format=plan.image_format, unlabeled=unlabeled, overwrite=overwrite)
    else:
        _write_folder(out, batches, tally, image_format=plan.image_format, unlabeled=unlabeled, settings=settings)
    seconds = time.perf_counter() - start
    return {
        "out": str(out),
        "kind": "lmdb" if lmdb else "folder",
        **settings,
        "fonts_used": {Path(f).name: n for f, n in zip(plan.fonts, tally.font_counts) if n},
        "fonts_skipped": facts["fonts_skipped"],
        "words_skipped": facts["words_skipped"],
        "mean_width": tally.widths / count,
        "bytes": tally.bytes,
        "workers": workers,
        "seconds": seconds,
        "images_per_s": count / seconds if seconds > 0 else float("inf"),
    }


def _encoded_width(data: bytes, image_format: str) -> int:
    """Image width: from the PNG header, or PIL's lazy JPEG header parse."""
    if image_format == "png":
        return int.from_bytes(data[16:20], "big")
    return Image.open(io.BytesIO(data)).size[0]
