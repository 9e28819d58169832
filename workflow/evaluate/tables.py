"""One table of every metric JSON (TSV + an HTML page the Snakemake report embeds).

    python -m workflow.evaluate.tables --metrics a.json b.json ... --tsv metrics.tsv \
        --html metrics.html [--results-tsv results.tsv]

Each row: metric, variant, quantity, value, and the note a reader needs (sample counts, the
weights used, or why the metric was not computed). Above it, the results table in the columns of
the paper and StarGAN v2 (FID and LPIPS, latent- and reference-guided), one row per protocol
(fid_kid.json, stargan_v2.json), each beside its calibration row.
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
            if "fid_full" in r:
                out.append((m, variant, "FID (all vs all)", r["fid_full"],
                            f"{r['n_fake_full']} generated vs {r['n_real_full']} {r['real_set']}"))
    elif m == "stargan_v2":
        for variant, r in rec["results"].items():
            count = f"{r['n_sources']} sources x {r['outputs_per_source']} outputs"
            f = r.get("fid")
            if f is None:
                out.append((m, variant, "FID", "not computed", rec.get("fid_reason", "")))
            else:
                out += [(m, variant, "FID (all vs all)", f["fid_full"],
                         f"{count} vs {f['n_real_full']} AAHQ (StarGAN v2 protocol)"),
                        (m, variant, "FID", f["fid"], f"{f['n_fake']} generated vs real half B"),
                        (m, variant, "FID calibration", f["fid_calibration"],
                         f"real half vs real half at n = {f['n_real']}"),
                        (m, variant, "FID / calibration", f["fid_ratio"] if f["fid_ratio"] is not None
                         else "undefined", "1 = as close as two real halves")]
            lp = r.get("lpips")
            if lp is None:
                out.append((m, variant, "LPIPS", "not computed", rec.get("lpips_reason", "")))
            else:
                out.append((m, variant, "LPIPS", lp["mean"],
                            f"{count}, mean of {lp['pairs_per_source']} pairs per source"))
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


# --------------------------------------------------------------- the paper's results table
RESULT_HEAD = ("protocol", "FID latent-guided", "LPIPS latent-guided", "FID reference-guided",
               "LPIPS reference-guided", "samples", "note")
NA = "not computed"


def _num(d, *keys):
    """d[k1][k2]..., or "not computed" where a level is missing."""
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return NA
        d = d[k]
    return d


def result_rows(records: list[dict]) -> list[tuple]:
    """The columns of the paper's and StarGAN v2's table (FID and LPIPS, latent- and
    reference-guided), one row per protocol of this run, each beside its calibration row."""
    by = {r.get("metric"): r for r in records}
    rows = []
    fk, div, sg = by.get("fid_kid"), by.get("diversity_lpips"), by.get("stargan_v2")
    if fk is not None:
        res = fk.get("results") or {}
        lat, ref = res.get("latent_guided"), res.get("reference_guided")
        lp = div["mean"] if div and div.get("computed") else NA
        lp_note = (f"LPIPS: diversity set, {div['settings']['faces']} faces x "
                   f"{div['settings']['styles_per_face']} styles" if div and div.get("computed")
                   else f"LPIPS: {div.get('reason', 'no diversity metric') if div else 'no diversity metric'}")
        if fk.get("computed"):
            n = lat or ref or {}
            samples = f"{n.get('n_fake_full', '?')} generated vs {n.get('n_real_full', '?')} AAHQ"
            rows.append(("NVIDIA FID protocol (fid_kid.json)", _num(lat, "fid_full"), lp,
                         _num(ref, "fid_full"), "-", samples,
                         f"all outputs vs all reals, full resolution; {lp_note}"))
            rows.append(("  calibration: real half A vs half B", _num(lat, "fid_calibration"), "-",
                         _num(ref, "fid_calibration"), "-",
                         f"n = {n.get('n_real', '?')} per half",
                         f"FID of the outputs vs half B at that n: {fmt(_num(lat, 'fid'))} / "
                         f"{fmt(_num(ref, 'fid'))}"))
        else:
            rows.append(("NVIDIA FID protocol (fid_kid.json)", NA, lp, NA, "-", "", fk.get("reason", "")))
    if sg is not None:
        res = sg.get("results") or {}
        lat, ref = res.get("latent_guided") or {}, res.get("reference_guided") or {}
        if sg.get("computed"):
            n = lat or ref
            samples = (f"{n.get('n_sources', '?')} sources x {n.get('outputs_per_source', '?')} "
                       f"outputs vs {_num(n, 'fid', 'n_real_full')} AAHQ")
            notes = [f"FID: {sg['fid_reason']}" if not sg.get("fid_computed") else "",
                     f"LPIPS: {sg['lpips_reason']}" if not sg.get("lpips_computed") else ""]
            rows.append(("StarGAN v2 protocol (stargan_v2.json)", _num(lat, "fid", "fid_full"),
                         _num(lat, "lpips", "mean"), _num(ref, "fid", "fid_full"),
                         _num(ref, "lpips", "mean"), samples,
                         "; ".join(x for x in notes if x) or "LPIPS: mean pairwise among each source's outputs"))
            if sg.get("fid_computed"):
                rows.append(("  calibration: real half A vs half B",
                             _num(lat, "fid", "fid_calibration"), "-",
                             _num(ref, "fid", "fid_calibration"), "-",
                             f"n = {_num(n, 'fid', 'n_real')} per half",
                             f"FID of the outputs vs half B at that n: "
                             f"{fmt(_num(lat, 'fid', 'fid'))} / {fmt(_num(ref, 'fid', 'fid'))}"))
        else:
            rows.append(("StarGAN v2 protocol (stargan_v2.json)", NA, NA, NA, NA, "", sg.get("reason", "")))
    return rows


def html_table(head, rows) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>\n"
                    for r in rows)
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>\n"
            + cells + "</table>")


def fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--tsv", required=True)
    p.add_argument("--html", required=True)
    p.add_argument("--results-tsv", default=None, help="the paper's results table (FID, LPIPS)")
    a = p.parse_args(argv)
    rows, records = [], []
    for path in a.metrics:
        records.append(json.loads(Path(path).read_text()))
        rows += rows_of(records[-1])
    head = ("metric", "variant", "quantity", "value", "note")
    Path(a.tsv).write_text("\n".join("\t".join(fmt(c) for c in r) for r in [head] + rows) + "\n")
    results = result_rows(records)
    if a.results_tsv:
        Path(a.results_tsv).write_text(
            "\n".join("\t".join(fmt(c) for c in r) for r in [RESULT_HEAD] + results) + "\n")
    summary = ("<h3>Results (method 5): the paper's and StarGAN v2's columns</h3>"
               "<p>FID lower is better, LPIPS (diversity) higher. Counts in the samples column; "
               "small counts bias FID upwards, so read a FID against its calibration row.</p>"
               + html_table(RESULT_HEAD, results)) if results else ""
    Path(a.html).write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Metrics</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:3px 8px;font-size:13px}</style></head><body>" + summary
        + "<h3>Metrics (method 5)</h3>" + html_table(head, rows) + "</body></html>\n")
    print(f"{len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
