"""The demo's ground truth (identity and style of every generated image) as labels of the
packed images, for the probes that may read it (the pipeline itself never does)."""

from __future__ import annotations

import json
from pathlib import Path


def aligned_name(raw: str) -> str:
    """The name an image of the raw dataset has after alignment and packing."""
    return Path(raw).with_suffix("").as_posix().replace("/", "__") + ".png"


def truth_labels(truth_path, dataset: str = "style") -> dict:
    """{packed image name: its truth record ("identity", "style", ...)} of one dataset."""
    truth = json.loads(Path(truth_path).read_text())["datasets"][dataset]
    return {aligned_name(raw): rec for raw, rec in truth.items()}
