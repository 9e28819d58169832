"""LMDB packing compatible with rosinality/stylegan2-pytorch readers (method 2.5).

The keys and records are basics.lmdb_format's. Index order is the sorted file names. The
database is built in a temporary folder and renamed into place only when complete, so a killed
run never leaves a half-written dataset behind.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
from pathlib import Path

import lmdb
from PIL import Image
from tqdm import tqdm

from basics.lmdb_format import header_records, image_key, index_width
from workflow.dataset.pool import process_pool
from workflow.errors import add_debug_flag, read_json, run_cli

FORMATS = {"jpeg": "JPEG", "png": "PNG"}


def encode_sizes(path, sizes, fmt: str = "jpeg", quality: int = 95) -> list[bytes]:
    """The image at `path` resized (Lanczos) to each size and encoded."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        out = []
        for size in sizes:
            resized = img if img.size == (size, size) else img.resize((size, size), Image.LANCZOS)
            buf = io.BytesIO()
            if fmt == "jpeg":
                resized.save(buf, format="JPEG", quality=quality, subsampling=0)  # keep colour detail
            else:
                resized.save(buf, format="PNG")
            out.append(buf.getvalue())
        return out


def _encode_task(args):
    return encode_sizes(*args)


def pack_lmdb(names, image_dir, out_path, sizes, fmt="jpeg", quality=95, workers=1,
              provenance=None, batch=256) -> dict:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    names = sorted(names)
    if not names:
        raise ValueError(f"no images to pack into {out_path}: every image was rejected")
    sizes = sorted(set(int(s) for s in sizes))
    width = index_width(len(names))
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    per_image = max(sum(s * s * 3 for s in sizes), 1 << 16)
    env = lmdb.open(str(tmp), map_size=max(1 << 30, 2 * per_image * len(names)), readahead=False,
                    meminit=False, map_async=True)
    tasks = [(str(Path(image_dir) / n), sizes, fmt, quality) for n in names]
    pool = process_pool(workers) if workers > 1 else None
    try:
        encoded = pool.map(_encode_task, tasks, chunksize=8) if pool else map(_encode_task, tasks)
        txn = env.begin(write=True)
        for index, blobs in enumerate(tqdm(encoded, total=len(tasks), desc=f"pack {out_path.name}",
                                           unit="img", disable=None)):
            for size, blob in zip(sizes, blobs):
                txn.put(image_key(size, index, width), blob)
            if (index + 1) % batch == 0:  # bounded transactions keep memory flat
                txn.commit()
                txn = env.begin(write=True)
        metadata = {
            "length": len(names), "sizes": sizes, "format": fmt, "quality": quality if fmt == "jpeg" else None,
            "index_width": width,
            "note": "index zero-padded to 5 digits" if width == 5 else
                    f"more than 99,999 images: index zero-padded to {width} digits",
            "names": names, "provenance": provenance or {},
        }
        for key, value in header_records(len(names), metadata).items():
            txn.put(key, value)
        txn.commit()
        env.sync()
    finally:
        env.close()
        if pool:
            pool.shutdown(cancel_futures=True)
    if out_path.exists():
        shutil.rmtree(out_path)
    os.replace(tmp, out_path)
    return metadata


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m workflow.dataset.pack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accepted", required=True, help="file with one image file name a line")
    p.add_argument("--images", required=True, help="folder holding those images")
    p.add_argument("--out", required=True, help="LMDB folder to create")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--format", choices=sorted(FORMATS), default="jpeg")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--provenance", help="JSON file stored in the metadata record")
    add_debug_flag(p)
    a = p.parse_args(argv)
    names = [line.strip() for line in Path(a.accepted).read_text().splitlines() if line.strip()]
    prov = read_json(a.provenance, "provenance JSON") if a.provenance else {"source": str(a.images)}
    meta = pack_lmdb(names, a.images, a.out, a.sizes, a.format, a.quality, a.workers, prov)
    print(f"packed {meta['length']} images at sizes {meta['sizes']} into {a.out}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
