"""Finding image files on disk (shared by build-lmdb, show-aug, read and eval)."""

from __future__ import annotations

from pathlib import Path

from semimtr_cli.core.errors import SemimtrError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"})


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursively), sorted by path; ``root`` may be one file.

    Hidden files and folders (name starting with '.') are skipped.

    Raises:
        SemimtrError: if ``root`` does not exist.
    """
    root = Path(root)
    if not root.exists():
        raise SemimtrError(f"path not found: {root}")
    if root.is_file():
        return [root]
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue
        if p.is_file() and is_image_file(p):
            out.append(p)
    return sorted(out)
