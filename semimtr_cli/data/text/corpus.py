"""Text corpora for the language model: word lists, running text, or a CSV/TSV column.

Words are normalised with the charset (the same rules as image labels); words that end up
empty or longer than ``max_length`` are skipped and counted. Words are stored encoded as a
compact integer matrix, so large corpora (WikiText-103: ~86M words) fit in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from semimtr_cli.core.charset import Charset
from semimtr_cli.core.errors import SemimtrError
from semimtr_cli.data.datasets import FilterStats

CORPUS_FORMATS = ("auto", "lines", "text", "csv", "tsv")


def read_corpus_words(path: str | Path, *, fmt: str = "auto", column: str | None = None) -> list[str]:
    """Raw words of a corpus file, in file order.

    Formats: ``lines`` (one word per line, the line kept whole), ``text`` (running text split
    on whitespace), ``csv``/``tsv`` (a column, default ``column`` = the official ``gt`` or the
    first column). ``auto`` picks csv/tsv by extension, else ``lines`` when no line holds
    whitespace, else ``text``.
    """
    p = Path(path)
    if not p.is_file():
        raise SemimtrError(f"corpus file not found: {p}")
    if fmt not in CORPUS_FORMATS:
        raise SemimtrError(f"corpus format must be one of {CORPUS_FORMATS}, got {fmt!r}")
    if fmt == "auto":
        fmt = {".csv": "csv", ".tsv": "tsv"}.get(p.suffix.lower(), "")
    if fmt in ("csv", "tsv"):
        import pandas as pd

        sep = "\t" if fmt == "tsv" else None
        try:
            frame = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False, engine="python" if sep is None else "c")
        except Exception as exc:
            raise SemimtrError(f"{p}: cannot read as {fmt.upper()} ({exc})") from None
        col = column or ("gt" if "gt" in frame.columns else frame.columns[0])
        if col not in frame.columns:
            raise SemimtrError(f"{p}: no column {col!r}; columns are {list(frame.columns)}")
        return frame[col].tolist()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SemimtrError(f"{p}: not UTF-8 ({exc})") from None
    lines = text.splitlines()
    if fmt == "" and any(len(line.split()) > 1 for line in lines[:1000]):
        fmt = "text"
    if fmt == "text":
        return text.split()
    return [line.strip("\r") for line in lines if line.strip()]


def zipf_occurrences(words: list[str], total: int, *, min_count: int = 2) -> list[str]:
    """A frequency-ordered word list (most frequent first) as a corpus of ~``total`` occurrences.

    Word of rank r (0-based) occurs ``max(min_count, round(total / ((r + 1) * H)))`` times, H the
    harmonic number of the list (Zipf's law with exponent 1, which English running text follows
    closely), so frequent words dominate as in WikiText while every word still occurs. Order:
    each word's occurrences together (the sampler shuffles). Deterministic.
    """
    if total < 1:
        raise SemimtrError(f"corpus size must be >= 1, got {total}")
    if not words:
        return []
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    counts = np.maximum(min_count, np.rint(total / (ranks * (1.0 / ranks).sum()))).astype(np.int64)
    return [w for w, c in zip(words, counts.tolist()) for _ in range(c)]


class TextCorpusDataset(Dataset):
    """Normalised words for the language model.

    Items: ``label`` (T,) int64 ids and ``length`` (chars + stop) of the clean word, and
    ``input`` / ``input_length``: the same word, or ``noise(word, rng)`` when a noise function
    is given (spelling mutation), with ``rng = default_rng([seed, draw, index])`` keyed like
    the image datasets so a resumed run sees the same inputs.
    """

    def __init__(
        self,
        words: list[str],
        charset: Charset,
        *,
        min_length: int = 1,
        source: str = "corpus",
        noise: Callable[[str, np.random.Generator], str] | None = None,
        seed: int = 0,
    ):
        self.charset = charset
        self.noise = noise
        self.seed = seed
        self.stats = FilterStats(total=len(words))
        dtype = np.uint8 if charset.num_classes <= 256 else np.int32
        # Each distinct word is normalised and encoded once (a Zipf corpus repeats its words:
        # 400 000 occurrences of 20 000 words took 4.7 s one by one); skips count per occurrence.
        row_of: dict[str, int | str] = {}  # word -> its row in ``distinct``, or why it is skipped
        distinct, index = [], []
        for w in words:
            k = row_of.get(w)
            if k is None:
                text, why = charset.normalize_with_reason(w)
                if text is None or len(text) < min_length:
                    k = why or f"shorter than {min_length} characters"
                else:
                    k = len(distinct)
                    distinct.append(charset.encode_padded(text)[0])
                row_of[w] = k
            if isinstance(k, str):
                self.stats.add_skip(k)
            else:
                index.append(k)
        if not index:
            raise SemimtrError(f"{source}: no usable word (of {len(words)}) after normalisation: {self.stats.skipped}")
        self._rows = np.asarray(distinct, dtype=dtype)  # (D, max_length) each raw word's ids, once
        self._ids = self._rows[np.asarray(index, dtype=np.int64)]
        self._lengths = (self._ids != 0).sum(axis=1).astype(np.int64) + 1
        self.stats.kept = len(index)

    @classmethod
    def from_file(cls, path: str | Path, charset: Charset, *, fmt: str = "auto", column: str | None = None, min_length: int = 1):
        return cls(read_corpus_words(path, fmt=fmt, column=column), charset, min_length=min_length, source=str(path))

    def __len__(self) -> int:
        return len(self._ids)

    def word(self, i: int) -> str:
        return self.charset.decode(self._ids[i])

    def distinct_words(self) -> list[str]:
        """Every distinct word once, in id order (a corpus of occurrences holds repeats).

        Deduplicates the rows of the distinct raw words (two raw words may normalise to one),
        not the occurrences: the same answer, without sorting every occurrence.
        """
        return [self.charset.decode(row) for row in np.unique(self._rows, axis=0)]

    def __getitem__(self, key) -> dict:
        i, draw = (int(key[0]), int(key[1])) if isinstance(key, (tuple, list)) else (int(key), int(key))
        label = torch.from_numpy(self._ids[i].astype(np.int64))
        length = torch.tensor(self._lengths[i])
        inp, inp_len = label, length
        if self.noise is not None:
            word = self.noise(self.word(i), np.random.default_rng([self.seed, draw, i]))
            word = "".join(ch for ch in word if ch in self.charset.symbols)[: self.charset.max_length]
            if word:
                ids, n = self.charset.encode_padded(word)
                inp, inp_len = torch.tensor(ids), torch.tensor(n)
        return {"label": label, "length": length, "input": inp, "input_length": inp_len}
