"""Files that are either whole or absent: atomic writes, SHA-256 of a file, link-or-copy.

Every writer goes through a temporary name in the destination's folder and one `os.replace`,
so a killed job leaves the old file or none, never half of one (Snakemake then reruns it).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

CHUNK = 1 << 20


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique per process (two writers never share one)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path, fsync: bool = False):
    """Yield a temporary path to write; it replaces `path` only when the block succeeds.

    For writers that want a file name (torch.save, PIL's save, LMDB-free numpy files); the
    parent folder is created, and the temporary file is removed when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if fsync:
        fsync_dir(path.parent)


def atomic_write(path, data: bytes | str, fsync: bool = False) -> Path:
    """Write bytes, or text as UTF-8, to `path` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_output(path, fsync=fsync) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def write_json_atomic(path, obj, *, indent: int | None = 1, fsync: bool = False,
                      newline: bool = True, **dump_options) -> Path:
    """`obj` as JSON, atomically; `dump_options` go to json.dumps (sort_keys, default, ...)."""
    text = json.dumps(obj, indent=indent, **dump_options)
    return atomic_write(path, text + ("\n" if newline else ""), fsync=fsync)


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (weights files run to gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def link_or_copy(src, dst) -> Path:
    """`dst` with the bytes of `src`: a hard link, else a symlink, else a copy; atomic.

    A symlinked `src` is linked by its target, so `dst` survives a relinked `src`."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(dst)
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    try:
        if src.is_symlink():
            os.symlink(os.path.realpath(src), tmp)
        else:
            try:
                os.link(src, tmp)
            except OSError:
                try:
                    os.symlink(src.resolve(), tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return dst
