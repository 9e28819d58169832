"""The packed dataset's format, read and written in one place (rosinality-compatible).

Keys: f"{size}-{index:0{width}d}" -> encoded image bytes, "length" -> the count as ASCII
digits, "metadata" -> a JSON record (names in index order, sizes, format, index width,
provenance). Five index digits, as rosinality's readers expect; wider only past 99,999 images.
"""
from __future__ import annotations

import json
import os

import lmdb

LENGTH_KEY = b"length"
METADATA_KEY = b"metadata"
DEFAULT_INDEX_WIDTH = 5

_ENVS: dict = {}  # (path, pid) -> read-only environment: LMDB allows one handle per process


def index_width(count: int) -> int:
    """Index digits for a dataset of `count` images."""
    return max(DEFAULT_INDEX_WIDTH, len(str(max(count - 1, 0))))


def image_key(size: int, index: int, width: int = DEFAULT_INDEX_WIDTH) -> bytes:
    return f"{size}-{str(index).zfill(width)}".encode("utf-8")


def header_records(length: int, metadata: dict) -> dict[bytes, bytes]:
    """The two non-image records a packed dataset carries."""
    return {LENGTH_KEY: str(length).encode("utf-8"),
            METADATA_KEY: json.dumps(metadata).encode("utf-8")}


def open_readonly(path) -> lmdb.Environment:
    """A read-only environment for `path`, one per process (cached).

    A forked loader worker inherits the parent's handle, which LMDB forbids using (and py-lmdb
    refuses to open the path twice): the inherited copy is closed in the child first."""
    path = str(path)
    key = (path, os.getpid())
    if key not in _ENVS:
        for other in [k for k in _ENVS if k[0] == path and k[1] != key[1]]:
            _ENVS.pop(other).close()
        _ENVS[key] = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
    return _ENVS[key]


def read_header(path) -> tuple[int, dict]:
    """(length, metadata) of a packed dataset; metadata is {} for a plain rosinality LMDB."""
    with open_readonly(path).begin() as txn:
        raw_length = txn.get(LENGTH_KEY)
        raw = txn.get(METADATA_KEY)
    if raw_length is None:
        raise ValueError(f"{path}: not a packed image LMDB (no {LENGTH_KEY.decode()!r} record)")
    return int(raw_length.decode()), (json.loads(raw) if raw else {})


def stored_size(sizes, resolution: int) -> int:
    """The smallest stored size at least `resolution` (the largest when none is)."""
    sizes = sorted(sizes or [resolution])
    fits = [s for s in sizes if s >= resolution]
    return fits[0] if fits else sizes[-1]


def read_blob(path, size: int, index: int, width: int = DEFAULT_INDEX_WIDTH) -> bytes:
    """The encoded image `index` at `size`; KeyError naming the dataset and key when absent."""
    key = image_key(size, index, width)
    with open_readonly(path).begin() as txn:
        blob = txn.get(key)
    if blob is None:
        raise KeyError(f"{path}: missing key {key.decode()}")
    return blob
