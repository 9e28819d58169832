"""LPIPS (Zhang et al. 2018, AlexNet variant, v0.1) with every weight read from a file, and the
diversity metric of method 5: mean pairwise LPIPS between the outputs of one face under different
styles.

    python -m workflow.evaluate.lpips convert --alexnet alexnet-owt-7be5be79.pth \
        --linear lpips/weights/v0.1/alex.pth --out lpips_alex.pt
    python -m workflow.evaluate.lpips diversity --samples samples/ --weights lpips_alex.pt --out J

Weights: our state dict (``features.{0,3,6,8,10}.*`` of torchvision's AlexNet and
``lin{0..4}.model.1.weight`` of the lpips package), the lpips package's full ``LPIPS`` state
dict (``net.sliceK.N.*``), or the package's linear layers alone plus ``--backbone`` (torchvision
AlexNet file). Without a file the metric is written as not computed: LPIPS
with a random backbone would be a number without meaning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from basics.files import atomic_output
from models.lpips import LPIPS, load_lpips

from .common import from_uint8, machine, not_computed, return_freed_memory, write_json
from .pairwise_lpips import mean_pairwise
from .sample_sets import open_sets


def convert(alexnet, linear, out):
    """torchvision AlexNet state dict + lpips package linear layers -> one file."""
    net = LPIPS()
    a = torch.load(alexnet, map_location="cpu", weights_only=True)
    sd = {k: v for k, v in a.items() if k.startswith("features.")}
    sd.update(torch.load(linear, map_location="cpu", weights_only=True))
    sd.update({"shift": net.shift, "scale": net.scale})
    net.load_state_dict(sd, strict=True)
    with atomic_output(out) as tmp:
        torch.save(net.state_dict(), tmp)


def diversity(samples, weights, backbone=None) -> dict:
    data = open_sets(samples)
    inputs = {"samples": str(data.path), "weights": str(weights) if weights else None,
              "backbone": str(backbone) if backbone else None}
    if "diversity" not in data:
        return not_computed("diversity_lpips", "samples file has no diversity set", inputs=inputs)
    faces, styles = data["diversity"].shape[:2]
    settings = {"faces": int(faces), "styles_per_face": int(styles),
                "indicator": int(data.scalars["indicator"]), "backbone": "alexnet (LPIPS v0.1)"}
    if not weights or not Path(weights).is_file():
        return not_computed("diversity_lpips", f"no LPIPS weights file ({weights or 'not configured'}):"
                            " set evaluate.lpips_weights", inputs=inputs, settings=settings)
    net = load_lpips(weights, backbone=backbone)
    # one face (S images) read at a time
    per_face = [mean_pairwise(net, from_uint8(data["diversity"][f])) for f in range(faces)]
    return {"metric": "diversity_lpips", "computed": True, "mean": float(np.mean(per_face)),
            "std": float(np.std(per_face)), "per_face": per_face, "inputs": inputs,
            "settings": settings, "machine": machine()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--alexnet", required=True)
    c.add_argument("--linear", required=True)
    c.add_argument("--out", required=True)
    d = sub.add_parser("diversity")
    d.add_argument("--samples", required=True)
    d.add_argument("--weights", default=None, help="LPIPS file (ours, lpips package, or its linear layers)")
    d.add_argument("--backbone", default=None, help="torchvision AlexNet file when --weights has linear layers only")
    d.add_argument("--out", required=True)
    a = p.parse_args(argv)
    return_freed_memory()  # batch buffers go back to the system (common.py)
    if a.cmd == "convert":
        convert(a.alexnet, a.linear, a.out)
        return 0
    weights = None if a.weights in (None, "none", "null", "") else a.weights
    backbone = None if a.backbone in (None, "none", "null", "") else a.backbone
    rec = diversity(a.samples, weights, backbone)
    write_json(a.out, rec)
    print(rec.get("mean", rec.get("reason")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
