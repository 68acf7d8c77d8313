"""Registry of the standard word-recognition benchmarks and resolution of ``--bench`` items.

A benchmark is found under a data root whatever layout the download uses: every LMDB folder
at or below the root (PARSeq's ``test/``, ABINet's ``evaluation/``, SemiMTR's
``evaluation/benchmark`` and ``evaluation/addition``, or a flat folder) is matched by its folder
name, compared case-insensitively with separators removed: ``IIIT5k``, ``IIIT5K_3000``,
``ic13_1015``, ``CUTE80`` ... A trailing number names the subset (``IC13_857``); a folder
without one is matched to a subset by its ``num-samples`` when that is a known size.

A *protocol* fixes which subset of each benchmark is scored:

* ``paper`` (default; aliases ``semimtr``, ``full``): IIIT5k 3000, SVT 647, IC13 1015,
  IC15 2077, SVTP 645, CUTE 288 -- SemiMTR's tables and PARSeq's ``benchmark``;
* ``abinet`` (alias ``sub``): IC13 857, IC15 1811 (ABINet's tables, PARSeq's ``benchmark_sub``);
* single overrides in the ``--bench`` list: ``IC13_857`` or ``IC13=857``.

``--bench`` items that are paths are custom sets: an LMDB folder (one set), a folder of
LMDBs (one set per LMDB), a folder holding a label file (``labels.tsv``, ``gt.txt`` ...), or
a label file itself (paths relative to its folder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from semimtr_cli.core.errors import SemimtrError, UsageError, option
from semimtr_cli.data.lmdb.io import LmdbReader, find_lmdbs, is_lmdb_dir


@dataclass(frozen=True)
class Benchmark:
    """One standard benchmark: canonical name, folder-name aliases, known subset sizes."""

    name: str
    aliases: tuple[str, ...]
    subsets: tuple[int, ...]
    group: str = "benchmark"


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("IIIT5k", ("iiit5k", "iiit", "iiit5kwords"), (3000,)),
    Benchmark("SVT", ("svt",), (647,)),
    Benchmark("IC13", ("ic13", "icdar2013"), (857, 1015, 1095)),
    Benchmark("IC15", ("ic15", "icdar2015"), (1811, 2077)),
    Benchmark("SVTP", ("svtp", "svtperspective"), (645,)),
    Benchmark("CUTE", ("cute80", "cute", "ct80"), (288,)),
    Benchmark("IC03", ("ic03", "icdar2003"), (860, 867, 1110), group="extra"),
    Benchmark("COCO", ("cocov14", "coco", "cocotext"), (), group="addition"),
    Benchmark("RCTW17", ("rctw17", "rctw"), (), group="addition"),
    Benchmark("Uber", ("uber", "ubertext"), (), group="addition"),
    Benchmark("ArT", ("art",), (), group="addition"),
    Benchmark("LSVT", ("lsvt",), (), group="addition"),
    Benchmark("MLT19", ("mlt19", "mlt"), (), group="addition"),
    Benchmark("ReCTS", ("rects",), (), group="addition"),
)
BY_NAME = {b.name.lower(): b for b in BENCHMARKS}

# protocol name -> {benchmark: subset}; benchmarks not listed take their only/None subset
PROTOCOLS: dict[str, dict[str, int]] = {
    "paper": {"IIIT5k": 3000, "SVT": 647, "IC13": 1015, "IC15": 2077, "SVTP": 645, "CUTE": 288},
    "abinet": {"IIIT5k": 3000, "SVT": 647, "IC13": 857, "IC15": 1811, "SVTP": 645, "CUTE": 288},
}
PROTOCOL_ALIASES = {"paper": "paper", "semimtr": "paper", "full": "paper", "parseq": "paper",
                    "abinet": "abinet", "sub": "abinet"}
GROUPS = {
    "benchmark": [b.name for b in BENCHMARKS if b.group == "benchmark"],
    "addition": [b.name for b in BENCHMARKS if b.group == "addition"],
}
DEFAULT_BENCH = ",".join(GROUPS["benchmark"])

_SEPARATORS = re.compile(r"[^a-z0-9]")


def squash(name: str) -> str:
    """Folder/benchmark name compared case-insensitively without separators."""
    return _SEPARATORS.sub("", name.lower())


def match_folder(folder_name: str) -> tuple[Benchmark, int | None] | None:
    """(benchmark, subset or None) that a folder name denotes, or None.

    ``IC13_857`` -> (IC13, 857); ``CUTE80`` -> (CUTE, None); ``IIIT5K_3000`` -> (IIIT5k, 3000).
    """
    s = squash(folder_name)
    best = None
    for bench in BENCHMARKS:
        for alias in bench.aliases:
            if s.startswith(alias):
                rest = s[len(alias):]
                if rest == "" or rest.isdigit():
                    if best is None or len(alias) > best[2]:
                        best = (bench, int(rest) if rest else None, len(alias))
    return None if best is None else (best[0], best[1])


def resolve_protocol(name: str) -> str:
    key = name.strip().lower()
    if key not in PROTOCOL_ALIASES:
        raise UsageError(f"unknown {option('protocol')} {name!r}; choose one of {', '.join(sorted(PROTOCOL_ALIASES))}")
    return PROTOCOL_ALIASES[key]


@dataclass
class EvalSet:
    """One set to score.

    kind ``lmdb``: ``path`` is the LMDB folder. kind ``folder``: ``path`` is the label file and
    ``records`` lists its (image file or None, raw label or None, key, problem) entries; the key
    is ``line <n>: <path as written>``. ``num_samples`` is the
    LMDB's ``num-samples`` (or label-file entries), skipped samples included.
    """

    name: str
    path: Path
    kind: str
    num_samples: int
    benchmark: str | None = None
    subset: int | None = None
    records: list[tuple[str | None, str | None, str, str]] = field(default_factory=list)


@dataclass
class Candidate:
    path: Path
    bench: Benchmark
    subset: int | None
    num_samples: int

    def describe(self, root: Path) -> str:
        try:
            rel = self.path.relative_to(root)
        except ValueError:
            rel = self.path
        return f"{rel} ({self.bench.name}{'' if self.subset is None else '_' + str(self.subset)}, {self.num_samples} samples)"


def scan_root(root: str | Path) -> tuple[list[Candidate], list[Path]]:
    """Every LMDB under ``root``: (benchmark candidates, LMDBs whose name matched nothing)."""
    root = Path(root)
    if not root.is_dir():
        raise SemimtrError(f"{option('data')} {root}: not a folder")
    try:
        lmdbs = find_lmdbs(root)
    except SemimtrError:
        lmdbs = []
    cands, unknown = [], []
    for p in lmdbs:
        m = match_folder(p.name)
        if m is None:
            unknown.append(p)
            continue
        bench, subset = m
        n = len(LmdbReader(p))
        cands.append(Candidate(p, bench, subset, n))
    return cands, unknown


def _pick(cands: list[Candidate], bench: Benchmark, wanted: int | None) -> Candidate | None:
    """The LMDB of ``bench`` for subset ``wanted`` (None = any single copy), shallowest first.

    Order of preference: a folder named with the subset (``IC13_1015``); a bare folder
    (``IC13``) whose num-samples is the subset size; for benchmarks with one usual subset, or
    when no folder names a subset and the size is not another known subset, a bare folder.
    """
    mine = [c for c in cands if c.bench is bench]
    if wanted is None:
        found = mine
    else:
        found = [c for c in mine if c.subset == wanted]
        found = found or [c for c in mine if c.subset is None and c.num_samples == wanted]
        if not found:
            other_sizes = set(bench.subsets) - {wanted}
            found = [c for c in mine if c.subset is None and c.num_samples not in other_sizes]
    if not found:
        return None
    found.sort(key=lambda c: (len(c.path.parts), str(c.path)))
    best = found[0]
    same_depth = [c for c in found if len(c.path.parts) == len(best.path.parts)]
    if len(same_depth) > 1:
        listing = ", ".join(str(c.path) for c in same_depth)
        raise SemimtrError(f"{bench.name}: several matching LMDBs at the same depth ({listing}); "
                           f"pass the one to use as a path in {option('bench')}")
    return best


def custom_sets(item: str) -> list[EvalSet]:
    """EvalSets of a path given in ``--bench`` (LMDB, folder of LMDBs, folder with labels, label file)."""
    from semimtr_cli.data.lmdb.sources import SourceOptions, find_folder_label_file, records_from_label_file

    p = Path(item)
    if not p.exists():
        raise SemimtrError(f"{option('bench')} {item}: no such file or folder")
    label_file = None
    if p.is_file():
        label_file = p
    elif is_lmdb_dir(p):
        return [EvalSet(p.name, p, "lmdb", len(LmdbReader(p)))]
    else:
        label_file = find_folder_label_file(p)
        if label_file is None:
            lmdbs = find_lmdbs(p)  # raises when none
            return [EvalSet(x.name, x, "lmdb", len(LmdbReader(x))) for x in lmdbs]
    records = []
    for r in records_from_label_file(label_file, SourceOptions()):
        key = r.path if r.line is None else f"line {r.line}: {r.path}"
        problem = r.detail or r.reason or ""
        records.append((r.file if r.reason is None else None, r.label, key, problem))
    name = label_file.parent.name if label_file.parent.name else label_file.stem
    return [EvalSet(name, label_file, "folder", len(records), records=records)]


def _looks_like_path(item: str) -> bool:
    return "/" in item or "\\" in item or item.startswith(".") or Path(item).exists()


def resolve_sets(bench: str, data: str | Path | None, protocol: str = "paper") -> tuple[list[EvalSet], dict[str, int | None]]:
    """Resolve a ``--bench`` list into EvalSets (in the order given).

    Items: benchmark names (any alias), ``NAME_SUBSET``/``NAME=SUBSET`` overrides, the groups
    ``benchmark``/``addition``, or paths (custom sets). Returns the sets and the subset chosen
    for each named benchmark.

    Raises:
        SemimtrError: a named set not found, listing where it looked and which LMDBs it found.
    """
    proto = PROTOCOLS[resolve_protocol(protocol)]
    items = [x.strip() for x in bench.split(",") if x.strip()]
    if not items:
        raise UsageError(f"{option('bench')} is empty")
    named: list[tuple[Benchmark, int | None]] = []
    order: list[object] = []
    for item in items:
        if item.lower() in GROUPS:
            for name in GROUPS[item.lower()]:
                named.append((BY_NAME[name.lower()], None))
                order.append(("named", len(named) - 1))
            continue
        if _looks_like_path(item):
            order.append(("custom", item))
            continue
        hit = match_folder(item)
        if hit is None:
            known = ", ".join(b.name for b in BENCHMARKS)
            raise UsageError(f"{option('bench')} {item!r}: not a known benchmark ({known}), group (benchmark, addition) or existing path")
        named.append(hit)
        order.append(("named", len(named) - 1))

    chosen: dict[str, int | None] = {}
    sets: list[EvalSet] = []
    cands: list[Candidate] = []
    unknown: list[Path] = []
    if named:
        if data is None:
            raise UsageError(f"{option('data')} ROOT is needed to find named benchmarks (or pass LMDB paths in {option('bench')})")
        cands, unknown = scan_root(data)
    root = Path(data) if data is not None else Path(".")
    missing = []
    for kind, ref in order:
        if kind == "custom":
            sets.extend(custom_sets(ref))
            continue
        bench_obj, subset = named[ref]
        wanted = subset if subset is not None else proto.get(bench_obj.name)
        cand = _pick(cands, bench_obj, wanted)
        if cand is None:
            label = bench_obj.name + ("" if wanted is None else f" ({wanted} images)")
            missing.append(label)
            continue
        got = cand.subset if cand.subset is not None else (
            cand.num_samples if cand.num_samples in bench_obj.subsets else None)
        chosen[bench_obj.name] = got
        multi = len(bench_obj.subsets) > 1 and got is not None
        set_name = f"{bench_obj.name}_{got}" if multi else bench_obj.name
        sets.append(EvalSet(set_name, cand.path, "lmdb", cand.num_samples, bench_obj.name, got))
    if missing:
        found = [c.describe(root) for c in sorted(cands, key=lambda c: str(c.path))]
        found += [f"{_rel(p, root)} (unrecognised name)" for p in unknown]
        what = "; found: " + ", ".join(found) if found else "; found no LMDB (folder with data.mdb) there"
        raise SemimtrError(
            f"benchmark set(s) not found: {', '.join(missing)} (protocol {resolve_protocol(protocol)}); "
            f"looked for LMDB folders named after them anywhere under {root}{what}"
        )
    names = [s.name for s in sets]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        for s in sets:
            if s.name in dupes:
                s.name = f"{s.name}:{s.path.parent.name}/{s.path.name}" if s.kind == "lmdb" else f"{s.name}:{s.path}"
    return sets, chosen


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)
