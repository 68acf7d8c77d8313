"""The standard LMDB layout: reading what the field's tools wrote, atomic writes, finding LMDBs."""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lmdb
import pytest
from PIL import Image

from semimtr_cli.core.errors import SemimtrError, as_flag
from semimtr_cli.data.lmdb.io import LmdbReader, LmdbWriter, find_lmdbs, image_key, is_unlabeled_marker, key_index, write_lmdb


def _png(colour=(200, 30, 30), size=(20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def _write_clovaai_style(out: Path, samples: list[tuple[bytes, str]]) -> None:
    """An LMDB laid out as clovaai's create_lmdb_dataset.py lays it out (1-based keys, cache flushes)."""
    env = lmdb.open(str(out), map_size=int(1e9))
    cache: dict = {}
    count = 1
    for data, label in samples:
        cache[("image-%09d" % count).encode()] = data
        cache[("label-%09d" % count).encode()] = label.encode()
        if count % 2 == 0:  # the script flushes its cache every 1000; small here to exercise it
            with env.begin(write=True) as txn:
                for k, v in cache.items():
                    txn.put(k, v)
            cache = {}
        count += 1
    cache["num-samples".encode()] = str(count - 1).encode()
    with env.begin(write=True) as txn:
        for k, v in cache.items():
            txn.put(k, v)
    env.close()


def test_reads_clovaai_layout_with_legacy_unlabeled_markers(tmp_path):
    imgs = [_png((i * 40, 0, 0)) for i in range(5)]
    labels = ["Hello", "unlabeleddata", "[Unlabeled_data]", "Straße 42!", " x "]
    _write_clovaai_style(tmp_path / "db", list(zip(imgs, labels)))
    r = LmdbReader(tmp_path / "db")
    assert len(r) == 5
    assert [r.image_bytes(i) for i in range(5)] == imgs
    assert [r.label(i) for i in range(5)] == ["Hello", None, None, "Straße 42!", " x "]
    assert r.raw_label(2) == "[Unlabeled_data]"
    assert r.sample(3) == (imgs[3], "Straße 42!")
    assert r.sample(1) == (imgs[1], None)
    with pytest.raises(IndexError):
        r.image_bytes(5)
    r2 = pickle.loads(pickle.dumps(r))  # DataLoader workers get a copy that reopens lazily
    assert r2.label(0) == "Hello"


def test_unlabeled_marker():
    assert is_unlabeled_marker("unlabeleddata") and is_unlabeled_marker("[Unlabeled_data]")
    assert not is_unlabeled_marker("unlabeled")


def test_writer_unlabeled_has_no_label_key_and_map_grows(tmp_path):
    big = os.urandom(300_000)
    with LmdbWriter(tmp_path / "db", initial_map_size=1 << 20, commit_every=3) as w:
        for i in range(8):
            w.add(big, None if i % 2 else f"w{i}")
    r = LmdbReader(tmp_path / "db")
    assert len(r) == 8 and r.image_bytes(7) == big
    assert r.raw_label(1) is None  # no label key at all for unlabeled samples
    assert r.raw_label(0) == "w0"
    assert r._get(b"num-samples") == b"8"


def test_exception_mid_build_keeps_previous_lmdb(tmp_path):
    out = tmp_path / "db"
    write_lmdb(out, [(_png(), "old")])
    with pytest.raises(RuntimeError):
        with LmdbWriter(out, overwrite=True, commit_every=1) as w:
            w.add(_png(), "new")
            w.add(_png(), "new")
            raise RuntimeError("boom")
    r = LmdbReader(out)
    assert len(r) == 1 and r.label(0) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]


def test_refuses_existing_lmdb_without_overwrite(tmp_path):
    out = tmp_path / "db"
    write_lmdb(out, [(_png(), "old")])
    with pytest.raises(SemimtrError, match="pass overwrite to replace") as err:
        write_lmdb(out, [(_png(), "new")])
    assert "pass --overwrite to replace it" in err.value.render(as_flag)
    write_lmdb(out, [(_png(), "new"), (_png(), "two")], overwrite=True)
    assert LmdbReader(out).label(1) == "two"


def test_find_lmdbs_nested(tmp_path):
    for rel in ("a", "b/c", "b/d/e"):
        write_lmdb(tmp_path / rel, [(_png(), rel)])
    (tmp_path / "b" / "empty").mkdir()
    assert find_lmdbs(tmp_path) == [tmp_path / "a", tmp_path / "b/c", tmp_path / "b/d/e"]
    assert find_lmdbs(tmp_path / "a") == [tmp_path / "a"]
    with pytest.raises(SemimtrError, match="no LMDB"):
        find_lmdbs(tmp_path / "b" / "empty")
    with pytest.raises(SemimtrError, match="not found"):
        find_lmdbs(tmp_path / "missing")


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from semimtr_cli.data.lmdb.io import LmdbWriter
    out, marker = Path(sys.argv[1]), Path(sys.argv[2])
    with LmdbWriter(out, overwrite=True, commit_every=1) as w:
        for i in range(1000):
            w.add(b"x" * 1000, "new")
            if i == 5:
                marker.write_text("started")
            if i > 5:
                time.sleep(0.01)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_mid_build_keeps_previous_lmdb(tmp_path):
    out = tmp_path / "db"
    write_lmdb(out, [(_png(), "old")])
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(out), str(marker)])
    try:
        deadline = time.time() + 30
        while not marker.exists():
            assert proc.poll() is None, "writer exited before it was killed"
            assert time.time() < deadline, "writer never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    r = LmdbReader(out)
    assert len(r) == 1 and r.label(0) == "old"
    # the half-built database lives only under a hidden temporary name beside the target
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("db", "started")]
    assert all(name.startswith(".db.building-") for name in leftovers)


def test_key_index_inverts_image_key_and_refuses_other_keys():
    for index in (1, 42, 999_999_999):
        assert key_index(image_key(index)) == key_index(image_key(index).decode()) == index
    for bad in ("label-000000001", "image-", "image-12a", "num-samples"):
        with pytest.raises(ValueError, match="not an LMDB image key"):
            key_index(bad)
