"""Filtering, de-duplication, LMDB packing and the dataset card (method 2.4, 2.5)."""
import io
import json

import lmdb
import numpy as np
import pytest
from PIL import Image, ImageFilter

from basics import lmdb_format
from basics.images import ImageRejected, load_rgb
from workflow.dataset import card, pack
from workflow.dataset.filter import FilterConfig, filter_records, main as filter_main


def crop(seed, size=128):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.NEAREST)  # sharp block edges


def record(name, **kw):
    rec = {"name": name, "status": "aligned", "aligned": name, "qsize": 300.0, "padded_fraction": 0.0,
           "eye_distance": 60.0, "eye_to_mouth": 60.0, "source_size": [400, 400], "n_faces": 1}
    rec.update(kw)
    return rec


@pytest.fixture()
def crops(tmp_path):
    imgs = {f"c{i}.png": crop(i) for i in range(6)}
    imgs["blurred.png"] = crop(10).filter(ImageFilter.GaussianBlur(6))
    buf = io.BytesIO()  # a near duplicate: downscaled, re-encoded as JPEG, aligned back to 128
    crop(0).resize((100, 100), Image.LANCZOS).save(buf, "JPEG", quality=85)
    imgs["copy_small.png"] = Image.open(buf).convert("RGB").resize((128, 128), Image.LANCZOS)
    for name, img in imgs.items():
        img.save(tmp_path / name)
    return tmp_path


def test_every_rejection_has_reason_and_value(crops):
    records = [record(f"c{i}.png") for i in range(6)] + [
        record("blurred.png"),
        record("copy_small.png", source_size=[300, 300]),
        record("tiny.png", qsize=40.0),
        record("edge.png", padded_fraction=0.6),
        record("odd.png", eye_distance=200.0),
        record("pair.png", n_faces=2, boxes=[[0, 0, 100, 100], [200, 0, 290, 90]]),
        {"name": "missing.png", "status": "rejected", "reason": "no_face", "aligned": None},
        {"name": "bad.jpg", "status": "rejected", "reason": "decode_error", "detail": "truncated", "aligned": None},
    ]
    accepted, rejections, _ = filter_records(records, crops, FilterConfig(blur_threshold=50.0))
    assert accepted == [f"c{i}.png" for i in range(6)]
    reasons = {r["name"]: r["reason"] for r in rejections}
    assert reasons == {
        "blurred.png": "blur", "copy_small.png": "duplicate", "tiny.png": "low_resolution",
        "edge.png": "padding", "odd.png": "implausible_geometry", "pair.png": "multiple_faces",
        "missing.png": "no_face", "bad.jpg": "decode_error",
    }
    dup = next(r for r in rejections if r["reason"] == "duplicate")
    assert dup["duplicate_of"] == "c0.png" and dup["hamming"] <= dup["threshold"][0]
    assert dup["correlation"] >= dup["threshold"][1]
    blur = next(r for r in rejections if r["reason"] == "blur")
    assert blur["laplacian_var"] < blur["threshold"]


def test_duplicates_keep_the_largest_source(crops):
    records = [record("c0.png", source_size=[200, 200]), record("copy_small.png", source_size=[800, 800])]
    accepted, rejections, _ = filter_records(records, crops, FilterConfig())
    assert accepted == ["copy_small.png"] and rejections[0]["duplicate_of"] == "copy_small.png"


def test_unknown_filter_setting_is_refused():
    with pytest.raises(ValueError, match="blurr"):
        FilterConfig.from_dict({"blurr": 3})


def test_filter_cli_writes_lists(crops, tmp_path):
    recs = tmp_path / "records.jsonl"
    recs.write_text("".join(json.dumps(record(f"c{i}.png")) + "\n" for i in range(3)))
    filter_main(["--records", str(recs), "--aligned", str(crops), "--settings", '{"blur_threshold": 1}',
                 "--accepted", str(tmp_path / "acc.txt"), "--rejections", str(tmp_path / "rej.jsonl"),
                 "--workers", "1"])
    assert (tmp_path / "acc.txt").read_text().split() == ["c0.png", "c1.png", "c2.png"]
    assert (tmp_path / "rej.jsonl").read_text() == ""


def read_like_rosinality(path, resolution, index):
    """What rosinality's MultiResolutionDataset does: length key, zfill(5) keys, PIL decode."""
    env = lmdb.open(str(path), max_readers=32, readonly=True, lock=False, readahead=False, meminit=False)
    with env.begin(write=False) as txn:
        length = int(txn.get("length".encode("utf-8")).decode("utf-8"))
        key = f"{resolution}-{str(index).zfill(5)}".encode("utf-8")
        img = Image.open(io.BytesIO(txn.get(key)))
        img.load()
    env.close()
    return length, img


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_lmdb_reads_like_multiresolution_dataset(crops, tmp_path, fmt):
    names = ["c3.png", "c1.png", "c2.png"]
    out = tmp_path / "db"
    meta = pack.pack_lmdb(names, crops, out, sizes=[32, 64], fmt=fmt, workers=1)
    assert meta["names"] == sorted(names) and not (tmp_path / "db.tmp").exists()
    length, img = read_like_rosinality(out, 64, 1)
    assert length == 3 and img.size == (64, 64) and img.mode == "RGB"
    expected = np.asarray(Image.open(crops / "c2.png").convert("RGB").resize((64, 64), Image.LANCZOS), float)
    tol = 0.5 if fmt == "png" else 6.0
    assert np.abs(np.asarray(img, float) - expected).mean() < tol
    _, small = read_like_rosinality(out, 32, 2)
    assert small.size == (32, 32)


def test_pack_replaces_atomically_and_refuses_empty(crops, tmp_path):
    out = tmp_path / "db"
    pack.pack_lmdb(["c0.png"], crops, out, sizes=[16])
    pack.pack_lmdb(["c0.png", "c1.png"], crops, out, sizes=[16])
    assert read_like_rosinality(out, 16, 1)[0] == 2
    with pytest.raises(ValueError, match="no images"):
        pack.pack_lmdb([], crops, tmp_path / "empty", sizes=[16])
    assert not (tmp_path / "empty").exists()


def test_index_width_grows_past_99999():
    assert lmdb_format.index_width(100_000) == 5 and lmdb_format.index_width(100_001) == 6
    assert lmdb_format.image_key(256, 7) == b"256-00007"


def test_decode_cap_and_corrupt_files(tmp_path):
    Image.new("RGB", (3000, 2000)).save(tmp_path / "big.png")
    with pytest.raises(ImageRejected) as exc:
        load_rgb(tmp_path / "big.png", max_pixels=5_000_000)
    assert exc.value.reason == "too_large"
    crop(1).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    for name in ("cut.jpg", "junk.png"):
        with pytest.raises(ImageRejected) as exc:
            load_rgb(tmp_path / name)
        assert exc.value.reason == "decode_error"


def test_card_counts_and_sheet(crops):
    records = [record("c0.png"), {"name": "x.png", "status": "rejected", "reason": "no_face", "aligned": None}]
    rejections = [{"name": "x.png", "reason": "no_face"}]
    c = card.build_card("style", records, ["c0.png"], rejections)
    assert c["accepted"] == 1 and c["rejections_by_reason"] == {"no_face": 1}
    sheet = card.contact_sheet(["c0.png"], rejections, records, crops, crops)
    assert sheet.size[0] > 0 and "| no_face | 1 |" in card.card_markdown(c)
