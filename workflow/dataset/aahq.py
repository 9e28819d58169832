"""Rebuild AAHQ's raw images from the published URL + landmark JSON (method 2.1).

    python -m workflow.dataset.aahq --json aahq-dataset.json --out DIR [--limit N] [--delay S]

The JSON maps each aligned name to {"image_url", "raw_name", "landmarks": {eye_left, eye_right,
mouth_left, mouth_right}}; several aligned faces may share one raw image, which is downloaded
once. Writes DIR/images/, DIR/manifest.jsonl (one record per raw image) and DIR/landmarks.json,
keyed by the image's path relative to DIR/images, in the same schema: `landmarks` holds the first
face (by aligned name), `faces` lists every face of that image. URLs are fetched exactly as
given: the landmarks are in that file's pixel coordinates, so no larger variant is tried.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from workflow.errors import InputError, read_json, run_cli

from .download import Downloader
from .download_cli import add_client_args, client_from_args, finish
from .http_client import ChallengeError
from .landmarks import clean_points, write_landmark_file
from .manifest import Manifest, record_key
from .names import sanitize_name, unique_names

ENTRY_PROJECT = "aahq_entry"  # project_id of the manifest records of unusable JSON entries


def check_landmarks(landmarks) -> dict:
    """The four named points as finite [x, y] floats, or ValueError."""
    if not isinstance(landmarks, dict):
        raise ValueError("landmarks is not a mapping")
    return clean_points(landmarks)


def group_entries(entries: dict) -> tuple[dict, list]:
    """raw_name -> {"image_url", "faces": [{aligned_name, landmarks}]} and a list of bad entries."""
    images, bad = {}, []
    for aligned in sorted(entries):
        entry = entries[aligned]
        try:
            if not isinstance(entry, dict):
                raise ValueError("entry is not a mapping")
            url, raw = entry.get("image_url"), entry.get("raw_name")
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                raise ValueError("image_url is not an http(s) URL")
            if not isinstance(raw, str) or not raw:
                raise ValueError("raw_name missing")
            landmarks = check_landmarks(entry.get("landmarks"))
        except (ValueError, TypeError) as exc:
            bad.append((aligned, str(exc)))
            continue
        image = images.setdefault(raw, {"image_url": url, "faces": []})
        image["faces"].append({"aligned_name": aligned, "landmarks": landmarks})
    return images, bad


def write_landmarks(out: Path, manifest: Manifest, images: dict) -> int:
    table = {}
    for rec in manifest.records.values():
        raw = rec.get("raw_name")
        if rec.get("status") != "ok" or raw not in images:
            continue
        faces = images[raw]["faces"]
        rel = Path(rec["path"]).relative_to("images").as_posix()
        table[rel] = {"landmarks": faces[0]["landmarks"], "image_url": images[raw]["image_url"],
                      "raw_name": raw, "aligned_name": faces[0]["aligned_name"], "faces": faces}
    write_landmark_file(out / "landmarks.json", table)
    return len(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workflow.dataset.aahq",
        description="Download AAHQ's raw images from its published JSON, resumably, and write the "
                    "landmark file. Research use only; images remain the artists'.")
    parser.add_argument("--json", required=True, type=Path, help="AAHQ URL + landmark JSON")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="take the first N raw images")
    add_client_args(parser, delay=0.5)
    args = parser.parse_args(argv)

    entries = read_json(args.json, "AAHQ JSON")
    if not isinstance(entries, dict):
        raise InputError(f"{args.json}: expected a JSON object keyed by aligned name")
    images, bad = group_entries(entries)
    for aligned, why in bad:
        print(f"{args.json}: entry {aligned!r} ignored: {why}", file=sys.stderr)
    raws = list(images)  # first appearance in sorted aligned-name order: deterministic
    # File stems from the raw names, unique over the whole list (x.jpg and x.png are two
    # images), so that a larger --limit later never renames what is already downloaded.
    stems = unique_names(raws, lambda raw: sanitize_name(os.path.splitext(raw)[0]))
    if args.limit is not None:
        raws = raws[: args.limit]

    args.out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(args.out / "manifest.jsonl")
    downloader = Downloader(client_from_args(args), args.out, manifest, args.max_pixels)
    for aligned, why in bad:  # recorded once, so the manifest says why a face is missing
        key = {"project_id": ENTRY_PROJECT, "asset_id": aligned}
        if (manifest.get(record_key(key)) or {}).get("reason") != f"bad_entry:{why}":
            downloader.skip(key, f"bad_entry:{why}")
    status = 0
    try:
        for raw in tqdm(raws, desc="aahq", unit="img", disable=args.no_progress):
            base = {"project_id": "aahq", "asset_id": raw, "raw_name": raw,
                    "url": images[raw]["image_url"],
                    "aligned_names": [f["aligned_name"] for f in images[raw]["faces"]]}
            if downloader.done(f"aahq/{raw}"):
                continue
            if stems[raw] is None:
                downloader.skip(base, "name_collision")
            else:
                downloader.download(base, [images[raw]["image_url"]], stems[raw])
    except ChallengeError as exc:
        print(f"STOPPED: {exc}", file=sys.stderr)
        status = 3
    finally:
        manifest.compact()
        n = write_landmarks(args.out, manifest, images)
        manifest.close()
    c = downloader.counts
    print(f"aahq: {c['ok']} downloaded, {c['failed']} failed this run; {n} images with landmarks "
          f"in {args.out / 'landmarks.json'}", file=sys.stderr)
    keys = {f"aahq/{raw}" for raw in raws} | {f"{ENTRY_PROJECT}/{a}" for a, _ in bad}
    return finish(args, status, keys=keys)


if __name__ == "__main__":
    sys.exit(run_cli(main))
