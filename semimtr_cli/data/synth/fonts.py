"""Fonts for the synthetic word renderer: bundled font sets, font folders, the system's fonts,
glyph coverage.

Without a font folder the renderer uses matplotlib's bundled TrueType fonts, grouped into the
``sans``, ``serif`` and ``mono`` sets (:data:`BUNDLED_FONT_SETS`). ``--fonts system`` reads the
operating system's font folders (:data:`SYSTEM_FONT_DIRS`; ``scripts/install_training_fonts.sh``
fills them with the Debian font packages the shipped model's crops were drawn with).
:func:`screen_fonts` keeps the fonts that can write words and says why the others were skipped;
:func:`font_covers` says which characters a font really draws (TeX's Computer Modern fonts only
for :data:`_OT1_SAFE`); :func:`font_manifest` names and hashes the files a run used.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from semimtr_cli.core.errors import SemimtrError, UsageError, option

FONT_EXTENSIONS = (".ttf", ".otf", ".ttc")

# matplotlib's bundled fonts that draw ordinary text (symbol-only fonts such as cmex10, cmsy10,
# cmmi10, STIXSiz*, STIXNonUni*, DejaVu*Display and LastResortHE are left out).
BUNDLED_FONT_SETS: dict[str, tuple[str, ...]] = {
    "sans": (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSans-Oblique.ttf",
        "DejaVuSans-BoldOblique.ttf",
        "cmss10.ttf",
    ),
    "serif": (
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
        "DejaVuSerif-Italic.ttf",
        "DejaVuSerif-BoldItalic.ttf",
        "STIXGeneral.ttf",
        "STIXGeneralBol.ttf",
        "STIXGeneralItalic.ttf",
        "STIXGeneralBolIta.ttf",
        "cmr10.ttf",
        "cmb10.ttf",
        "cmti10.ttf",
    ),
    "mono": (
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSansMono-Oblique.ttf",
        "DejaVuSansMono-BoldOblique.ttf",
        "cmtt10.ttf",
    ),
}
FONT_SET_PRESETS = ("sans", "serif", "mono", "all")
DEFAULT_FONT_SET = {"clean": "sans", "wild": "serif,mono", "dotmatrix": "sans,mono"}

# The Computer Modern TTFs use TeX's OT1 layout: letters and digits sit at their ASCII codes but
# several punctuation codes hold other glyphs ('<' is an inverted '!', '"' a closing quote...).
# Only these characters are trusted to look like their label in those fonts.
_OT1_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#%&'()*+,-./:;=?@[]")
# Characters every usable font must draw at least one of (fonts drawing none are dropped).
PROBE = "abcdefghijklmnopqrstuvwxyz0123456789"


SYSTEM = "system"  # the --fonts value that means the operating system's font folders
SYSTEM_FONT_DIRS = (
    "/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",  # Linux
    "/System/Library/Fonts", "/Library/Fonts", "~/Library/Fonts",  # macOS
    "%WINDIR%/Fonts", "%LOCALAPPDATA%/Microsoft/Windows/Fonts",  # Windows
)
# Fonts whose letters are pictures, not letters: their cmap maps a-z to symbols, so coverage alone
# cannot tell. Matched against the file name.
SYMBOL_FONT = re.compile(r"symbol|dingbat|wingding|webding|emoji|icon|awesome|math|braille|barcode|music|"
                         r"ornament|D050000L|cursor|cmex|cmsy|STIXSiz|STIXNonUni|LastResort", re.IGNORECASE)


def system_font_dirs() -> list[Path]:
    """The system font folders that exist on this machine."""
    found = []
    for raw in SYSTEM_FONT_DIRS:
        if raw.startswith("%") and not sys.platform.startswith("win"):
            continue
        path = Path(os.path.expanduser(os.path.expandvars(raw)))
        if path.is_dir():
            found.append(path)
    return found


def bundled_font_dir() -> Path:
    """matplotlib's folder of bundled TrueType fonts (DejaVu, STIX, Computer Modern)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def list_font_files(root: str | Path) -> list[Path]:
    """TTF/OTF/TTC files under ``root`` (recursively, sorted; hidden entries skipped).

    Raises:
        SemimtrError: if ``root`` is missing or holds no font file.
    """
    root = Path(root)
    if not root.exists():
        raise SemimtrError(f"font folder not found: {root}")
    if root.is_file():
        found = [root] if root.suffix.lower() in FONT_EXTENSIONS else []
    else:
        found = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in FONT_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    if not found:
        raise SemimtrError(f"no font files (.ttf/.otf/.ttc) found in {root}")
    return found


def _select(pool: dict[str, Path], spec: str, *, allow_presets: bool) -> list[Path]:
    chosen: dict[str, Path] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item == "all":
            chosen.update(pool)
        elif item in BUNDLED_FONT_SETS:
            if not allow_presets:
                raise UsageError(
                    f"font set '{item}' names matplotlib's bundled fonts; with {option('fonts')} use 'all' "
                    "or a comma list of font file names"
                )
            chosen.update({name: pool[name] for name in BUNDLED_FONT_SETS[item] if name in pool})
        else:
            matches = {n: p for n, p in pool.items() if item in (n, Path(n).stem)}
            if not matches:
                raise UsageError(
                    f"unknown font or font set '{item}' (presets: {', '.join(FONT_SET_PRESETS)}; "
                    f"fonts: {', '.join(sorted(pool)[:12])}{' ...' if len(pool) > 12 else ''})"
                )
            chosen.update(matches)
    if not chosen:
        raise UsageError(f"font set '{spec}' selects no font")
    return [chosen[name] for name in sorted(chosen)]


