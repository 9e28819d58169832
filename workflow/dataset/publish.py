"""Expose a finished download work folder as the dataset a workflow rule produces.

Workflow rules download into a work folder that the workflow manager never deletes, then
publish, so a failed or forced job resumes instead of starting over. The published folder holds
images/ (links to the work folder's `ok` files), the landmark file when there is one, and the
manifest, written last: its presence marks a complete publication.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from basics.files import link_or_copy

from .landmarks import write_landmark_file
from .manifest import read_records, record_key, write_jsonl_atomic


def select_records(work: Path, keys=None, limit: int | None = None) -> list[dict]:
    """The work folder's records whose key is in `keys` (when given), keeping only the first
    `limit` ok ones (when given), so that lowering a limit shrinks the published set."""
    records, n_ok = [], 0
    for rec in read_records(Path(work) / "manifest.jsonl"):
        if keys is not None and record_key(rec) not in keys:
            continue
        if rec.get("status") == "ok":
            if limit is not None and n_ok >= limit:
                continue
            n_ok += 1
        records.append(rec)
    return records


def publish(work: Path, dest: Path, keys=None, limit: int | None = None) -> int:
    """Publish the selected records of `work` at `dest`; returns the number of images."""
    work, dest = Path(work), Path(dest)
    if work.resolve() == dest.resolve():
        raise ValueError("--publish must differ from --out")
    records = select_records(work, keys, limit)
    dest.mkdir(parents=True, exist_ok=True)
    # images/ is swapped in whole: a reader never sees a mix of two publications
    staging = dest / ".images.publishing"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    published = set()
    for rec in records:
        if rec.get("status") == "ok":
            rel = Path(rec["path"]).relative_to("images")
            link_or_copy(work / rec["path"], staging / rel)
            published.add(rel.as_posix())
    if (dest / "images").exists():
        shutil.rmtree(dest / "images")
    os.replace(staging, dest / "images")
    if (work / "landmarks.json").exists():
        table = json.loads((work / "landmarks.json").read_text(encoding="utf-8"))
        write_landmark_file(dest / "landmarks.json", {k: v for k, v in table.items() if k in published})
    write_jsonl_atomic(dest / "manifest.jsonl", records)
    return len(published)
