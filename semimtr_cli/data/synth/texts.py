"""What the scene style writes: words by real frequency, cased as signs case them, and the
numbers, prices, dates, codes and punctuation signs carry.

Word lists here are ordered by frequency (the packaged list and wordfreq's are). A word of rank
r (0 = most frequent) is drawn with weight ``(r + 10) ** -0.75``: common words come often, as on
signs (the 100 most frequent of the packaged 20k take 15 % of the draws), yet words beyond rank
1,000 keep 62 % of them (a pure Zipf law, exponent 1, would spend most draws on a few hundred
words and show the model little of the tail). The label is
the text exactly as drawn; the charset's normalisation (lower-casing, dropping symbols) applies
later, at training time, as it does to real labels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

RANK_OFFSET = 10.0
RANK_EXPONENT = 0.75
# (kind, share among the non-word texts) -- the digits_fraction of a plan is their total share
OTHER_KINDS = (("number", 0.4), ("price", 0.15), ("code", 0.2), ("date", 0.1), ("phone", 0.05), ("punctuated", 0.1))
CURRENCY = ("$", "€", "£", "")
SCENE_SYMBOLS = "$€£.,!?()'#&:/-"  # every symbol other_text may write


@lru_cache(maxsize=8)
def rank_cdf(n: int) -> np.ndarray:
    """(n,) float64 (cached per list length: every crop of a plan asks) cumulative draw probabilities of ranks 0..n-1 (see module docstring)."""
    weights = (np.arange(n, dtype=np.float64) + RANK_OFFSET) ** -RANK_EXPONENT
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def draw_word(rng: np.random.Generator, words: tuple[str, ...], cdf: np.ndarray) -> str:
    """One word of the frequency-ordered ``words`` by the rank weights ``cdf``."""
    return words[min(int(np.searchsorted(cdf, rng.uniform())), len(words) - 1)]


def random_case(rng: np.random.Generator, word: str, *, lower: float, title: float) -> str:
    """``word`` lower-cased with probability ``lower``, Title-cased with ``title``, else UPPER (one draw)."""
    r = rng.uniform()
    if r < lower:
        return word.lower()
    if r < lower + title:
        return word[:1].upper() + word[1:].lower()
    return word.upper()


def sign_case(rng: np.random.Generator, word: str) -> str:
    """lower 40 %, Title 35 %, UPPER 25 %: how shop fronts, street signs and packaging case words."""
    return random_case(rng, word, lower=0.4, title=0.35)


def _digits(rng: np.random.Generator, lo: int, hi: int) -> str:
    n = int(rng.integers(lo, hi + 1))
    return str(int(rng.integers(1, 10))) + "".join(str(d) for d in rng.integers(0, 10, n - 1))


def other_text(rng: np.random.Generator, words: tuple[str, ...], cdf: np.ndarray) -> str:
    """A number, price, code, date, phone number or punctuated word (kinds by OTHER_KINDS)."""
    kinds, shares = zip(*OTHER_KINDS)
    kind = kinds[int(rng.choice(len(kinds), p=np.asarray(shares) / sum(shares)))]
    if kind == "number":
        return _digits(rng, 1, 6) if rng.uniform() < 0.9 else "0" + _digits(rng, 1, 3)
    if kind == "price":
        cur = CURRENCY[int(rng.integers(len(CURRENCY)))]
        amount = _digits(rng, 1, 3) + ("." + "".join(str(d) for d in rng.integers(0, 10, 2)) if rng.uniform() < 0.7 else "")
        return cur + amount if rng.uniform() < 0.7 else amount + cur
    if kind == "code":
        letters = "".join(chr(65 + int(c)) for c in rng.integers(0, 26, int(rng.integers(1, 4))))
        sep = ("", "-", "")[int(rng.integers(3))]
        return letters + sep + _digits(rng, 1, 4) if rng.uniform() < 0.7 else _digits(rng, 1, 3) + letters
    if kind == "date":
        day, month = int(rng.integers(1, 29)), int(rng.integers(1, 13))
        year = int(rng.integers(1950, 2031))
        return (f"{day:02d}/{month:02d}", f"{day}.{month}.{year}", str(year), f"{month:02d}/{year % 100:02d}")[
            int(rng.integers(4))]
    if kind == "phone":
        return f"{_digits(rng, 3, 3)}-{_digits(rng, 4, 4)}"
    word = sign_case(rng, draw_word(rng, words, cdf))
    marks = ("{}.", "{}!", "{},", "({})", "{}:", "'{}'", "{}?", "#{}", "{}&", "{}-")
    return marks[int(rng.integers(len(marks)))].format(word)


def draw_text(rng: np.random.Generator, words: tuple[str, ...], cdf: np.ndarray, other_fraction: float) -> str:
    """A word by frequency, cased as signs case it, or with probability ``other_fraction`` one
    of the other texts (:func:`other_text`)."""
    if rng.uniform() < other_fraction:
        return other_text(rng, words, cdf)
    return sign_case(rng, draw_word(rng, words, cdf))
