"""Word-level noise for the language model: the official eval disturbance and spelling mutation.

Both take a word and a numpy Generator and return the changed word (letters drawn from a-z).
"""

from __future__ import annotations

import string

import numpy as np

_LETTERS = string.ascii_lowercase


def _mostly_digits(word: str) -> bool:
    return sum(ch.isdigit() for ch in word) >= len(word) / 2


def _random_letter(rng: np.random.Generator) -> str:
    return _LETTERS[int(rng.integers(len(_LETTERS)))]


def disturb_word(word: str, rng: np.random.Generator, degree: int = 1) -> str:
    """The official ``disturb`` used to make the LM evaluation set (degree 1).

    Unchanged when ``len(word) // 2 < degree``, when at least half the characters are digits,
    or with probability 0.3; otherwise ``degree`` random positions each get an edit: insert a
    random letter before it (10%), delete it (10%) or replace it with a random letter (80%).
    """
    if len(word) // 2 < degree or _mostly_digits(word) or rng.random() < 0.3:
        return word
    chars = list(word)
    for _ in range(degree):
        if not chars:
            break
        pos = int(rng.integers(len(chars)))
        u = rng.random()
        if u < 0.1:
            chars.insert(pos, _random_letter(rng))
        elif u < 0.2:
            del chars[pos]
        else:
            chars[pos] = _random_letter(rng)
    return "".join(chars)


def spelling_mutation(word: str, rng: np.random.Generator) -> str:
    """The official optional training-time mutation (``use_sm``).

    Number of edits: 0 w.p. 0.7, 1 w.p. 0.15, 2 w.p. 0.10, 3 w.p. 0.05; capped to 1 for words
    of length 2-4 and to len // 2 otherwise; none for length <= 1 or mostly-digit words. Each
    edit at a random position: replace (70%), insert before (15%) or delete (15%).
    """
    if len(word) <= 1 or _mostly_digits(word):
        return word
    u = rng.random()
    edits = 0 if u < 0.7 else 1 if u < 0.85 else 2 if u < 0.95 else 3
    edits = min(edits, 1 if len(word) <= 4 else len(word) // 2)
    chars = list(word)
    for _ in range(edits):
        if not chars:
            break
        pos = int(rng.integers(len(chars)))
        v = rng.random()
        if v < 0.7:
            chars[pos] = _random_letter(rng)
        elif v < 0.85:
            chars.insert(pos, _random_letter(rng))
        else:
            del chars[pos]
    return "".join(chars)
