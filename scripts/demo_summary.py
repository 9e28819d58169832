"""The demo checks of docs/results.md, read from one run's outputs.

    python scripts/demo_summary.py results [--json]

Prints one line per check (the rows of the results table) from the probe and metric JSON files
of a finished demo run, so a second seed's column is filled the same way as the first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def summary(out: Path) -> dict:
    ev = out / "eval"
    enc = load(ev / "style_encoder_probe.json")
    bg = load(ev / "blendgan_probe.json")
    psp = load(ev / "psp_probe.json")["held_out_reconstruction"]["eval/val_l2"]["points"]
    ft = load(ev / "finetune_probe.json")
    cons = load(ev / "metrics" / "style_consistency.json")
    content = load(ev / "metrics" / "content_preservation.json")["results"]["reference"]
    fid = load(ev / "metrics" / "fid_kid.json")["results"]
    ref_fd = bg["fd_estyle_over_training"]["eval/fd_estyle_reference"]
    order = ("natural", "reference_guided", "latent_guided")
    return {
        "encoder 5-NN style (Gram)": f"{enc['learned_encoder']['knn_style_accuracy']:.2f} "
                                     f"({enc['gram_baseline']['knn_style_accuracy']:.2f})",
        "encoder 5-NN identity": f"{enc['learned_encoder']['knn_identity_accuracy']:.2f}",
        "reference-guided label agreement": f"{bg['reference_guided_label_agreement']:.2f}",
        "agreement per reference style": ", ".join(
            f"{s} {a:.2f}" for s, a in bg.get("agreement_per_reference_style", {}).items()) or "-",
        "style consistency matched vs shuffled": f"{cons['matched']:.2f} vs {cons['shuffled']:.2f}",
        "identity kept (same vs other; share < 0.6)":
            f"{content['similarity']:.3f} vs {content['similarity_mismatched']:.3f}; "
            f"{content['share_same_person_dlib_0.6']:.0%}",
        "FD-Estyle reference start -> end": f"{ref_fd['first']:.2f} -> {ref_fd['last']:.2f}",
        "pSp held-out L2": " -> ".join(f"{p['value']:.3f}" for p in psp),
        "one-shot cos before -> after": f"{ft['before']['reference_cosine']:.2f} -> "
                                        f"{ft['after']['reference_cosine']:.2f}",
        "one-shot natural change": f"{ft['natural_mean_abs_change']:.2f}",
        "DAG FID natural / reference / latent": " / ".join(f"{fid[k]['fid']:.0f}" for k in order)
            + "; calibration " + " / ".join(f"{fid[k]['fid_calibration']:.0f}" for k in order)
            + "; ratio " + " / ".join(f"{fid[k]['fid_ratio']:.1f}" for k in order),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("output_dir", type=Path, help="the run's output_dir (default config: results)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    a = p.parse_args(argv)
    try:
        rows = summary(a.output_dir)
    except (OSError, KeyError, ValueError) as err:
        sys.exit(f"error: {a.output_dir}: not a finished demo run ({err})")
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        for name, value in rows.items():
            print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
