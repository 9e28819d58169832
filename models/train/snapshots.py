"""Snapshots: written atomically with a SHA-256 sidecar, resumed from the newest valid one.

A snapshot is only trusted once its sidecar exists and matches (the sidecar is written after
the snapshot, so an interrupted write leaves a snapshot without one); a corrupt or unverified
snapshot is skipped and the previous one used. A snapshot also records what a step means
(images per step, accumulation, every network's constructor arguments): resuming with other
settings would count images wrongly, so it is refused (``ResumeError``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from basics.files import sha256_file, write_json_atomic

from ..checkpoint import load_checkpoint, save_checkpoint

SNAPSHOT_PREFIX = "snapshot-"


def sidecar(path: Path) -> Path:
    return path.with_suffix(".sha256.json")


def write_snapshot(folder, images: int, models: dict, config: dict, extra: dict,
                   keep: int = 3) -> Path:
    """snapshot-<images>.pt (atomic) then its .sha256.json sidecar (atomic); prune old ones."""
    folder = Path(folder)
    path = folder / f"{SNAPSHOT_PREFIX}{images:012d}.pt"
    save_checkpoint(path, models, config=config, extra=extra)
    write_json_atomic(sidecar(path), {"file": path.name, "sha256": sha256_file(path),
                                      "images": images})
    snaps = sorted(folder.glob(f"{SNAPSHOT_PREFIX}*.pt"))
    for old in snaps[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        sidecar(old).unlink(missing_ok=True)
    return path


def verify_snapshot(path: Path) -> str | None:
    """None when the snapshot matches its checksum; otherwise the reason it cannot be used."""
    side = sidecar(path)
    if not side.exists():
        return "no checksum sidecar (write interrupted?)"
    try:
        want = json.loads(side.read_text())["sha256"]
    except (ValueError, KeyError) as err:
        return f"unreadable checksum sidecar: {err}"
    got = sha256_file(path)
    return None if got == want else f"checksum mismatch (sha256 {got[:12]} != {want[:12]})"


def latest_valid_snapshot(folder, log=print) -> tuple[Path, dict] | None:
    """Newest snapshot that verifies and loads; corrupt ones are reported and skipped."""
    folder = Path(folder)
    for path in sorted(folder.glob(f"{SNAPSHOT_PREFIX}*.pt"), reverse=True):
        reason = verify_snapshot(path)
        if reason is None:
            try:
                return path, load_checkpoint(path, build=False)
            except ValueError as err:
                reason = str(err)
        log(f"WARNING: snapshot {path} is unusable: {reason}; trying the previous one")
    return None


class ResumeError(ValueError):
    """The newest snapshot was made with settings that change what a step means."""


def step_settings(loop, models: dict) -> dict:
    """What a snapshot must share with the run resuming it: images per step, accumulation
    rounds and every network's class and constructor arguments (JSON-normalised)."""
    return json.loads(json.dumps({
        "batch": loop.batch, "accum": loop.accum,
        "networks": {name: {"class": type(m).__name__, "kwargs": dict(getattr(m, "init_kwargs", {}))}
                     for name, m in models.items()},
    }))


def check_resumable(path: Path, payload: dict, loop, models: dict):
    """ResumeError (one line: the snapshot, what differs, what to do) unless ``payload`` was
    saved with the same step settings; a resumed run would otherwise count images wrongly."""
    now = step_settings(loop, models)
    saved = payload["extra"].get("settings")
    if saved is None:  # snapshots written before settings were stored
        saved_loop = payload.get("config", {}).get("loop", {})
        saved = {"batch": saved_loop.get("batch", now["batch"]),
                 "accum": saved_loop.get("accum", now["accum"]),
                 "networks": json.loads(json.dumps(
                     {n: {"class": e["class"], "kwargs": e["kwargs"]}
                      for n, e in payload["models"].items()}))}
    diffs = [f"loop.{k} {saved[k]} -> {now[k]}" for k in ("batch", "accum") if saved[k] != now[k]]
    for name in sorted(set(saved["networks"]) | set(now["networks"])):
        if saved["networks"].get(name) != now["networks"].get(name):
            diffs.append(f"network {name}")
    images = payload["extra"].get("images")
    if not diffs and images is not None and images != int(payload["extra"]["step"]) * loop.batch:
        diffs.append(f"images {images} != step x batch")
    if diffs:
        raise ResumeError(
            f"{path}: cannot resume: the snapshot's settings differ ({', '.join(diffs)}); "
            f"restore them, or pass --restart to start over (old snapshots are moved aside)")


def set_aside_snapshots(snap_dir: Path) -> Path | None:
    """--restart: move old snapshots out of the way (to ``snapshots.previous``, replacing an
    older set), so a later resume can never pick one of them up."""
    if not snap_dir.is_dir() or not any(snap_dir.glob(f"{SNAPSHOT_PREFIX}*.pt")):
        return None
    aside = snap_dir.with_name(snap_dir.name + ".previous")
    if aside.exists():
        shutil.rmtree(aside)
    os.replace(snap_dir, aside)
    return aside
