"""Word noise for the language model (data/text_noise.py): the official eval disturbance and spelling mutation."""

from __future__ import annotations

import string
from collections import Counter

import numpy as np
import pytest

from semimtr_cli.core.metrics import edit_distance
from semimtr_cli.data.text.noise import disturb_word, spelling_mutation

LETTERS = set(string.ascii_lowercase)
WORDS = ["scene", "text", "recognition", "of", "language", "models", "a", "ok", "abc", "naturally"]


def test_edit_distance_used_here():
    assert [edit_distance(*p) for p in [("", ""), ("abc", "abc"), ("abc", "abd"), ("abc", "ab"), ("ab", "xab"),
                                      ("kitten", "sitting")]] == [0, 0, 1, 1, 1, 3]


@pytest.mark.parametrize("noise", [disturb_word, spelling_mutation])
def test_same_seed_same_words_other_seed_other_words(noise):
    def run(seed):
        rng = np.random.default_rng(seed)
        return [noise(w, rng) for w in WORDS * 20]

    assert run(7) == run(7)
    assert run(7) != run(8)


@pytest.mark.parametrize("noise", [disturb_word, spelling_mutation])
def test_new_characters_are_lowercase_letters_only(noise):
    rng = np.random.default_rng(0)
    for word in ["Hello", "WORLD", "Text-2", "x_y.z", "naïve"] * 200:
        assert set(noise(word, rng)) <= set(word) | LETTERS, word


def test_disturb_leaves_short_and_mostly_digit_words_alone():
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert disturb_word("a", rng) == "a"  # len // 2 < degree 1
        assert disturb_word("ab12", rng) == "ab12"  # half the characters are digits
        assert disturb_word("2024", rng) == "2024"
        assert disturb_word("abc", rng, degree=2) == "abc"  # 3 // 2 < 2
        assert disturb_word("", rng) == ""


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_disturb_makes_at_most_degree_edits(degree):
    rng = np.random.default_rng(degree)
    distances = Counter(edit_distance(w, disturb_word(w, rng, degree)) for w in ["recognition", "language"] * 2000)
    assert max(distances) == degree  # at most degree edits, and degree edits do happen
    assert set(distances) == set(range(degree + 1))


def test_disturb_edit_shares_match_the_official_rates():
    """Unchanged w.p. 0.3 (plus a replacement drawing the same letter); otherwise replace 80 %,
    insert 10 %, delete 10 % (one edit at degree 1)."""
    rng = np.random.default_rng(123)
    n, word = 20000, "language"
    out = [disturb_word(word, rng) for _ in range(n)]
    same = sum(w == word for w in out) / n
    longer = sum(len(w) == len(word) + 1 for w in out) / n
    shorter = sum(len(w) == len(word) - 1 for w in out) / n
    assert same == pytest.approx(0.3 + 0.7 * 0.8 / 26, abs=0.015)
    assert longer == pytest.approx(0.07, abs=0.01) and shorter == pytest.approx(0.07, abs=0.01)


def test_spelling_mutation_leaves_single_letters_and_numbers_alone():
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert spelling_mutation("a", rng) == "a"
        assert spelling_mutation("", rng) == ""
        assert spelling_mutation("12ab", rng) == "12ab"
        assert spelling_mutation("3.14", rng) == "3.14"


@pytest.mark.parametrize("word,cap", [("ok", 1), ("abcd", 1), ("abcde", 2), ("scenes", 3), ("recognition", 3)])
def test_spelling_mutation_edit_cap_by_length(word, cap):
    """At most 3 edits; capped to 1 for lengths 2-4 and to len // 2 otherwise."""
    rng = np.random.default_rng(len(word))
    distances = Counter(edit_distance(word, spelling_mutation(word, rng)) for _ in range(6000))
    assert max(distances) == cap


def test_spelling_mutation_edit_count_shares():
    """0 edits w.p. 0.7, 1 w.p. 0.15, 2 w.p. 0.10, 3 w.p. 0.05 (a long word: no cap applies).

    The distance can fall short of the edit count (an edit draws the same letter, a later one
    undoes an earlier one), never exceed it: P(d >= k) <= P(edits >= k)."""
    rng = np.random.default_rng(5)
    n, word = 20000, "naturally"
    distances = Counter(edit_distance(word, spelling_mutation(word, rng)) for _ in range(n))
    assert distances[0] / n == pytest.approx(0.7, abs=0.015)
    assert 0.12 < (distances[2] + distances[3]) / n <= 0.15 + 0.01
    assert 0.025 < distances[3] / n <= 0.05 + 0.005
