"""Read and write the field's standard scene-text LMDB layout.

Layout (as written by clovaai's ``create_lmdb_dataset.py`` and read by ABINet/SemiMTR/PARSeq):
a folder with ``data.mdb`` (+ ``lock.mdb``); ASCII keys ``num-samples`` -> decimal count,
``image-%09d`` -> the original encoded image bytes, ``label-%09d`` -> UTF-8 label, indices
1-based. Unlabeled samples have no label key, or a legacy marker label that normalises to
``unlabeleddata`` (SemiMTR writes ``unlabeleddata``, STR-Fewer-Labels ``[Unlabeled_data]``).

Writers build into a temporary folder beside the target and rename it into place at the end,
so an interrupted build never leaves a half database under the target name. Readers open
read-only and lock-free, lazily and once per process (safe with DataLoader workers and fork).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import lmdb

from semimtr_cli.core.errors import SemimtrError, option
from semimtr_cli.core.fsutil import replace_dir, temp_dir_beside

NUM_SAMPLES_KEY = b"num-samples"
UNLABELED_MARKER = "unlabeleddata"
_MARKER_STRIP = re.compile(r"[^a-z0-9]")


def image_key(index: int) -> bytes:
    """Key of the 1-based ``index``-th image."""
    return b"image-%09d" % index


def key_index(key: str | bytes) -> int:
    """The 1-based index of an ``image-NNNNNNNNN`` key (as ``eval --errors`` and pseudo-label rows
    name crops): the inverse of :func:`image_key`. Raises ValueError for another shape."""
    text = key.decode() if isinstance(key, bytes) else key
    prefix, _, number = text.rpartition("-")
    if prefix != "image" or not number.isdigit():
        raise ValueError(f"not an LMDB image key: {text!r}")
    return int(number)


def label_key(index: int) -> bytes:
    return b"label-%09d" % index


def is_unlabeled_marker(label: str) -> bool:
    """True for the legacy dummy labels of unlabeled LMDBs (``unlabeleddata``, ``[Unlabeled_data]``)."""
    return _MARKER_STRIP.sub("", label.lower()) == UNLABELED_MARKER


def is_lmdb_dir(path: str | Path) -> bool:
    return (Path(path) / "data.mdb").is_file()


def find_lmdbs(root: str | Path) -> list[Path]:
    """Every LMDB folder at or below ``root`` (sorted), as the field's loaders do.

    Raises:
        SemimtrError: if ``root`` does not exist or holds no LMDB.
    """
    root = Path(root)
    if not root.exists():
        raise SemimtrError(f"LMDB path not found: {root}")
    if is_lmdb_dir(root):
        return [root]
    if not root.is_dir():
        raise SemimtrError(f"{root} is neither an LMDB folder (with data.mdb) nor a folder of LMDBs")
    found = sorted({p.parent for p in root.rglob("data.mdb") if p.is_file()})
    if not found:
        raise SemimtrError(f"no LMDB (folder with data.mdb) found under {root}")
    return found


_ENVS: dict[tuple[int, str], lmdb.Environment] = {}


def _close_inherited_envs() -> None:
    """In a forked child (DataLoader worker): close the parent's environments.

    LMDB environments must not be used across fork, and py-lmdb refuses to open a path that
    is still open in the (copied) process, so the child drops them and opens its own.
    """
    for key, env in list(_ENVS.items()):
        if key[0] != os.getpid():
            try:
                env.close()
            except lmdb.Error:
                pass
            del _ENVS[key]


os.register_at_fork(after_in_child=_close_inherited_envs)


def _shared_env(path: Path) -> lmdb.Environment:
    """One read-only environment per (process, folder): py-lmdb refuses to open a folder twice."""
    key = (os.getpid(), str(path.resolve()))
    env = _ENVS.get(key)
    if env is None:
        try:
            env = lmdb.open(
                key[1], readonly=True, lock=False, readahead=False, meminit=False, max_readers=256, subdir=True
            )
        except lmdb.Error as exc:
            raise SemimtrError(f"{path}: cannot open LMDB ({exc})") from None
        _ENVS[key] = env
    return env


class LmdbReader:
    """Random access to one LMDB; index ``i`` (0-based) maps to key suffix ``i + 1``.

    The environment is opened on first access in each process and reopened after a fork,
    so one reader object can be handed to DataLoader workers.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not is_lmdb_dir(self.path):
            raise SemimtrError(f"not an LMDB folder (no data.mdb): {self.path}")
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None
        raw = self._get(NUM_SAMPLES_KEY)
        if raw is None:
            raise SemimtrError(f"{self.path}: no 'num-samples' key; not a scene-text LMDB")
        try:
            self._len = int(raw.decode("ascii").strip())
        except ValueError:
            raise SemimtrError(f"{self.path}: 'num-samples' is not an integer: {raw[:40]!r}") from None
        if self._len < 0:
            raise SemimtrError(f"{self.path}: negative 'num-samples' {self._len}")

    def _open(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            self._env = _shared_env(self.path)
            self._pid = os.getpid()
        return self._env

    def _get(self, key: bytes) -> bytes | None:
        with self._open().begin(write=False, buffers=False) as txn:
            return txn.get(key)

    def __len__(self) -> int:
        return self._len

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_env"] = None
        state["_pid"] = None
        return state

    def _check(self, index: int) -> int:
        if not 0 <= index < self._len:
            raise IndexError(f"{self.path}: index {index} out of range 0..{self._len - 1}")
        return index + 1

    def image_bytes(self, index: int) -> bytes:
        """Encoded image bytes of sample ``index`` (0-based)."""
        k = self._check(index)
        data = self._get(image_key(k))
        if data is None:
            raise SemimtrError(f"{self.path}: key {image_key(k).decode()} is missing")
        return data

    def _text(self, raw: bytes | None, k: int) -> str | None:
        """Decode the label bytes of 1-based sample ``k`` (None stays None)."""
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SemimtrError(f"{self.path}: label-{k:09d} is not valid UTF-8") from None

    def raw_label(self, index: int) -> str | None:
        """The stored label text exactly as written (None when there is no label key)."""
        k = self._check(index)
        return self._text(self._get(label_key(k)), k)

    def label(self, index: int) -> str | None:
        """The label, or None for an unlabeled sample (no key, or the legacy marker)."""
        text = self.raw_label(index)
        if text is None or is_unlabeled_marker(text):
            return None
        return text

    def raw_labels(self):
        """Every stored label text in index order (None where there is no label key), one transaction."""
        with self._open().begin(write=False, buffers=False) as txn:
            for k in range(1, self._len + 1):
                yield self._text(txn.get(label_key(k)), k)

    def sample(self, index: int) -> tuple[bytes, str | None]:
        """(image bytes, label or None) in one transaction."""
        k = self._check(index)
        with self._open().begin(write=False, buffers=False) as txn:
            data = txn.get(image_key(k))
            raw = txn.get(label_key(k))
        if data is None:
            raise SemimtrError(f"{self.path}: key {image_key(k).decode()} is missing")
        label = self._text(raw, k)
        return data, None if label is None or is_unlabeled_marker(label) else label


class LmdbWriter:
    """Builds an LMDB in a temporary folder beside ``out``; :meth:`finish` renames it into place.

    Use as a context manager: leaving the block with an exception removes the temporary folder
    and leaves any existing LMDB at ``out`` untouched. The memory map starts small and doubles
    whenever it fills, so no fixed huge map size is needed.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        overwrite: bool = False,
        commit_every: int = 1000,
        initial_map_size: int = 64 << 20,
    ):
        self.out = Path(out)
        check_writable_target(self.out, overwrite)
        self.overwrite = overwrite
        self.commit_every = max(1, commit_every)
        self._tmp = temp_dir_beside(self.out)
        self._map_size = initial_map_size
        self._env = lmdb.open(str(self._tmp), map_size=self._map_size, subdir=True, meminit=False, map_async=True)
        self._pending: list[tuple[bytes, bytes]] = []
        self.count = 0
        self._done = False

    def add(self, image: bytes, label: str | None) -> int:
        """Append one sample (label None = unlabeled: no label key). Returns its 1-based index."""
        self.count += 1
        self._pending.append((image_key(self.count), image))
        if label is not None:
            self._pending.append((label_key(self.count), label.encode("utf-8")))
        if self.count % self.commit_every == 0:
            self._flush()
        return self.count

    def _flush(self, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        items = self._pending + (extra or [])
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for k, v in items:
                        txn.put(k, v)
                break
            except lmdb.MapFullError:
                self._map_size *= 2
                self._env.set_mapsize(self._map_size)
        self._pending = []

    def finish(self) -> Path:
        """Write ``num-samples``, sync, and move the database to ``out``. Returns ``out``."""
        self._flush([(NUM_SAMPLES_KEY, str(self.count).encode("ascii"))])
        self._env.sync(True)
        self._env.close()
        if self.out.exists():
            _ENVS.pop((os.getpid(), str(self.out.resolve())), None)
        replace_dir(self._tmp, self.out)
        self._done = True
        return self.out

    def abort(self) -> None:
        """Drop the temporary database; the target is untouched."""
        if not self._done:
            try:
                self._env.close()
            finally:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._done = True

    def __enter__(self) -> "LmdbWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.finish()


def check_writable_target(out: Path, overwrite: bool) -> None:
    """Refuse to clobber an existing LMDB without ``overwrite``, or a non-LMDB folder ever."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise SemimtrError(f"output {out} exists and is not a folder")
    if is_lmdb_dir(out):
        if not overwrite:
            raise SemimtrError(f"output {out} already holds an LMDB; pass {option('overwrite')} to replace it")
        return
    if any(out.iterdir()):
        raise SemimtrError(f"output {out} is a non-empty folder that is not an LMDB; refusing to replace it")


def write_lmdb(out: str | Path, samples, *, overwrite: bool = False) -> int:
    """Write an iterable of ``(image_bytes, label_or_None)`` to ``out`` atomically. Returns the count."""
    with LmdbWriter(out, overwrite=overwrite) as writer:
        for image, label in samples:
            writer.add(image, label)
    return writer.count
