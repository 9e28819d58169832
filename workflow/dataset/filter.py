"""Quality filtering and de-duplication of aligned faces (method 2.4).

Checks run cheap to expensive and the first failing check rejects the image; every rejection
is written with its reason and the measured value against the threshold:
  decode_error / too_large / no_face / bad_landmarks   (carried over from alignment)
  multiple_faces     another face at least `max_second_face_ratio` of the largest face's area
  low_resolution     quad size in source pixels below `min_qsize`
  padding            share of the crop sampled outside the source above `max_padded_fraction`
  implausible_geometry  eye distance / eye-to-mouth distance outside `eye_mouth_ratio`
  blur               variance of the Laplacian of the grey crop below `blur_threshold`
  duplicate          perceptual hash within `dedup_hamming` bits of a larger-source image, confirmed
                     by the correlation of 64x64 grey thumbnails (aligned faces all share one layout,
                     so the hash alone pairs up different faces of a similar look); the search is
                     vectorised (workflow/dataset/dedup.py)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import imagehash
import numpy as np
import scipy.ndimage
from PIL import Image
from tqdm import tqdm

from basics.files import atomic_write
from workflow import errors
from workflow.dataset.pool import process_pool
from workflow.errors import add_debug_flag, run_cli

from .dedup import find_duplicates


@dataclass(frozen=True)
class FilterConfig:
    min_qsize: float = 128.0               # source pixels; default output size / 2
    max_padded_fraction: float = 0.35      # share of the crop that is synthetic padding
    max_second_face_ratio: float = 0.5     # a second face this large makes the image ambiguous
    eye_mouth_ratio: tuple = (0.6, 2.0)    # plausible eye distance / eye-to-mouth distance
    blur_threshold: float = 50.0           # Laplacian variance at 256 px, grey 0..255
    dedup_hamming: int = 10                # 64-bit pHash distance that makes two crops candidates
    dedup_min_correlation: float = 0.995   # thumbnail correlation that confirms a duplicate
    analysis_size: int = 256               # crops are measured at this size

    @classmethod
    def from_dict(cls, d: dict | None) -> "FilterConfig":
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown filter settings: {sorted(unknown)}")
        if "eye_mouth_ratio" in d:
            d["eye_mouth_ratio"] = tuple(d["eye_mouth_ratio"])
        return cls(**d)


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian, the usual focus measure."""
    return float(scipy.ndimage.laplace(grey.astype(np.float64)).var())


def thumbnail_signature(img: Image.Image, side: int = 64) -> np.ndarray:
    """Zero-mean, unit-norm grey thumbnail: the dot product of two is their correlation."""
    g = np.asarray(img.convert("L").resize((side, side), Image.BOX), dtype=np.float32).ravel()
    g = g - g.mean()
    return g / max(float(np.linalg.norm(g)), 1e-6)


def measure_crop(path, analysis_size: int) -> dict:
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (analysis_size, analysis_size):
            img = img.resize((analysis_size, analysis_size), Image.LANCZOS)
        grey = np.asarray(img.convert("L"))
        return {"laplacian_var": round(laplacian_variance(grey), 3), "phash": str(imagehash.phash(img)),
                "signature": thumbnail_signature(img)}


def _measure_task(args):
    path, size = args
    return measure_crop(path, size)


def _geometry_rejection(rec: dict, cfg: FilterConfig):
    if rec.get("n_faces", 1) > 1 and len(rec.get("boxes", [])) > 1:
        areas = [max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) for b in rec["boxes"]]
        ratio = areas[1] / max(areas[0], 1e-9)
        if ratio >= cfg.max_second_face_ratio:
            return "multiple_faces", {"second_face_ratio": round(ratio, 3), "threshold": cfg.max_second_face_ratio}
    if rec["qsize"] < cfg.min_qsize:
        return "low_resolution", {"qsize": rec["qsize"], "threshold": cfg.min_qsize}
    if rec["padded_fraction"] > cfg.max_padded_fraction:
        return "padding", {"padded_fraction": rec["padded_fraction"], "threshold": cfg.max_padded_fraction}
    ratio = rec["eye_distance"] / max(rec["eye_to_mouth"], 1e-9)
    lo, hi = cfg.eye_mouth_ratio
    if not lo <= ratio <= hi:
        return "implausible_geometry", {"eye_mouth_ratio": round(ratio, 3), "threshold": [lo, hi]}
    return None


