"""Fetch one image safely: candidate URLs in order, verify, hash, write to a temporary name, rename.

Bytes are accepted only when Pillow decodes them fully as one of a few raster formats within a
pixel cap (checked from the header, before any pixel is decoded). Every file name comes from
sanitised ids, never from the server; its extension comes from the decoded format, never from
the URL or the Content-Type. Nothing downloaded is ever executed or unpickled.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from basics.files import sha256_file
from basics.images import DEFAULT_MAX_PIXELS

from .http_client import FetchError, PoliteClient
from .manifest import Manifest, make_record, record_key
from .names import sanitize_name

FORMAT_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}


class ImageCheckError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Fetched:
    status: str  # ok | failed
    reason: str | None = None
    path: Path | None = None
    tmp: Path | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    attempts: int = 0


def check_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int]:
    """(format, width, height) when `data` decodes completely as an allowed raster format."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format
                width, height = img.size
                if fmt not in FORMAT_EXT:
                    raise ImageCheckError(f"format_not_allowed:{fmt}")
                if width * height > max_pixels:
                    raise ImageCheckError(f"too_many_pixels:{width}x{height}")
                img.load()
    except ImageCheckError:
        raise
    except Exception as exc:  # PIL raises many types on bad input; all mean "not an image"
        raise ImageCheckError(f"not_an_image:{type(exc).__name__}") from None
    return fmt, width, height


def fetch_image(client: PoliteClient, urls: list[str], folder: Path, stem: str,
                max_pixels: int = DEFAULT_MAX_PIXELS, check=None, fsync: bool = True) -> Fetched:
    """Try `urls` in order (e.g. the 4k variant, then the given one); the first that verifies wins.

    The verified bytes are left fsynced at a temporary name (`Fetched.tmp`); `commit()` renames
    them once the caller has recorded them. `check(bytes)` may return a reason to reject the
    bytes (e.g. a checksum mismatch). Raises ChallengeError (from the client) so the caller
    can stop; any other failure comes back as `failed` with every candidate's reason and the
    attempts spent.
    """
    folder.mkdir(parents=True, exist_ok=True)
    reasons, attempts = [], 0
    for url in urls:
        try:
            resp = client.get(url)
            attempts += resp.attempts
        except FetchError as exc:
            attempts += exc.attempts
            reasons.append(exc.reason)
            continue
        try:
            fmt, width, height = check_image(resp.body, max_pixels)
        except ImageCheckError as exc:
            reasons.append(exc.reason)
            continue
        problem = check(resp.body) if check else None
        if problem:
            reasons.append(problem)
            continue
        path = folder / f"{stem}{FORMAT_EXT[fmt]}"
        tmp = part_name(path)
        with open(tmp, "wb") as f:
            f.write(resp.body)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        return Fetched("ok", path=path, tmp=tmp, url=url, sha256=hashlib.sha256(resp.body).hexdigest(),
                       size=len(resp.body), width=width, height=height, attempts=attempts)
    return Fetched("failed", reason=";".join(reasons) or "no_url", url=urls[-1] if urls else None,
                   attempts=attempts)


def part_name(path: Path) -> Path:
    """Where verified bytes wait for their manifest record. Not basics.files.atomic_output:
    the rename must come after the record is appended, and a rerun must find the bytes under
    a name it can derive from the record (see Downloader.recover)."""
    return path.with_name(f".{path.name}.part")


def commit(fetched: Fetched) -> None:
    """Move recorded bytes from their `.part` name to their file name."""
    os.replace(fetched.tmp, fetched.path)


class Downloader:
    """Manifest-driven downloads into `out/images`, resumable after a kill at any point.

    Order per asset: bytes verified and fsynced at a temporary name -> `ok` record appended
    (fsynced) -> rename. `recover()` at start-up finishes renames interrupted after the record
    (the temporary file's SHA-256 must match) and deletes every other temporary file, so an `ok`
    record always means the file is there and an asset is never fetched twice once recorded.
    """

    def __init__(self, client: PoliteClient, out: Path, manifest: Manifest,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.client = client
        self.out = Path(out)
        self.images = self.out / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.manifest = manifest
        self.max_pixels = max_pixels
        self.counts = {"ok": 0, "skipped": 0, "failed": 0, "kept": 0}
        self.recover()
        # file stem (path without extension) -> key of the ok record that owns it
        self.owners = {_stem(rec["path"]): key for key, rec in manifest.records.items()
                       if rec.get("status") == "ok" and rec.get("path")}

    def recover(self) -> None:
        for key, rec in list(self.manifest.records.items()):
            if rec.get("status") != "ok":
                continue
            path = self.out / rec["path"]
            if path.is_file():
                continue
            tmp = part_name(path)
            if tmp.is_file() and sha256_file(tmp) == rec.get("sha256"):
                os.replace(tmp, path)
            else:  # the record cannot be honoured: forget it so the asset is fetched again
                self.manifest.append({**rec, "status": "failed", "reason": "file_missing",
                                      "path": None, "sha256": None})
        for tmp in self.images.rglob(".*.part"):
            tmp.unlink()

    def done(self, key: str) -> bool:
        rec = self.manifest.get(key)
        return rec is not None and rec.get("status") in ("ok", "skipped")

    def skip(self, base: dict, reason: str) -> dict:
        rec = make_record(**{**base, "status": "skipped", "reason": reason})
        self.manifest.append(rec)
        self.counts["skipped"] += 1
        return rec

    def download(self, base: dict, urls: list[str], stem: str, check=None) -> dict:
        """Fetch, record and commit one asset; `base` holds the record's identity and attribution.
        An asset whose file name another asset already holds is skipped, never written over it."""
        key, stem = record_key(base), sanitize_name(stem)
        owner = self.owners.get(f"images/{stem}")
        if owner is not None and owner != key:
            return self.skip(base, f"name_collision:{owner}")
        fetched = fetch_image(self.client, urls, self.images, stem, self.max_pixels,
                              check, fsync=self.manifest.fsync)
        previous = self.manifest.get(key)
        attempts = fetched.attempts + ((previous or {}).get("attempts") or 0)
        if fetched.status != "ok":
            rec = make_record(**{**base, "status": "failed", "reason": fetched.reason,
                                 "url": fetched.url, "attempts": attempts})
            self.manifest.append(rec)
            self.counts["failed"] += 1
            return rec
        rec = make_record(**{
            **base, "status": "ok", "reason": None, "url": fetched.url,
            "path": fetched.path.relative_to(self.out).as_posix(), "sha256": fetched.sha256,
            "size": fetched.size, "width": fetched.width, "height": fetched.height,
            "attempts": attempts,
        })
        self.manifest.append(rec)
        commit(fetched)
        self.owners[_stem(rec["path"])] = key
        self.counts["ok"] += 1
        return rec


def _stem(rel_path: str) -> str:
    """images/x.tar.jpg -> images/x.tar: the stem that fetch_image was given."""
    return rel_path.rsplit(".", 1)[0] if "." in rel_path.rsplit("/", 1)[-1] else rel_path