def resolve_fonts(fonts_dir: str | Path | None = None, font_set: str | None = None, style: str = "clean") -> list[Path]:
    """Font files to render with.

    Without ``fonts_dir``: matplotlib's bundled fonts, filtered by ``font_set`` - a preset
    (``sans``, ``serif``, ``mono``, ``all``), a font file name/stem, or a comma list of these
    (e.g. ``serif,DejaVuSansMono``). Default: ``sans`` for ``clean``, ``serif,mono`` for ``wild``.
    With ``fonts_dir``: every font file under it, or under the system font folders for ``system``
    (``font_set`` may name some of them).
    """
    if fonts_dir is not None:
        system = str(fonts_dir) == SYSTEM
        files = system_font_files() if system else list_font_files(fonts_dir)
        if not font_set or font_set == "all":
            return files
        pool = {p.name: p for p in files}
        if not system and Path(fonts_dir).is_dir():
            pool.update({str(p.relative_to(fonts_dir)): p for p in files})
        return sorted(set(_select(pool, font_set, allow_presets=False)))
    folder = bundled_font_dir()
    names = sorted({n for names in BUNDLED_FONT_SETS.values() for n in names})
    pool = {n: folder / n for n in names if (folder / n).is_file()}
    if not pool:
        raise SemimtrError(f"matplotlib's bundled fonts are missing from {folder}; pass {option('fonts')} DIR")
    return _select(pool, font_set or DEFAULT_FONT_SET.get(style, "sans"), allow_presets=True)


def system_font_files() -> list[Path]:
    """Every font file in the system font folders; SemimtrError when there is none."""
    dirs = system_font_dirs()
    if not dirs:
        raise SemimtrError(f"no system font folder exists (looked in {', '.join(SYSTEM_FONT_DIRS)}); "
                           "pass a folder of .ttf/.otf files")
    files = sorted({p for d in dirs for p in d.rglob("*") if p.is_file() and p.suffix.lower() in FONT_EXTENSIONS})
    if not files:
        raise SemimtrError(f"the system font folders ({', '.join(map(str, dirs))}) hold no .ttf/.otf/.ttc file; "
                           "scripts/install_training_fonts.sh installs a training set on Debian/Ubuntu")
    return files


def screen_fonts(paths, letters: str = "abcdefghijklmnopqrstuvwxyz") -> tuple[list[str], dict[str, str]]:
    """(fonts that can write words, {skipped file: why}).

    Skipped: files FreeType cannot load, symbol fonts (by name, :data:`SYMBOL_FONT`), fonts that
    do not draw every letter of ``letters`` in lower or upper case, and exact copies of a font
    already kept (same bytes under another path).
    """
    kept, skipped, seen = [], {}, set()
    for path in map(str, paths):
        name = os.path.basename(path)
        if SYMBOL_FONT.search(name):
            skipped[path] = "a symbol font (by its name)"
            continue
        try:
            covered = font_covers(path, set(letters + letters.upper()))
        except SemimtrError:
            skipped[path] = "cannot be loaded"
            continue
        missing = [c for c in letters if c not in covered and c.upper() not in covered]
        if missing:
            skipped[path] = f"draws no {''.join(missing[:8])}{'...' if len(missing) > 8 else ''}"
            continue
        digest = file_digest(path)
        if digest in seen:
            skipped[path] = "a copy of a font already kept"
            continue
        seen.add(digest)
        kept.append(path)
    return kept, skipped


@lru_cache(maxsize=None)
def file_digest(path: str) -> str:
    """The first 16 hex digits of the file's SHA-256 (names the exact font file in run metadata)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def font_manifest(paths) -> list[dict]:
    """[{"file": name, "sha256": first 16 hex digits}] of ``paths``: which font files a run drew with."""
    return [{"file": os.path.basename(str(p)), "sha256": file_digest(str(p))} for p in paths]


@lru_cache(maxsize=None)
def _glyph_index_lookup(path: str):
    from matplotlib.ft2font import FT2Font

    try:
        return FT2Font(path)
    except Exception as exc:  # FreeType raises RuntimeError / ValueError / OSError
        raise SemimtrError(f"{path}: cannot load font ({exc})") from None


def font_covers(path: str | Path, chars: set[str]) -> set[str]:
    """The subset of ``chars`` that the font at ``path`` has glyphs for."""
    path = str(path)
    ft = _glyph_index_lookup(path)
    name = os.path.basename(path).lower()
    restricted = name.startswith("cm") and name.endswith("10.ttf")
    covered = set()
    for ch in chars:
        if ch == " ":
            covered.add(ch)
        elif (not restricted or ch in _OT1_SAFE) and ft.get_char_index(ord(ch)) != 0:
            covered.add(ch)
    return covered


@lru_cache(maxsize=4096)  # hundreds of system fonts x a few sizes: a miss reloads the file (~0.1 ms)
def load_font(path: str, size: int) -> tuple[ImageFont.FreeTypeFont, int, int]:
    """(font, top, bottom) with top/bottom the extent of 'Hg' relative to the baseline (pixels)."""
    try:
        font = ImageFont.truetype(path, size)
    except OSError as exc:
        raise SemimtrError(f"{path}: cannot load font ({exc})") from None
    _, top, _, bottom = font.getbbox("Hg", anchor="ls")
    return font, top, bottom
