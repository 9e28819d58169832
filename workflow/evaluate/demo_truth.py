"""Score the dataset stage against the demo's ground truth (the pipeline itself never reads it).

Reports, per dataset: filter precision and recall on planted defects, the share of clean
images wrongly rejected, whether each defect got the expected reason, and the landmark error
of aligned crops: how far the true eye centres and mouth corners land (through the recorded
FFHQ quad) from where the alignment put the landmarks it was given, in % of the output size.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from basics.files import write_json_atomic
from workflow.dataset.align import source_to_output
from workflow.dataset.landmarks import POINT_NAMES
from workflow.errors import read_jsonl

EXPECTED_REASON = {
    "no_face": {"no_face"},
    "tiny_face": {"low_resolution"},
    "blur": {"blur"},
    "duplicate_exact": {"duplicate"},
    "duplicate_near": {"duplicate"},
    "corrupt": {"decode_error"},
    "truncated": {"decode_error"},
    "oversized": {"too_large"},
    "two_faces": {"multiple_faces"},
}


def score_dataset(truth: dict, records: list[dict], rejections: list[dict], size: int) -> dict:
    rejected = {r["name"]: r["reason"] for r in rejections}
    defect = {n: t.get("defect") for n, t in truth.items()}

    # A duplicate pair is one defect: rejecting either member (and keeping the other) is right.
    predicted = {n: n in rejected for n in truth}
    groups = defaultdict(list)
    for n, t in truth.items():
        if t.get("defect", "") and t["defect"].startswith("duplicate") and t.get("duplicate_of"):
            groups[t["duplicate_of"]].append(n)
    swaps = 0
    for original, copies in groups.items():
        if original in predicted and predicted[original] and rejected.get(original) == "duplicate":
            kept = [c for c in copies if not predicted[c]]
            if kept:
                predicted[original], predicted[kept[0]] = False, True
                rejected[kept[0]] = rejected.pop(original)
                swaps += 1

    tp = sum(predicted[n] and defect[n] is not None for n in truth)
    fp = sum(predicted[n] and defect[n] is None for n in truth)
    fn = sum(not predicted[n] and defect[n] is not None for n in truth)
    clean = sum(defect[n] is None for n in truth)
    per_defect = defaultdict(lambda: {"planted": 0, "rejected": 0, "expected_reason": 0})
    for n, d in defect.items():
        if d is None:
            continue
        row = per_defect[d]
        row["planted"] += 1
        row["rejected"] += predicted[n]
        row["expected_reason"] += rejected.get(n) in EXPECTED_REASON.get(d, set())
    false_reasons = Counter(rejected[n] for n in truth if predicted[n] and defect[n] is None)

    errors = []
    for rec in records:
        t = truth.get(rec["name"])
        if rec.get("status") != "aligned" or t is None or t.get("defect") is not None:
            continue
        quad = np.asarray(rec["quad"], float)
        true_pts = np.array([t["landmarks"][k] for k in POINT_NAMES], float)
        used = np.array([rec["landmarks"][k] for k in POINT_NAMES], float)
        err = np.linalg.norm(source_to_output(true_pts, quad, size) - source_to_output(used, quad, size), axis=1)
        errors.append(err / size * 100.0)
    errors = np.asarray(errors) if errors else np.zeros((0, 4))
    return {
        "images": len(truth),
        "planted_defects": tp + fn,
        "clean": clean,
        "precision": round(tp / max(tp + fp, 1), 4),
        "recall": round(tp / max(tp + fn, 1), 4),
        "clean_wrongly_rejected": round(fp / max(clean, 1), 4),
        "false_rejections_by_reason": dict(false_reasons),
        "duplicate_pairs_kept_the_copy": swaps,
        "per_defect": {k: dict(v) for k, v in sorted(per_defect.items())},
        "landmark_error_pct_of_size": {
            "images": int(errors.shape[0]),
            "mean": round(float(errors.mean()), 4) if errors.size else None,
            "p99": round(float(np.percentile(errors, 99)), 4) if errors.size else None,
            "max": round(float(errors.max()), 4) if errors.size else None,
        },
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m workflow.evaluate.demo_truth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--truth", required=True, help="the demo's truth.json")
    p.add_argument("--data-dir", required=True, help="folder holding <dataset>/alignment.jsonl and rejections.jsonl")
    p.add_argument("--size", type=int, required=True, help="aligned output size")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    truth = json.loads(Path(a.truth).read_text())
    result = {}
    for dataset, items in truth["datasets"].items():
        folder = Path(a.data_dir) / dataset
        if not (folder / "rejections.jsonl").exists():
            continue
        result[dataset] = score_dataset(items, read_jsonl(folder / "alignment.jsonl"),
                                        read_jsonl(folder / "rejections.jsonl"), a.size)
    write_json_atomic(a.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
