"""Characters <-> class ids, with the label normalisation stated explicitly.

Class 0 is the null symbol (end of word / padding); symbol ``symbols[i]`` has class ``i + 1``.
A word of L characters occupies L slots followed by one null "stop" slot, so a model with
``max_length`` characters decodes ``max_length + 1`` slots (the paper: 25 + 1 = 26).

The paper's default (preset ``"36"``) reproduces the official ``charset_36.txt`` order exactly:
classes 1..26 = ``a``..``z``, 27..35 = ``1``..``9``, 36 = ``0`` (so official checkpoints map 1:1),
case-insensitive (labels lower-cased) and symbols outside the charset removed before the length
check, as the official dataset code does.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from semimtr_cli.core.errors import SemimtrError

NULL_ID = 0
NULL_DISPLAY = "\u2591"  # how the official code prints the null class

_OFFICIAL_36 = string.ascii_lowercase + "123456789" + "0"
# PARSeq's 94-symbol order: digits, lower, upper, punctuation (printable ASCII without space).
_PRINTABLE_94 = string.digits + string.ascii_lowercase + string.ascii_uppercase + string.punctuation
# ABINet's charset_62.txt order: digits, upper, lower.
_ALNUM_62 = string.digits + string.ascii_uppercase + string.ascii_lowercase

PRESETS: dict[str, tuple[str, bool]] = {
    # name: (symbols in class order, case_sensitive)
    "36": (_OFFICIAL_36, False),
    "62": (_ALNUM_62, True),
    "94": (_PRINTABLE_94, True),
}

UNKNOWN_POLICIES = ("remove", "reject")
UNICODE_FORMS = ("none", "NFC", "NFKC")


@dataclass(frozen=True)
class Charset:
    """An ordered symbol set plus the normalisation applied to every label.

    Attributes:
        symbols: symbols in class order (class id = index + 1).
        case_sensitive: if False, labels are lower-cased before anything else.
        max_length: longest word in characters (slots = max_length + 1).
        unknown: ``"remove"`` drops characters outside the set (official behaviour);
            ``"reject"`` makes the whole label invalid.
        unicode_form: Unicode normalisation applied first (``"none"``, ``"NFC"``, ``"NFKC"``).
        name: a short label for messages (preset name or file name).
    """

    symbols: tuple[str, ...]
    case_sensitive: bool = False
    max_length: int = 25
    unknown: str = "remove"
    unicode_form: str = "none"
    name: str = "custom"
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        symbols = tuple(self.symbols)
        object.__setattr__(self, "symbols", symbols)
        if not symbols:
            raise SemimtrError(f"charset '{self.name}' is empty")
        for s in symbols:
            if len(s) != 1:
                raise SemimtrError(f"charset '{self.name}': symbol {s!r} is not a single character")
        dupes = sorted({s for s in symbols if symbols.count(s) > 1})
        if dupes:
            raise SemimtrError(f"charset '{self.name}': duplicate symbols {dupes}")
        if self.unknown not in UNKNOWN_POLICIES:
            raise SemimtrError(f"charset unknown-symbol policy must be one of {UNKNOWN_POLICIES}, got {self.unknown!r}")
        if self.unicode_form not in UNICODE_FORMS:
            raise SemimtrError(f"charset unicode_form must be one of {UNICODE_FORMS}, got {self.unicode_form!r}")
        if self.max_length < 1:
            raise SemimtrError(f"charset max_length must be >= 1, got {self.max_length}")
        if not self.case_sensitive:
            changed = [s for s in symbols if s.lower() != s]
            if changed:
                raise SemimtrError(
                    f"charset '{self.name}' is case-insensitive but holds upper-case symbols {changed[:5]}; "
                    "use lower-case symbols or case_sensitive=True"
                )
        object.__setattr__(self, "_index", {s: i + 1 for i, s in enumerate(symbols)})

    # ------------------------------------------------------------------ construction
    @classmethod
    def preset(cls, name: str = "36", **overrides) -> "Charset":
        """One of the built-in sets: ``36`` (paper), ``62`` (ABINet case-sensitive), ``94``."""
        if name not in PRESETS:
            raise SemimtrError(f"unknown charset preset {name!r}; choose one of {sorted(PRESETS)} or give a file")
        symbols, case_sensitive = PRESETS[name]
        kwargs = dict(symbols=tuple(symbols), case_sensitive=case_sensitive, name=name)
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "Charset":
        """Read a charset file.

        Two layouts are accepted: the official ``<index>\\t<char>`` lines (index ignored, order
        kept), or one character per line. A line holding a single space is the space symbol;
        empty lines are skipped. Case sensitivity defaults to True unless every symbol is
        lower-case-stable and ``case_sensitive=False`` is passed.
        """
        p = Path(path)
        if not p.is_file():
            raise SemimtrError(f"charset file not found: {p}")
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SemimtrError(f"charset file {p} is not UTF-8: {exc}") from None
        symbols: list[str] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.rstrip("\r")
            if line == "":
                continue
            if "\t" in line:
                idx, _, sym = line.partition("\t")
                if not idx.strip().isdigit():
                    raise SemimtrError(f"{p}:{lineno}: expected '<index>\\t<char>', got {line!r}")
                line = sym
            if len(line) != 1:
                raise SemimtrError(f"{p}:{lineno}: expected one character per line, got {line!r}")
            symbols.append(line)
        kwargs = dict(symbols=tuple(symbols), case_sensitive=True, name=p.name)
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def from_spec(cls, spec: str | None, **overrides) -> "Charset":
        """A preset name (``36``/``62``/``94``) or a path to a charset file; None = ``36``."""
        if spec is None or spec in PRESETS:
            return cls.preset(spec or "36", **overrides)
        return cls.from_file(spec, **overrides)

    def to_dict(self) -> dict:
        """Plain data for checkpoints and JSON (round-trips through :meth:`from_dict`)."""
        return {
            "symbols": "".join(self.symbols),
            "case_sensitive": self.case_sensitive,
            "max_length": self.max_length,
            "unknown": self.unknown,
            "unicode_form": self.unicode_form,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Charset":
        d = dict(d)
        d["symbols"] = tuple(d["symbols"])
        return cls(**d)

    # ------------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        """Symbols + the null class."""
        return len(self.symbols) + 1

    @property
    def max_slots(self) -> int:
        """Decoding slots: max_length characters + 1 stop slot."""
        return self.max_length + 1

    def describe(self) -> str:
        """One line stating the normalisation, for printing at every command's start."""
        case = "case-sensitive" if self.case_sensitive else "lower-cased"
        unknown = "removed" if self.unknown == "remove" else "make the label invalid"
        uni = "" if self.unicode_form == "none" else f", Unicode {self.unicode_form}"
        return (
            f"charset {self.name} ({len(self.symbols)} symbols + null), labels {case}{uni}, "
            f"symbols outside the set {unknown}, words of 1..{self.max_length} characters kept"
        )

    # ------------------------------------------------------------------ text
    def normalize(self, text: str) -> str | None:
        """Apply the configured normalisation; None if the label becomes invalid.

        Invalid means: empty, longer than ``max_length``, or (policy ``reject``) holding a
        symbol outside the set. Characters are matched literally (no regex involved).
        """
        return self.normalize_with_reason(text)[0]

    def normalize_with_reason(self, text: str) -> tuple[str | None, str | None]:
        """(normalised label, None) or (None, why it is invalid)."""
        if self.unicode_form != "none":
            text = unicodedata.normalize(self.unicode_form, text)
        if not self.case_sensitive:
            text = text.lower()
        index = self._index
        if self.unknown == "remove":
            text = "".join(ch for ch in text if ch in index)
        elif any(ch not in index for ch in text):
            return None, "symbol outside the charset"
        if not text:
            return None, "empty after normalisation"
        if len(text) > self.max_length:
            return None, f"longer than {self.max_length} characters"
        return text, None

    def unknown_symbols(self, text: str) -> set[str]:
        """Characters of ``text`` (after case/Unicode normalisation) that the set lacks."""
        if self.unicode_form != "none":
            text = unicodedata.normalize(self.unicode_form, text)
        if not self.case_sensitive:
            text = text.lower()
        return {ch for ch in text if ch not in self._index}

    def encode(self, text: str) -> list[int]:
        """Class ids of an already-normalised word (no padding, no stop)."""
        try:
            return [self._index[ch] for ch in text]
        except KeyError as exc:
            raise SemimtrError(f"symbol {exc.args[0]!r} of {text!r} is not in charset '{self.name}'") from None

    def encode_padded(self, text: str) -> tuple[list[int], int]:
        """(ids padded with null to ``max_slots``, length including the stop slot)."""
        ids = self.encode(text)
        if len(ids) > self.max_length:
            raise SemimtrError(f"label {text!r} is longer than max_length {self.max_length}")
        return ids + [NULL_ID] * (self.max_slots - len(ids)), len(ids) + 1

    def decode(self, ids: Iterable[int]) -> str:
        """Text up to (excluding) the first null id."""
        out = []
        syms = self.symbols
        for i in ids:
            i = int(i)
            if i == NULL_ID:
                break
            out.append(syms[i - 1])
        return "".join(out)

    def symbol(self, class_id: int) -> str:
        """Printable form of one class (null shown as the official ``░``)."""
        return NULL_DISPLAY if class_id == NULL_ID else self.symbols[class_id - 1]


def default_charset() -> Charset:
    """The paper's charset: 36 lower-case letters and digits, max length 25."""
    return Charset.preset("36")

