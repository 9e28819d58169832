"""The bottom floor (basics/): atomic files, hashing, link-or-copy, the LMDB format, the Frechet
distance; and that it imports neither of the packages above it."""
from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import lmdb
import numpy as np
import pytest
from scipy import linalg

from basics import files, frechet, lmdb_format

BASICS = Path(__file__).resolve().parents[1] / "basics"


def test_basics_imports_neither_workflow_nor_models():
    for path in BASICS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("workflow", "models"), f"{path.name} imports {name}"


def test_atomic_output_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    files.atomic_write(target, b"old")
    with pytest.raises(RuntimeError):
        with files.atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]  # no temporary left
    files.write_json_atomic(target, {"a": 1}, sort_keys=True, fsync=True)
    assert target.read_text() == '{\n "a": 1\n}\n'


def test_sha256_file_matches_hashlib_across_blocks(tmp_path):
    data = os.urandom(files.CHUNK + 123)
    (tmp_path / "w").write_bytes(data)
    assert files.sha256_file(tmp_path / "w") == hashlib.sha256(data).hexdigest()


def test_link_or_copy_links_a_symlink_by_its_target(tmp_path):
    src = tmp_path / "weights.pt"
    src.write_bytes(b"w")
    alias = tmp_path / "alias.pt"
    alias.symlink_to(src)
    dst = files.link_or_copy(alias, tmp_path / "out" / "w.pt")
    assert dst.read_bytes() == b"w"
    alias.unlink()  # dst does not depend on the alias
    assert dst.read_bytes() == b"w"
    files.link_or_copy(src, dst)  # replacing an existing destination
    assert dst.read_bytes() == b"w"


def test_lmdb_format_round_trip(tmp_path):
    path = tmp_path / "db"
    with lmdb.open(str(path), map_size=1 << 24) as env, env.begin(write=True) as txn:
        for i in range(3):
            txn.put(lmdb_format.image_key(32, i), f"img{i}".encode())
        for key, value in lmdb_format.header_records(3, {"sizes": [32, 64]}).items():
            txn.put(key, value)
    assert lmdb_format.read_header(path) == (3, {"sizes": [32, 64]})
    assert lmdb_format.read_blob(path, 32, 2) == b"img2"
    with pytest.raises(KeyError, match="32-00003"):
        lmdb_format.read_blob(path, 32, 3)
    assert lmdb_format.image_key(256, 7) == b"256-00007"  # rosinality's readers expect this
    assert lmdb_format.index_width(100_001) == 6
    assert lmdb_format.stored_size([64, 128], 100) == 128
    assert lmdb_format.stored_size([64, 128], 256) == 128


def test_read_header_names_a_database_that_is_not_packed(tmp_path):
    with lmdb.open(str(tmp_path / "db"), map_size=1 << 20) as env, env.begin(write=True) as txn:
        txn.put(b"other", b"x")
    with pytest.raises(ValueError, match="not a packed image LMDB"):
        lmdb_format.read_header(tmp_path / "db")


def _sqrtm_frechet(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("n", [40, 400])  # fewer samples than dimensions (low rank), and more
def test_frechet_distance_equals_the_sqrtm_formula(n):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, 64))
    b = rng.normal(0.3, 1.5, size=(n + 7, 64)) @ rng.normal(size=(64, 64)) / 8
    expected = _sqrtm_frechet(a, b)
    assert frechet.frechet_distance_of_features(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet.frechet_distance_of_features(a, a) == pytest.approx(0, abs=1e-8)
