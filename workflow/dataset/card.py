"""Dataset card: counts, rejections by reason and a contact sheet of accepted and rejected images."""
from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

from PIL import Image, ImageDraw

from basics.files import atomic_output, atomic_write, write_json_atomic
from basics.images import ImageRejected, load_rgb
from basics.lmdb_format import read_header
from workflow.errors import add_debug_flag, read_jsonl, run_cli

TILE = 96


def _tile(path, label: str, colour) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE + 14), (40, 40, 40))
    if path is not None:
        try:
            img = load_rgb(path)
            img.thumbnail((TILE, TILE))
            tile.paste(img, ((TILE - img.size[0]) // 2, (TILE - img.size[1]) // 2))
        except ImageRejected:
            pass  # unreadable files show as an empty tile with their reason
    draw = ImageDraw.Draw(tile)
    draw.rectangle([0, TILE, TILE, TILE + 14], fill=colour)
    draw.text((2, TILE + 1), label[:16], fill=(255, 255, 255))
    return tile


def contact_sheet(accepted, rejections, records, aligned_dir, raw_dir, n_accepted=32, per_reason=4, seed=0):
    rng = random.Random(seed)
    by_name = {r["name"]: r for r in records}
    tiles = []
    for name in rng.sample(accepted, min(n_accepted, len(accepted))):
        tiles.append(_tile(Path(aligned_dir) / name, "ok", (30, 120, 30)))
    by_reason: dict[str, list] = {}
    for rej in rejections:
        by_reason.setdefault(rej["reason"], []).append(rej)
    for reason in sorted(by_reason):
        for rej in rng.sample(by_reason[reason], min(per_reason, len(by_reason[reason]))):
            rec = by_name.get(rej["name"], {})
            path = Path(aligned_dir) / rec["aligned"] if rec.get("aligned") else Path(raw_dir) / rej["name"]
            tiles.append(_tile(path, reason, (150, 30, 30)))
    cols = 12
    rows = max(1, -(-len(tiles) // cols))
    sheet = Image.new("RGB", (cols * TILE, rows * (TILE + 14)), (20, 20, 20))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * TILE, (i // cols) * (TILE + 14)))
    return sheet


def build_card(name, records, accepted_files, rejections, lmdb_meta=None) -> dict:
    reasons = Counter(r["reason"] for r in rejections)
    return {
        "dataset": name,
        "raw_images": len(records),
        "accepted": len(accepted_files),
        "rejected": len(rejections),
        "acceptance_rate": round(len(accepted_files) / max(len(records), 1), 4),
        "rejections_by_reason": dict(sorted(reasons.items())),
        "lmdb": {k: lmdb_meta[k] for k in ("length", "sizes", "format", "index_width")} if lmdb_meta else None,
    }


def card_markdown(card: dict) -> str:
    lines = [f"# Dataset card: {card['dataset']}", "",
             f"- raw images: {card['raw_images']}",
             f"- accepted: {card['accepted']} ({100 * card['acceptance_rate']:.1f}%)",
             f"- rejected: {card['rejected']}", "", "| reason | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["rejections_by_reason"].items()]
    if card.get("lmdb"):
        lm = card["lmdb"]
        lines += ["", f"LMDB: {lm['length']} images at sizes {lm['sizes']} ({lm['format']})."]
    lines += ["", "![contact sheet](contact_sheet.png)", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m workflow.dataset.card", description=__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--records", required=True)
    p.add_argument("--accepted", required=True)
    p.add_argument("--rejections", required=True)
    p.add_argument("--aligned", required=True)
    p.add_argument("--raw", required=True)
    p.add_argument("--lmdb", help="packed LMDB folder (its metadata record is summarised)")
    p.add_argument("--out-dir", required=True, help="writes card.json, card.md, contact_sheet.png")
    add_debug_flag(p)
    a = p.parse_args(argv)
    records = read_jsonl(a.records, "alignment records")
    accepted = [line.strip() for line in Path(a.accepted).read_text().splitlines() if line.strip()]
    rejections = read_jsonl(a.rejections, "rejections file")
    meta = read_header(a.lmdb)[1] if a.lmdb else None
    out = Path(a.out_dir)
    card = build_card(a.name, records, accepted, rejections, meta)
    sheet = contact_sheet(accepted, rejections, records, a.aligned, a.raw)
    with atomic_output(out / "contact_sheet.png") as tmp:
        sheet.save(tmp, format="PNG")
    write_json_atomic(out / "card.json", card)
    atomic_write(out / "card.md", card_markdown(card))
    print(card_markdown(card))


if __name__ == "__main__":
    sys.exit(run_cli(main))
