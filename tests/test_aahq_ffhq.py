"""AAHQ JSON and FFHQ (folder / metadata JSON) acquisition, and the acquire rules under Snakemake."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from workflow.dataset import aahq, ffhq
from workflow.dataset.loopback_artstation import FakeArtstation, make_image_bytes
from workflow.dataset.manifest import read_records

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--delay", "0.005", "--timeout", "0.5", "--max-retries", "2", "--backoff", "0.01",
        "--backoff-cap", "0.02", "--no-progress"]


def lm(x):
    return {"eye_left": [x, 10.0], "eye_right": [x + 8, 10.0], "mouth_left": [x + 1, 20.0],
            "mouth_right": [x + 7, 20.0]}


def by_asset(out, project=None):
    return {r["asset_id"]: r for r in read_records(Path(out) / "manifest.jsonl")
            if project is None or r["project_id"] == project}


@pytest.fixture
def aahq_site():
    with FakeArtstation() as site:
        for name in ("a", "b", "c", "d", "e", "bad"):
            site.cat.images[f"/raw/{name}.jpg"] = (make_image_bytes(ord(name[0])), "image/jpeg", name)
        site.cat.images["/raw/evil.jpg"] = (make_image_bytes(5), "image/jpeg", "evil")
        yield site


def aahq_json(site, path):
    u = site.base_url
    entries = {
        "0001.png": {"image_url": f"{u}/raw/a.jpg", "raw_name": "a.jpg", "landmarks": lm(1)},
        "0002.png": {"image_url": f"{u}/raw/b.jpg", "raw_name": "b.jpg", "landmarks": lm(2)},
        "0003.png": {"image_url": f"{u}/raw/b.jpg", "raw_name": "b.jpg", "landmarks": lm(3)},  # 2nd face
        "0004.png": {"image_url": f"{u}/raw/c.jpg", "raw_name": "c.jpg", "landmarks": lm(4)},
        "0005.png": {"image_url": f"{u}/raw/evil.jpg", "raw_name": "../../evil name.jpg",
                     "landmarks": lm(5)},
        "0006.png": {"image_url": f"{u}/raw/bad.jpg", "raw_name": "bad.jpg", "landmarks": lm(6)},
        "0007.png": {"image_url": f"{u}/raw/d.jpg", "raw_name": "d.jpg"},  # no landmarks: ignored
        "0008.png": {"image_url": "file:///etc/passwd", "raw_name": "x.jpg", "landmarks": lm(8)},
        "0009.png": {"image_url": f"{u}/raw/e.jpg", "raw_name": "e.jpg", "landmarks": lm(9)},
    }
    path.write_text(json.dumps(entries))
    return entries


def test_aahq_download_landmarks_resume_and_limit(aahq_site, tmp_path):
    site = aahq_site
    spec = tmp_path / "aahq.json"
    aahq_json(site, spec)
    site.faults["/raw/a.jpg"] = ["503", "reset"]
    site.sticky["/raw/bad.jpg"] = "notimage"
    out = tmp_path / "out"
    assert aahq.main(["--json", str(spec), "--out", str(out), "--limit", "3", *FAST]) == 0
    assert set(by_asset(out, "aahq")) == {"a.jpg", "b.jpg", "c.jpg"}  # first three raw images
    bad = by_asset(out, "aahq_entry")  # unusable entries are recorded with the reason
    assert {k: r["reason"] for k, r in bad.items()} == {
        "0007.png": "bad_entry:landmarks is not a mapping",
        "0008.png": "bad_entry:image_url is not an http(s) URL"}
    assert aahq.main(["--json", str(spec), "--out", str(out), *FAST]) == 0
    recs = by_asset(out, "aahq")
    assert set(recs) == {"a.jpg", "b.jpg", "c.jpg", "../../evil name.jpg", "bad.jpg", "e.jpg"}
    assert recs["a.jpg"]["status"] == "ok" and recs["a.jpg"]["attempts"] == 3
    assert recs["bad.jpg"]["status"] == "failed" and "not_an_image" in recs["bad.jpg"]["reason"]
    assert recs["b.jpg"]["aligned_names"] == ["0002.png", "0003.png"]
    sent = site.images_sent()
    assert sent == {"a": 1, "b": 1, "c": 1, "evil": 1, "e": 1}  # b.jpg once for two faces
    evil = recs["../../evil name.jpg"]
    assert (out / evil["path"]).resolve().parent == (out / "images").resolve()
    table = json.loads((out / "landmarks.json").read_text())
    ok = {Path(r["path"]).relative_to("images").as_posix(): r for r in recs.values() if r["status"] == "ok"}
    assert set(table) == set(ok)
    for rel, entry in table.items():
        assert set(entry["landmarks"]) == {"eye_left", "eye_right", "mouth_left", "mouth_right"}
        assert (out / "images" / rel).is_file()
    b = next(v for v in table.values() if v["raw_name"] == "b.jpg")
    assert b["landmarks"] == lm(2) and [f["landmarks"] for f in b["faces"]] == [lm(2), lm(3)]
    # a rerun fetches only the failure
    before = len(site.requests)
    assert aahq.main(["--json", str(spec), "--out", str(out), *FAST]) == 0
    assert {r.path for r in site.requests[before:]} == {"/raw/bad.jpg"}
    # publishing a smaller selection from the same work folder downloads nothing
    pub = tmp_path / "published"
    for limit in ("3", "2"):
        assert aahq.main(["--json", str(spec), "--out", str(out), "--limit", limit,
                          "--publish", str(pub), *FAST]) == 0
        assert sum(r["project_id"] == "aahq" for r in read_records(pub / "manifest.jsonl")) == int(limit)
        assert len(json.loads((pub / "landmarks.json").read_text())) == int(limit)
        assert len(list((pub / "images").iterdir())) == int(limit)
    assert site.images_sent() == sent


def test_ffhq_folder_verifies_and_links(tmp_path):
    src = tmp_path / "ffhq" / "00000"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(src / f"{i:05d}.png")
    Image.new("RGB", (64, 48)).save(src / "not_square.png")
    Image.new("RGB", (32, 32)).save(src / "small.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    args = ["--folder", str(tmp_path / "ffhq"), "--out", str(out), "--size", "64", "--no-progress"]
    assert ffhq.main(args) == 0
    recs = by_asset(out)
    ok = {k for k, r in recs.items() if r["status"] == "ok"}
    assert ok == {f"00000/{i:05d}.png" for i in range(3)}
    assert recs["00000/not_square.png"]["reason"] == "not_square:64x48"
    assert recs["00000/small.png"]["reason"] == "wrong_size:32x32"
    assert recs["00000/broken.png"]["reason"].startswith("not_an_image")
    for key in ok:
        data = (out / recs[key]["path"]).read_bytes()
        assert data == (tmp_path / "ffhq" / key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == recs[key]["sha256"]
    first = (out / "manifest.jsonl").read_text()
    assert ffhq.main(args) == 0 and (out / "manifest.jsonl").read_text() == first  # idempotent
    out2 = tmp_path / "out2"
    assert ffhq.main(["--folder", str(tmp_path / "ffhq"), "--out", str(out2), "--size", "0",
                      "--limit", "2", "--no-progress"]) == 0
    assert len(by_asset(out2)) == 2


def test_ffhq_metadata_download_and_landmarks(aahq_site, tmp_path):
    site = aahq_site
    pts = np.arange(136, dtype=float).reshape(68, 2)
    meta = {}
    for i, name in enumerate(["a", "b", "c"]):
        body = site.cat.images[f"/raw/{name}.jpg"][0]
        meta[str(i)] = {
            "category": "training",
            "metadata": {"photo_url": f"https://www.flickr.com/photos/x/{i}/", "photo_title": f"t{i}",
                         "author": f"author{i}", "license": "Attribution License"},
            "image": {"file_url": f"{site.base_url}/aligned/{i}.png",
                      "file_path": f"images1024x1024/00000/{i:05d}.png",
                      "file_md5": "0" * 32, "pixel_size": [1024, 1024], "face_landmarks": pts.tolist()},
            "in_the_wild": {"file_url": f"{site.base_url}/raw/{name}.jpg",
                            "file_path": f"in-the-wild-images/00000/{i:05d}.png",
                            "file_md5": hashlib.md5(body).hexdigest() if i != 2 else "f" * 32,
                            "pixel_size": [24, 24], "face_landmarks": (pts + i).tolist()},
        }
    spec = tmp_path / "ffhq-dataset-v2.json"
    spec.write_text(json.dumps(meta))
    out = tmp_path / "out"
    assert ffhq.main(["--metadata", str(spec), "--out", str(out), *FAST]) == 0
    recs = by_asset(out)
    assert recs["0"]["status"] == "ok" and recs["0"]["artist"] == "author0"
    assert recs["2"]["status"] == "failed" and recs["2"]["reason"] == "md5_mismatch"
    table = json.loads((out / "landmarks.json").read_text())
    assert set(table) == {"00000.jpg", "00001.jpg"}
    got = table["00001.jpg"]["landmarks"]
    p = pts + 1
    assert np.allclose(got["eye_left"], p[36:42].mean(0)) and np.allclose(got["eye_right"], p[42:48].mean(0))
    assert got["mouth_left"] == p[48].tolist() and got["mouth_right"] == p[54].tolist()


def test_acquire_rules_under_snakemake(aahq_site, tmp_path):
    spec = tmp_path / "aahq.json"
    aahq_json(aahq_site, spec)
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16), (i * 100, 0, 0)).save(folder / f"{i}.png")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["output_dir"] = "results"  # relative to the working directory, tmp_path
    config["datasets"]["style"].update(
        source="aahq_json", aahq_json=str(spec), limit=2,
        download={"delay": 0.005, "timeout": 1, "max_retries": 1, "allow_hosts": []})
    config["datasets"]["face"].update(source="folder", folder=str(folder), aligned_size=16, landmarks="aligned")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/acquire/{d}/{f}" for d, f in
               (("style", "manifest.jsonl"), ("style", "landmarks.json"), ("face", "manifest.jsonl"))]
    # The real Snakefile, run in tmp_path (where its config.yaml is), asked for the acquired sets.
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-c1",
                           *targets], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    logs = "".join(p.read_text() for p in (tmp_path / "results" / "logs").rglob("*.log"))
    assert proc.returncode == 0, proc.stderr[-3000:] + logs
    style = tmp_path / "results" / "acquire" / "style"
    records = by_asset(style).values()  # bad entries of the list are recorded as skipped, with why
    assert sum(r["status"] == "ok" for r in records) == 2
    assert all(r["reason"].startswith("bad_entry:") for r in records if r["status"] != "ok")
    assert len(json.loads((style / "landmarks.json").read_text())) == 2
    visible = lambda d: [p for p in d.iterdir() if not p.name.startswith(".")]  # noqa: E731
    assert len(visible(style / "images")) == 2  # (Snakemake adds .snakemake_timestamp)
    face = tmp_path / "results" / "acquire" / "face"
    assert len(visible(face / "images")) == 2 and not (face / "landmarks.json").exists()
    assert (tmp_path / "results" / "benchmarks" / "acquire" / "style.tsv").exists()
