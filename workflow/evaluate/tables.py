"""One table of every metric JSON (TSV + an HTML page the Snakemake report embeds).

    python -m workflow.evaluate.tables --metrics a.json b.json ... --tsv metrics.tsv --html metrics.html

Each row: metric, variant, quantity, value, and the note a reader needs (sample counts, the
weights used, or why the metric was not computed).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path


def rows_of(rec: dict) -> list[tuple]:
    m = rec.get("metric", "?")
    if not rec.get("computed", True):
        return [(m, "", "", "not computed", rec.get("reason", ""))]
    out = []
    if m == "fid_kid":
        for variant, r in rec["results"].items():
            note = f"{r['n_fake']} generated vs {r['n_real']} {r['real_set']}; {rec.get('weights', '')}"
            calibration = f"real half vs real half at n = {r['n_real']}"
            out += [(m, variant, "FID", r["fid"], note),
                    (m, variant, "FID calibration", r["fid_calibration"], calibration),
                    (m, variant, "FID / calibration", r["fid_ratio"] if r["fid_ratio"] is not None
                     else "undefined", "1 = as close as two real halves"),
                    (m, variant, "KID x 1e3", 1e3 * r["kid"], f"std {1e3 * r['kid_std']:.3g}"),
                    (m, variant, "KID x 1e3 calibration", 1e3 * r["kid_calibration"], calibration)]
    elif m == "diversity_lpips":
        s = rec["settings"]
        out.append((m, "latent-guided", "mean pairwise LPIPS", rec["mean"],
                    f"{s['faces']} faces x {s['styles_per_face']} styles, i = {s['indicator']}"))
    elif m == "style_consistency":
        note = f"n = {rec['n']}, i = {rec['settings']['indicator']}"
        out += [(m, "reference-guided", "cosine(E(out), E(ref))", rec["matched"], note),
                (m, "shuffled baseline", "cosine(E(out), E(other ref))", rec["shuffled"], note),
                (m, "gap", "matched - shuffled", rec["gap"], "> 0: outputs follow their own reference")]
    elif m == "content_preservation":
        for variant, r in rec["results"].items():
            note = f"n = {r['n']}, {rec['settings']['backend']}"
            out += [(m, variant, "identity cosine (same face)", r["similarity"], note),
                    (m, variant, "identity cosine (other face)", r["similarity_mismatched"], "baseline"),
                    (m, variant, "dlib distance (same face)", r["distance"], "< 0.6: same person for dlib")]
    elif m == "gram_leakage":
        res = rec["results"]
        for emb in ("learned", "gram"):
            r = res[emb]
            name = "E_style (learned)" if emb == "learned" else "Gram concatenation"
            if "content_r2" in r:
                out.append((m, name, "content R^2 (identity descriptor)", r["content_r2"],
                            f"{r['dim']}-d; lower = less content leakage"))
            for q in ("identity_knn", "style_knn"):
                if q in r:
                    out.append((m, name, q.replace("_knn", " 5-NN accuracy"), r[q],
                                f"chance {res['chance'][q]:.3f}; n = {res['chance']['n']}"))
    elif m == "ablation_leakage":
        for emb, r in rec["results"].items():
            name = "Gram-embedding G" if emb == "gram" else "E_style G (learned)"
            note = f"i = 0, {r['n_outputs']} outputs, {rec['settings']['backend']}"
            out += [(m, name, "reference gap (content leakage)", r["reference_gap"], note),
                    (m, name, "reference retrieval", r["reference_retrieval"],
                     f"chance {r['chance_reference_retrieval']:.3f}; higher = more leakage"),
                    (m, name, "natural gap (own face kept)", r["natural_gap"], note),
                    (m, name, "natural retrieval", r["natural_retrieval"],
                     f"chance {r['chance_natural_retrieval']:.3f}"),
                    (m, name, "reference sensitivity", r["reference_sensitivity"],
                     "pixel std across references; ~0: the reference is ignored")]
    return out


def fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--tsv", required=True)
    p.add_argument("--html", required=True)
    a = p.parse_args(argv)
    rows = []
    for path in a.metrics:
        rows += rows_of(json.loads(Path(path).read_text()))
    head = ("metric", "variant", "quantity", "value", "note")
    Path(a.tsv).write_text("\n".join("\t".join(fmt(c) for c in r) for r in [head] + rows) + "\n")
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>\n" for r in rows)
    Path(a.html).write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Metrics</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 8px;font-size:13px}</style></head><body><h3>Metrics (method 5)</h3><table><tr>"
        + "".join(f"<th>{h}</th>" for h in head) + "</tr>\n" + cells + "</table></body></html>\n")
    print(f"{len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
