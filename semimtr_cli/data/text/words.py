"""Word sources for `semimtr synth`: a UTF-8 file, the packaged English list, or wordfreq.

A :class:`WordList` keeps the words in source order (the packaged and wordfreq lists are ordered
by frequency, most frequent first) and counts what was skipped and why, so nothing is dropped
silently.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable

from semimtr_cli.core.errors import SemimtrError, option

PACKAGED_WORDS = "english_words.txt"
# Words kept from frequency lists: ASCII letters, digits, apostrophes and hyphens, 1..25 symbols
# (25 = the paper's maximum label length). Every bundled font draws these characters.
FREQUENCY_WORD = re.compile(r"[A-Za-z0-9'\-]{1,25}")
DEFAULT_WORDFREQ_TOP = 50_000


@dataclass
class WordList:
    """Words to render, where they came from, and how many candidates were skipped per reason."""

    words: list[str]
    source: str
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.words)

    def limited(self, size: int | None) -> "WordList":
        """The first ``size`` words (all when ``size`` is None)."""
        if size is None or size >= len(self.words):
            return self
        if size < 1:
            raise SemimtrError(f"vocabulary size must be at least 1, got {size}")
        return WordList(self.words[:size], f"{self.source} (first {size})", dict(self.skipped))


def _has_control(word: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in word)


def clean_words(lines: Iterable[str], source: str) -> WordList:
    """Strip each line; skip empty lines and words with control characters (tabs, newlines).

    Labels are written to a TSV, so a tab or newline inside a word could not round-trip.
    """
    words: list[str] = []
    skipped: dict[str, int] = {}
    for line in lines:
        word = line.strip()
        if not word:
            skipped["empty line"] = skipped.get("empty line", 0) + 1
        elif _has_control(word):
            skipped["control character"] = skipped.get("control character", 0) + 1
        else:
            words.append(word)
    return WordList(words, source, skipped)


def read_words_file(path: str | Path) -> WordList:
    """One word per line, UTF-8 (a BOM and CRLF line ends are accepted).

    Raises:
        SemimtrError: missing/unreadable file, invalid UTF-8, or no usable word.
    """
    path = Path(path)
    if not path.is_file():
        raise SemimtrError(f"word list not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SemimtrError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    found = clean_words(text.splitlines(), str(path))
    if not found.words:
        raise SemimtrError(f"{path}: no words (expected one word per line)")
    return found


def packaged_words() -> WordList:
    """The ~20k most frequent English words shipped with the package (see resources/README.md)."""
    text = resources.files("semimtr_cli").joinpath("resources", PACKAGED_WORDS).read_text(encoding="utf-8")
    return WordList(text.split(), "packaged English list (wordfreq top 20k)")


def wordfreq_words(top: int = DEFAULT_WORDFREQ_TOP, lang: str = "en") -> WordList:
    """The ``top`` most frequent words of the installed ``wordfreq`` package, filtered like the packaged list.

    Raises:
        SemimtrError: if wordfreq is not installed.
    """
    try:
        import wordfreq
    except ImportError:
        raise SemimtrError(f"{option('wordfreq')} needs the wordfreq package: pip install wordfreq") from None
    words, dropped = [], 0
    for word in wordfreq.top_n_list(lang, top):
        if FREQUENCY_WORD.fullmatch(word):
            words.append(word)
        else:
            dropped += 1
    skipped = {"outside A-Z a-z 0-9 ' - or longer than 25": dropped} if dropped else {}
    return WordList(words, f"wordfreq top {top} ({lang})", skipped)
