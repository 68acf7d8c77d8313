import pytest

from semimtr_cli.core.charset import NULL_ID, Charset
from semimtr_cli.core.errors import SemimtrError


def test_official_36_order_and_ids():
    cs = Charset.preset("36")
    assert cs.num_classes == 37 and cs.max_slots == 26
    assert [cs.encode(c)[0] for c in "az190"] == [1, 26, 27, 35, 36]
    assert cs.symbol(0) == "\u2591" and cs.symbol(36) == "0"


def test_paper_normalisation_lowercases_and_removes_before_length_check():
    cs = Charset.preset("36")
    assert cs.normalize("Hello, World!") == "helloworld"
    assert cs.normalize("3rd Ave") == "3rdave"
    assert cs.normalize("!!!") is None
    # 26 letters plus punctuation: removal first, then the 25 limit applies
    assert cs.normalize("a-" * 25) == "a" * 25
    assert cs.normalize("a" * 26) is None
    assert cs.normalize_with_reason("a" * 26)[1] == "longer than 25 characters"


def test_encode_padded_and_decode_roundtrip():
    cs = Charset.preset("36")
    ids, length = cs.encode_padded("abc")
    assert len(ids) == 26 and length == 4 and ids[3] == NULL_ID
    assert cs.decode(ids) == "abc"
    assert cs.decode([1, 2, 0, 3]) == "ab"


def test_case_sensitive_preset_and_reject_policy():
    cs = Charset.preset("94")
    assert cs.normalize("Hi!") == "Hi!"
    assert cs.normalize("a b") == "ab"  # space is not in the 94 set
    strict = Charset.preset("94", unknown="reject")
    assert strict.normalize("a b") is None


def test_custom_file_with_space_regex_symbols_and_unicode(tmp_path):
    f = tmp_path / "cs.txt"
    f.write_text("a\n \n.\n*\n[\né\n", encoding="utf-8")
    cs = Charset.from_file(f)
    assert cs.normalize("a.* [é]x") == "a.* [é"
    assert cs.encode(" ") == [2]
    official = tmp_path / "official.txt"
    official.write_text("0\tq\n1\tw", encoding="utf-8")
    assert Charset.from_file(official).symbols == ("q", "w")


def test_dict_roundtrip_and_describe():
    cs = Charset.preset("36", max_length=10)
    again = Charset.from_dict(cs.to_dict())
    assert again == cs and again.max_length == 10
    assert "lower-cased" in cs.describe() and "removed" in cs.describe()


@pytest.mark.parametrize(
    "kwargs",
    [dict(symbols=("a", "a")), dict(symbols=("ab",)), dict(symbols=("A",), case_sensitive=False), dict(symbols=())],
)
def test_bad_charsets_are_errors(kwargs):
    with pytest.raises(SemimtrError):
        Charset(**kwargs)


def test_unknown_preset_and_missing_file():
    with pytest.raises(SemimtrError, match="unknown charset preset"):
        Charset.preset("nope")
    with pytest.raises(SemimtrError, match="not found"):
        Charset.from_spec("/no/such/charset.txt")
