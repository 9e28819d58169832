"""Append-only JSON-lines manifest that survives a kill at any point.

Every change is one appended line, flushed and fsynced before the caller moves on; the latest
line for a key wins. A kill can leave at most one partial last line: readers ignore it and the
next writer cuts it off before appending. `compact()` rewrites the file as one sorted record per
key through a temporary file and an atomic rename, so the file is always either the old or the
new version.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from basics.files import atomic_write

STATUSES = ("ok", "skipped", "failed")

# Every asset record carries these keys (None where unknown), in this order.
FIELDS = (
    "project_id", "asset_id", "status", "reason", "path", "sha256", "artist", "url",
    "title", "project_url", "size", "width", "height", "attempts",
)


def json_line(record) -> bytes:
    """One JSON line as UTF-8. Text that UTF-8 cannot hold (lone surrogates, which valid JSON
    from a server can carry) is written as its \\uXXXX escape, never an error."""
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")


def record_key(record: dict) -> str:
    return f"{record.get('project_id') or ''}/{record.get('asset_id')}"


def make_record(**values) -> dict:
    """A manifest record with every standard field present (extras kept after them)."""
    unknown_status = values.get("status") not in STATUSES
    if unknown_status:
        raise ValueError(f"status must be one of {STATUSES}, got {values.get('status')!r}")
    record = {name: values.pop(name, None) for name in FIELDS}
    record.update(values)
    return record


def read_records(path: str | os.PathLike) -> list[dict]:
    """All complete records in file order; a torn last line (a kill mid-write) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # torn tail
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line followed by a later append before repair
    return records


def latest(records) -> dict:
    """Key -> last record for that key."""
    out = {}
    for record in records:
        out[record_key(record)] = record
    return out


class Manifest:
    """Open (and repair) a manifest for appending; `records` maps key -> latest record."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        # fsync makes each line survive power loss too; a killed process loses nothing either way
        self.fsync = fsync
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self.records = latest(read_records(self.path))
        self._file = open(self.path, "ab")

    def _repair_tail(self):
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict) -> None:
        self._file.write(json_line(record))
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self.records[record_key(record)] = record

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def compact(self) -> None:
        """Rewrite as one record per key, sorted by key, atomically."""
        self.close()
        write_jsonl_atomic(self.path, [self.records[k] for k in sorted(self.records)])
        self._file = open(self.path, "ab")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_jsonl_atomic(path: str | os.PathLike, records) -> None:
    """`records` as JSON lines, replacing `path` atomically and durably (it marks completion)."""
    atomic_write(path, b"".join(json_line(record) for record in records), fsync=True)
