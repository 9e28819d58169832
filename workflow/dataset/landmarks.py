"""Facial landmarks (method 2.2): the landmark file format and three backends.

Backends: `file` (a landmark file in the method 2.1 schema), `dlib` (HOG detector and the
68-point predictor shipped by the face-recognition-models wheel; offline),
`face-alignment` (FAN 68 points; downloads its weights at first use) and `aligned` (the
images are FFHQ-aligned crops already, e.g. the official FFHQ release: the landmarks are
the canonical ones whose FFHQ quad is the whole image, so alignment only resamples). From 68 points:
eye_left = mean(36..41), eye_right = mean(42..47), mouth_left = 48, mouth_right = 54.
With several faces the largest is kept and all boxes are recorded (largest first).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from basics.files import write_json_atomic
from workflow.dataset.pool import process_pool
from workflow.errors import add_debug_flag, run_cli

POINT_NAMES = ("eye_left", "eye_right", "mouth_left", "mouth_right")
BACKENDS = ("file", "dlib", "face-alignment", "aligned")
FAN_WEIGHT_FILES = ("2DFAN4-11f355bf06.pth.tar", "s3fd-619a316812.pth")


def points_from_68(shape) -> dict:
    pts = np.asarray(shape, dtype=np.float64).reshape(68, 2)
    four = (pts[36:42].mean(0), pts[42:48].mean(0), pts[48], pts[54])
    return {k: [round(float(v[0]), 2), round(float(v[1]), 2)] for k, v in zip(POINT_NAMES, four)}


def to_points(landmarks) -> tuple[np.ndarray, ...]:
    """(eye_left, eye_right, mouth_left, mouth_right) from a four-point mapping or a 68x2 array;
    ValueError naming the point that is missing, not [x, y], or not finite."""
    if isinstance(landmarks, dict):
        if "landmarks" in landmarks:  # a whole landmark-file entry
            landmarks = landmarks["landmarks"]
        if not isinstance(landmarks, dict):
            return to_points(landmarks if landmarks is not None else [])
        missing = [k for k in POINT_NAMES if k not in landmarks]
        if missing:
            raise ValueError(f"landmarks lack {missing}")
        pts = tuple(_point(name, landmarks[name]) for name in POINT_NAMES)
    else:
        try:
            arr = np.asarray(landmarks, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"landmarks are not numbers ({exc})") from None
        if arr.shape == (68, 2):
            return to_points(points_from_68(arr))
        if arr.shape != (4, 2):
            raise ValueError(f"landmarks must be a mapping, a 68x2 or a 4x2 array, got shape {arr.shape}")
        pts = tuple(_point(name, p) for name, p in zip(POINT_NAMES, arr))
    for name, p in zip(POINT_NAMES, pts):
        if not np.all(np.isfinite(p)):
            raise ValueError(f"landmark {name} is not finite: {p.tolist()}")
    return pts


def _point(name: str, value) -> np.ndarray:
    try:
        p = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"landmark {name} is not a pair of numbers ({exc})") from None
    if p.shape != (2,):
        raise ValueError(f"landmark {name} is not [x, y]: {value!r}"[:200])
    return p


def canonical_landmarks(width: int, height: int) -> dict:
    """Landmarks whose FFHQ quad is exactly the image (eye distance S/4, eyes-to-mouth S/4).

    The -0.5 turns pixel-edge coordinates into the pixel-centre convention of landmarks.
    """
    s = float(min(width, height))
    eye_y, mouth_y = 0.475 * s - 0.5, 0.725 * s - 0.5
    pts = {"eye_left": [0.375 * s - 0.5, eye_y], "eye_right": [0.625 * s - 0.5, eye_y],
           "mouth_left": [0.4 * s - 0.5, mouth_y], "mouth_right": [0.6 * s - 0.5, mouth_y]}
    return {"landmarks": {k: [round(v[0], 3), round(v[1], 3)] for k, v in pts.items()},
            "n_faces": 1, "boxes": [[0.0, 0.0, float(width), float(height)]], "backend": "aligned"}


def clean_points(landmarks) -> dict:
    """The four named points as [x, y] floats (from any form `to_points` takes); ValueError
    saying what is wrong: a missing point, a point that is not [x, y], NaN or infinity."""
    try:
        points = to_points(landmarks)
    except TypeError as exc:
        raise ValueError(f"landmarks are not numbers ({exc})") from None
    return {k: [float(p[0]), float(p[1])] for k, p in zip(POINT_NAMES, points)}


def check_entry(entry) -> dict:
    """A landmark-file entry in canonical form, or ValueError with the reason.

    Canonical: the four points under `landmarks` (an entry that gives them bare, without the
    wrapper, is wrapped), extra fields kept; `n_faces` and `boxes`, which the filter reads, are
    dropped unless well formed. An entry written as unusable (`landmarks: null` and a
    `problem`) is refused with that problem."""
    if not isinstance(entry, dict):
        raise ValueError("entry is not a JSON object")
    if entry.get("landmarks") is None and entry.get("problem"):
        raise ValueError(str(entry["problem"]))
    if "landmarks" in entry:
        out = dict(entry)
    elif any(k in entry for k in POINT_NAMES):
        out = {k: v for k, v in entry.items() if k not in POINT_NAMES}
        out["landmarks"] = {k: entry[k] for k in POINT_NAMES if k in entry}
    else:
        raise ValueError("no landmarks")
    clean_points(out["landmarks"])
    n_faces = out.get("n_faces")
    if n_faces is not None and (isinstance(n_faces, bool) or not isinstance(n_faces, int)
                                or n_faces < 1):
        del out["n_faces"]
    if "boxes" in out and not _good_boxes(out["boxes"]):
        del out["boxes"]
    return out


def _good_boxes(boxes) -> bool:
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 2 and arr.shape[1] == 4 and len(arr) > 0 and bool(np.isfinite(arr).all())


def read_landmark_file(path) -> tuple[dict, dict]:
    """(usable entries in canonical form, {name: why an entry is unusable}) of a landmark file
    {name: {"landmarks": {...}, ...extra fields}}. One bad entry costs that image only; a file
    that is not a JSON object of entries is a ValueError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not a JSON landmark file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a landmark file is a JSON object keyed by image name")
    entries, problems = {}, {}
    for name, entry in data.items():
        try:
            entries[name] = check_entry(entry)
        except ValueError as exc:
            problems[name] = str(exc)
    return entries, problems


