import pytest

from semimtr_cli.core.metrics import TextMetrics, edit_distance


@pytest.mark.parametrize("a,b,d", [("", "", 0), ("abc", "abc", 0), ("kitten", "sitting", 3), ("", "ab", 2), ("ab", "ba", 2)])
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d == edit_distance(b, a)


def test_text_metrics_summary():
    m = TextMetrics()
    assert m.update("hello", "hello", 0.9)
    assert not m.update("helo", "hello", 0.5)
    s = m.summary()
    assert s["accuracy"] == 50.0
    assert s["one_minus_ned"] == pytest.approx(100 * (1 - (0 + 1 / 5) / 2))
    assert s["char_accuracy"] == pytest.approx(100 * (5 + 3) / 10)  # "helo" vs "hello": h,e,l match, o!=l
    assert s["mean_confidence"] == pytest.approx(70.0)
    garbage = TextMetrics()
    garbage.update("abcdefghij", "ab")
    assert garbage.summary()["one_minus_ned"] == pytest.approx(100 * (1 - 8 / 10))  # bounded, not negative
    other = TextMetrics()
    other.update("a", "b")
    m.merge(other)
    assert m.words == 3 and m.correct == 1