def filter_records(records: list[dict], aligned_dir, cfg: FilterConfig, workers: int = 1):
    """Split alignment records into (accepted names, rejections); both in the records' order."""
    rejections, candidates = [], []
    for rec in records:
        if rec["status"] != "aligned":
            rejections.append({"name": rec["name"], "reason": rec["reason"],
                               **{k: rec[k] for k in ("detail", "width", "height") if k in rec}})
            continue
        geo = _geometry_rejection(rec, cfg)
        if geo:
            rejections.append({"name": rec["name"], "reason": geo[0], **geo[1]})
        else:
            candidates.append(rec)

    tasks = [(str(Path(aligned_dir) / r["aligned"]), cfg.analysis_size) for r in candidates]
    if workers > 1:
        with process_pool(workers) as pool:
            measures = list(tqdm(pool.map(_measure_task, tasks, chunksize=8), total=len(tasks),
                                 desc="filter: measure", unit="img", disable=None))
    else:
        measures = [_measure_task(t) for t in tqdm(tasks, desc="filter: measure", unit="img", disable=None)]

    sharp = []
    for rec, m in zip(candidates, measures):
        if m["laplacian_var"] < cfg.blur_threshold:
            rejections.append({"name": rec["name"], "reason": "blur",
                               "laplacian_var": m["laplacian_var"], "threshold": cfg.blur_threshold})
        else:
            sharp.append((rec, m))

    # Near-duplicates: visit the largest sources first so the kept copy is the best one.
    def source_pixels(rec):
        return rec["source_size"][0] * rec["source_size"][1]
    order = sorted(sharp, key=lambda rm: (-source_pixels(rm[0]), -rm[0]["qsize"], rm[0]["name"]))
    matches = find_duplicates([m["phash"] for _, m in order], [m["signature"] for _, m in order],
                              cfg.dedup_hamming, cfg.dedup_min_correlation)
    accepted = set()
    for (rec, _), match in zip(order, matches):
        if match:
            kept_name = order[match[0]][0]["name"]
            rejections.append({"name": rec["name"], "reason": "duplicate", "duplicate_of": kept_name,
                               "hamming": match[1], "correlation": round(match[2], 5),
                               "threshold": [cfg.dedup_hamming, cfg.dedup_min_correlation]})
        else:
            accepted.add(rec["name"])
    stats = {rec["name"]: {k: v for k, v in m.items() if k != "signature"} for rec, m in sharp}
    accepted_names = [r["name"] for r in records if r["name"] in accepted]
    position = {r["name"]: i for i, r in enumerate(records)}
    rejections.sort(key=lambda r: position[r["name"]])
    return accepted_names, rejections, stats


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m workflow.dataset.filter", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", required=True, help="alignment records (JSON lines)")
    p.add_argument("--aligned", required=True, help="folder of aligned crops")
    p.add_argument("--config", help="JSON or YAML file with FilterConfig fields")
    p.add_argument("--settings", help="FilterConfig fields as a JSON object (applied after --config)")
    p.add_argument("--accepted", required=True, help="output: accepted aligned file names, one a line")
    p.add_argument("--rejections", required=True, help="output: JSON lines, one rejection each")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    add_debug_flag(p)
    a = p.parse_args(argv)
    cfg_dict = {}
    if a.config:
        cfg_dict = errors.read_yaml(a.config, "filter config") or {}
    if a.settings:
        try:
            cfg_dict.update(json.loads(a.settings))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise errors.InputError(f"--settings: not a JSON object of filter settings ({exc})") from None
    cfg = FilterConfig.from_dict(cfg_dict)
    records = errors.read_jsonl(a.records, "alignment records")
    accepted, rejections, _ = filter_records(records, a.aligned, cfg, a.workers)
    by_name = {r["name"]: r["aligned"] for r in records}
    atomic_write(a.accepted, "".join(by_name[n] + "\n" for n in accepted))
    atomic_write(a.rejections, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rejections))
    counts = Counter(r["reason"] for r in rejections)
    print(f"accepted {len(accepted)} of {len(records)}; rejected: {dict(sorted(counts.items()))}")
    print(f"settings: {json.dumps(asdict(cfg))}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