def load_landmark_file(path) -> dict:
    """The usable entries of a landmark file (see read_landmark_file for the unusable ones)."""
    return read_landmark_file(path)[0]


def write_landmark_file(path, table: dict) -> None:
    """Write a landmark file {name: entry} atomically and durably. ASCII JSON, so that names and
    URLs from untrusted sources (lone surrogates included) are written as escapes, never an
    encoding error; NaN is refused rather than written as JSON that strict readers reject."""
    write_json_atomic(path, table, sort_keys=True, allow_nan=False, fsync=True)


def _entry(shapes_and_boxes, backend: str) -> dict | None:
    """Landmark-file entry for the largest face; None when no face was found."""
    if not shapes_and_boxes:
        return None
    area = lambda b: max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])  # noqa: E731
    ordered = sorted(shapes_and_boxes, key=lambda sb: -area(sb[1]))
    return {
        "landmarks": points_from_68(ordered[0][0]),
        "n_faces": len(ordered),
        "boxes": [[round(float(v), 1) for v in b] for _, b in ordered],
        "backend": backend,
    }


class DlibDetector:
    """dlib's HOG face detector and 68-point shape predictor, from the PyPI model package."""

    def __init__(self, upsample: int = 1):
        import dlib

        # The package's __init__ imports pkg_resources; locate its files without importing it.
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the dlib backend needs `pip install face-recognition-models`")
        model = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
        if not model.exists():
            raise RuntimeError(f"dlib's 68-point model is missing: {model}")
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model))
        self.upsample = upsample

    def __call__(self, rgb: np.ndarray) -> dict | None:
        found = []
        for rect in self.detector(rgb, self.upsample):
            shape = self.predictor(rgb, rect)
            pts = [(shape.part(i).x, shape.part(i).y) for i in range(68)]
            found.append((pts, (rect.left(), rect.top(), rect.right(), rect.bottom())))
        return _entry(found, "dlib")


