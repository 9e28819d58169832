"""FFHQ (or any local image folder) into DIR/images + DIR/manifest.jsonl.

    python -m workflow.dataset.ffhq --folder images1024x1024 --out DIR [--size 1024] [--limit N]
    python -m workflow.dataset.ffhq --metadata ffhq-dataset-v2.json --out DIR [--limit N]

--folder verifies a tree of already aligned images (decodable within the pixel cap, square, of
the expected size; `--size 0` accepts any size, for a folder of raw artworks) and links them
into DIR/images under the same relative paths (hard link, else symbolic link, else copy).
--metadata downloads the in-the-wild images listed in NVIDIA's official metadata JSON through the
same polite machinery, checks their MD5, and writes DIR/landmarks.json from the 68 landmarks
(method 2.2: eye_left = mean(36..41), eye_right = mean(42..47), mouth_left = 48, mouth_right = 54).
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from basics.files import link_or_copy
from workflow.errors import InputError, read_json, run_cli

from .download import FORMAT_EXT, Downloader, ImageCheckError, check_image
from .download_cli import add_client_args, client_from_args, finish
from .http_client import ChallengeError
from .landmarks import clean_points, write_landmark_file
from .manifest import Manifest, make_record
from .names import sanitize_name, unique_names
from .values import text, web_url

IMAGE_EXTENSIONS = {".jpeg", *FORMAT_EXT.values()}  # what check_image accepts (no TIFF)


def four_points(landmarks68) -> dict:
    """method 2.2 four-point landmarks from a 68x2 array (image coordinates)."""
    pts = np.asarray(landmarks68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected 68x2 landmarks, got {pts.shape}")
    return {
        "eye_left": pts[36:42].mean(axis=0).tolist(),
        "eye_right": pts[42:48].mean(axis=0).tolist(),
        "mouth_left": pts[48].tolist(),
        "mouth_right": pts[54].tolist(),
    }


def list_folder(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def ingest_folder(folder: Path, out: Path, size: int, limit: int | None, max_pixels: int,
                  label: str, progress: bool, max_bytes: int = 64 * 2**20) -> tuple[dict, set]:
    names = list_folder(folder)
    if limit is not None:
        names = names[:limit]
    manifest = Manifest(out / "manifest.jsonl")
    counts = {"ok": 0, "skipped": 0}
    # the relative path is kept (sanitised per component) so landmark files stay valid
    targets = unique_names(names, lambda rel: "/".join(sanitize_name(p) for p in Path(rel).parts))
    try:
        for rel in tqdm(names, desc=label, unit="img", disable=not progress):
            prev = manifest.get(f"{label}/{rel}")
            if prev and prev["status"] == "skipped":
                continue
            if prev and prev["status"] == "ok" and (out / prev["path"]).exists():
                continue
            src = folder / rel
            base = {"project_id": label, "asset_id": rel, "url": src.resolve().as_uri()}
            try:
                if targets[rel] is None:
                    raise ImageCheckError("name_collision")
                if src.stat().st_size > max_bytes:
                    raise ImageCheckError(f"too_large_file:{src.stat().st_size}")
                data = src.read_bytes()
            except OSError as exc:
                manifest.append(make_record(**base, status="skipped",
                                            reason=f"unreadable:{type(exc).__name__}"))
                counts["skipped"] += 1
                continue
            except ImageCheckError as exc:
                manifest.append(make_record(**base, status="skipped", reason=exc.reason))
                counts["skipped"] += 1
                continue
            try:
                _, width, height = check_image(data, max_pixels)
                if size and width != height:
                    raise ImageCheckError(f"not_square:{width}x{height}")
                if size and width != size:
                    raise ImageCheckError(f"wrong_size:{width}x{height}")
            except ImageCheckError as exc:
                manifest.append(make_record(**base, status="skipped", reason=exc.reason, size=len(data)))
                counts["skipped"] += 1
                continue
            dst = out / "images" / targets[rel]
            link_or_copy(src, dst)
            manifest.append(make_record(
                **base, status="ok", path=dst.relative_to(out).as_posix(),
                sha256=hashlib.sha256(data).hexdigest(), size=len(data), width=width,
                height=height, attempts=0))
            counts["ok"] += 1
    finally:
        manifest.compact()
        manifest.close()
    return counts, {f"{label}/{rel}" for rel in names}


def load_metadata(path: Path) -> list[tuple[str, dict]]:
    meta = read_json(path, "FFHQ metadata JSON")
    if not isinstance(meta, (dict, list)):
        raise InputError(f"{path}: expected a JSON object (or list) of FFHQ entries")
    items = meta.items() if isinstance(meta, dict) else enumerate(meta)
    pairs = [(str(k), v) for k, v in items if isinstance(v, dict)]
    return sorted(pairs, key=lambda kv: (int(kv[0]) if kv[0].isdigit() else 1 << 62, kv[0]))


def md5_check(expected: str | None):
    if not expected:
        return None
    return lambda data: None if hashlib.md5(data).hexdigest() == expected.lower() else "md5_mismatch"


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def entry_problem(part: dict, which: str) -> str | None:
    """Why this metadata entry cannot be downloaded, or None."""
    if not part.get("file_url"):
        return f"no_{which}_url"
    if web_url(part.get("file_url")) is None:
        return "bad_entry:file_url"
    md5 = part.get("file_md5")
    if md5 is not None and not (isinstance(md5, str) and re.fullmatch(r"[0-9a-fA-F]{32}", md5)):
        return "bad_entry:file_md5"
    return None


def fetch_from_metadata(args) -> int:
    entries = load_metadata(args.metadata)
    if args.limit is not None:
        entries = entries[: args.limit]
    manifest = Manifest(args.out / "manifest.jsonl")
    downloader = Downloader(client_from_args(args), args.out, manifest, args.max_pixels)
    landmarks_by_key, status = {}, 0
    try:
        for key, entry in tqdm(entries, desc="ffhq", unit="img", disable=args.no_progress):
            part, info = _mapping(entry.get(args.which)), _mapping(entry.get("metadata"))
            base = {"project_id": "ffhq", "asset_id": key, "url": web_url(part.get("file_url")),
                    "artist": text(info.get("author")), "title": text(info.get("photo_title")),
                    "project_url": web_url(info.get("photo_url")),
                    "license": text(info.get("license"))}
            try:
                landmarks_by_key[key] = clean_points(four_points(part.get("face_landmarks")))
            except (ValueError, TypeError):
                pass  # no landmarks: the landmark stage finds none and records no_face
            if downloader.done(f"ffhq/{key}"):
                continue
            problem = entry_problem(part, args.which)
            if problem:
                downloader.skip(base, problem)
                continue
            path = part.get("file_path")
            stem = PurePosixPath(path).stem if isinstance(path, str) and path.strip() else key
            downloader.download(base, [part["file_url"]], stem, check=md5_check(part.get("file_md5")))
    except ChallengeError as exc:
        print(f"STOPPED: {exc}", file=sys.stderr)
        status = 3
    finally:
        manifest.compact()
        table = {}
        for rec in manifest.records.values():
            if rec.get("status") == "ok" and rec["asset_id"] in landmarks_by_key:
                rel = Path(rec["path"]).relative_to("images").as_posix()
                table[rel] = {"landmarks": landmarks_by_key[rec["asset_id"]], "ffhq_index": rec["asset_id"],
                              "image_url": rec["url"]}
        write_landmark_file(args.out / "landmarks.json", table)
        manifest.close()
    c = downloader.counts
    print(f"ffhq: {c['ok']} downloaded, {c['failed']} failed, {c['skipped']} skipped this run; "
          f"{len(table)} images with landmarks", file=sys.stderr)
    return finish(args, status, keys={f"ffhq/{key}" for key, _ in entries})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workflow.dataset.ffhq",
        description="Verify a local folder of FFHQ images, or download FFHQ from its metadata JSON.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", type=Path, help="folder of aligned images (recursive)")
    source.add_argument("--metadata", type=Path, help="official ffhq-dataset-v2.json")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="take the first N images")
    parser.add_argument("--size", type=int, default=1024,
                        help="--folder: expected square size; 0 accepts any size (default 1024)")
    parser.add_argument("--label", default="ffhq", help="--folder: project_id in the manifest")
    parser.add_argument("--which", choices=("in_the_wild", "image"), default="in_the_wild",
                        help="--metadata: raw in-the-wild photos (default) or the aligned 1024 images")
    add_client_args(parser, delay=0.5)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.folder is not None:
        if not args.folder.is_dir():
            raise InputError(f"{args.folder}: not a folder")
        counts, keys = ingest_folder(args.folder, args.out, args.size, args.limit, args.max_pixels,
                                     args.label, not args.no_progress, args.max_bytes)
        print(f"{args.label}: {counts['ok']} images linked, {counts['skipped']} rejected (see "
              f"{args.out / 'manifest.jsonl'})", file=sys.stderr)
        return finish(args, 0, keys=keys)
    return fetch_from_metadata(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