def fan_weights_present() -> bool:
    import torch.hub

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return all((folder / f).exists() for f in FAN_WEIGHT_FILES)


class FanDetector:
    """face-alignment's S3FD detector + 2D FAN; weights come from its own cache or download."""

    def __init__(self, device: str = "cpu"):
        import face_alignment

        self.fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=device, face_detector="sfd", compile=False)

    def __call__(self, rgb: np.ndarray) -> dict | None:
        shapes, _, boxes = self.fa.get_landmarks_from_image(rgb, return_bboxes=True)
        if not shapes:
            return None
        return _entry([(s, b[:4]) for s, b in zip(shapes, boxes)], "face-alignment")


def make_detector(backend: str, device: str = "cpu"):
    if backend == "dlib":
        return DlibDetector()
    if backend == "face-alignment":
        return FanDetector(device)
    raise ValueError(f"backend {backend!r} does not detect; choose from {BACKENDS}")


_worker_detector = None


def _detect_one(task):
    global _worker_detector
    from basics.images import ImageRejected, load_rgb

    raw_dir, name, backend, device = task
    if _worker_detector is None:
        _worker_detector = make_detector(backend, device)
    try:
        rgb = np.asarray(load_rgb(Path(raw_dir) / name))
    except ImageRejected:
        return name, None  # the alignment stage records the decode failure
    return name, _worker_detector(rgb)


def build_landmark_file(raw_dir, out_path, backend="file", source_file=None, workers=1, device="cpu"):
    """Landmarks of every image of `raw_dir` written as a landmark file; returns it."""
    from basics.images import list_images

    names = list_images(raw_dir)
    result = {}
    if backend == "file":
        if not source_file:
            raise ValueError("backend 'file' needs a landmark file")
        given, problems = read_landmark_file(source_file)
        result = {n: given[n] for n in names if n in given}
        # Unusable entries are kept as such, so that the alignment records why (not "no face").
        for n in names:
            if n in problems:
                result[n] = {"landmarks": None, "problem": f"{source_file}: {problems[n]}"}
                print(f"{source_file}: entry {n!r} unusable: {problems[n]}", file=sys.stderr)
    elif backend == "aligned":
        from PIL import Image, UnidentifiedImageError

        for n in tqdm(names, desc="landmarks (aligned)", unit="img", disable=None):
            try:
                with Image.open(Path(raw_dir) / n) as img:  # header only
                    result[n] = canonical_landmarks(*img.size)
            except (OSError, UnidentifiedImageError):
                pass  # the alignment stage records the decode failure
    else:
        tasks = [(str(raw_dir), n, backend, device) for n in names]
        pool = process_pool(workers) if workers > 1 and backend == "dlib" else None
        try:
            results = pool.map(_detect_one, tasks, chunksize=4) if pool else map(_detect_one, tasks)
            for name, entry in tqdm(results, total=len(tasks), desc=f"landmarks ({backend})",
                                    unit="img", disable=None):
                if entry is not None:
                    result[name] = entry
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
    write_landmark_file(out_path, result)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m workflow.dataset.landmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", required=True, help="folder of raw images")
    p.add_argument("--backend", choices=BACKENDS, default="dlib")
    p.add_argument("--file", help="landmark file to read (backend 'file')")
    p.add_argument("--out", required=True, help="landmark file to write")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="cpu", help="torch device for face-alignment")
    add_debug_flag(p)
    a = p.parse_args(argv)
    result = build_landmark_file(a.raw, a.out, a.backend, a.file, a.workers, a.device)
    found = sum(entry.get("landmarks") is not None for entry in result.values())
    print(f"{found} faces found in {a.raw} ({a.backend}) -> {a.out}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
