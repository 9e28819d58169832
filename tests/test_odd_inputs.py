"""The dataset stage on careless or hostile local input: bad landmark entries, names that collide
or break line-based lists, NaN in a published JSON, killed worker pools, and command lines that
must answer a bad input with one line naming the file and the reason."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_align import LANDMARKS, textured_face  # noqa: E402

from workflow.dataset import aahq, pack  # noqa: E402
from workflow.dataset.align import align_folder, crop_names  # noqa: E402
from workflow.dataset.filter import FilterConfig, filter_records  # noqa: E402
from workflow.dataset.landmarks import build_landmark_file  # noqa: E402
from workflow.dataset.loopback_artstation import FakeArtstation, make_image_bytes  # noqa: E402
from workflow.dataset.manifest import read_records  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HALF = {k: [v[0] / 2, v[1] / 2] for k, v in LANDMARKS.items()}  # on a 320x240 canvas


def raw_folder(root: Path, names) -> Path:
    raw = root / "raw"
    for i, name in enumerate(names):
        path = raw / name
        path.parent.mkdir(parents=True, exist_ok=True)
        textured_face(320, 240, seed=i).save(path, format="PNG" if name.endswith(".png") else "JPEG")
    return raw


# ---------------------------------------------------------------------------- landmark entries
def test_one_bad_landmark_entry_costs_only_its_image(tmp_path):
    names = ["good.png", "nan.png", "inf.png", "missing.png", "bare.png", "notobj.png",
             "oddfaces.png", "strings.png"]
    raw = raw_folder(tmp_path, names)
    given = {
        "good.png": {"landmarks": HALF},
        "nan.png": {"landmarks": {**HALF, "eye_left": [math.nan, 100.0]}},
        "inf.png": {"landmarks": {**HALF, "mouth_left": [math.inf, 1.0]}},
        "missing.png": {"landmarks": {k: v for k, v in HALF.items() if k != "eye_right"}},
        "bare.png": dict(HALF),  # the four points without the `landmarks` wrapper
        "notobj.png": [1, 2, 3],
        "oddfaces.png": {"landmarks": HALF, "n_faces": "two", "boxes": [[1, 2]]},
        "strings.png": {"landmarks": {k: ["a", "b"] for k in HALF}},
    }
    src = tmp_path / "given.json"
    src.write_text(json.dumps(given))  # Python writes NaN and Infinity, as careless tools do
    out = tmp_path / "landmarks.json"
    build_landmark_file(raw, out, backend="file", source_file=src)
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in {out}"))
    records = align_folder(raw, out, tmp_path / "aligned", tmp_path / "records.jsonl", size=64)
    by_name = {r["name"]: r for r in records}
    for name in ("good.png", "bare.png", "oddfaces.png"):
        assert by_name[name]["status"] == "aligned", by_name[name]
    for name in ("nan.png", "inf.png", "missing.png", "notobj.png", "strings.png"):
        assert (by_name[name]["status"], by_name[name]["reason"]) == ("rejected", "bad_landmarks")
        assert "given.json" in by_name[name]["detail"]
    assert "eye_right" in by_name["missing.png"]["detail"]
    # the filter reads what the alignment kept, whatever the landmark file said about faces
    accepted, _, _ = filter_records(records, tmp_path / "aligned", FilterConfig(blur_threshold=0))
    assert set(accepted) >= {"good.png", "bare.png", "oddfaces.png"}


def test_the_aahq_reader_never_writes_nan(tmp_path):
    url = "http://127.0.0.1:9/raw.jpg"
    entries = {f"{i}.png": {"image_url": url.replace("raw", f"r{i}"), "raw_name": f"r{i}.jpg",
                            "landmarks": lm}
               for i, lm in enumerate([HALF, {**HALF, "eye_left": [math.nan, 1]},
                                       {**HALF, "eye_left": ["nan", 1]},
                                       {**HALF, "mouth_right": [math.inf, 1]}])}
    images, bad = aahq.group_entries(entries)
    assert list(images) == ["r0.jpg"] and [a for a, _ in bad] == ["1.png", "2.png", "3.png"]
    assert all("not finite" in why or "bad landmark" in why for _, why in bad), bad


# ------------------------------------------------------------------------------ colliding names
def test_names_differing_in_extension_or_flattening_keep_every_face(tmp_path):
    names = ["x.jpg", "x.png", "a/b.png", "a__b.png", "plain.png"]
    raw = raw_folder(tmp_path, names)
    lm = tmp_path / "lm.json"
    lm.write_text(json.dumps({n: {"landmarks": HALF} for n in names}))
    records = align_folder(raw, lm, tmp_path / "aligned", tmp_path / "r.jsonl", size=32)
    crops = [r["aligned"] for r in records]
    assert all(r["status"] == "aligned" for r in records)
    assert len(set(crops)) == 5 and len(list((tmp_path / "aligned").iterdir())) == 5
    assert crop_names(["plain.png"]) == {"plain.png": "plain.png"}  # the usual name is kept
    pack.pack_lmdb(crops, tmp_path / "aligned", tmp_path / "db", sizes=[16])
    with lmdb.open(str(tmp_path / "db"), readonly=True, lock=False) as env, env.begin() as txn:
        assert txn.get(b"length") == b"5"
        assert len({txn.get(f"16-{i:05d}".encode()) for i in range(5)}) == 5  # five faces


def test_names_with_newlines_and_edge_spaces_pack(tmp_path):
    names = [" lead.png", "trail .png", "new\nline.png", "ok.png"]
    raw = raw_folder(tmp_path, names)
    lm = tmp_path / "lm.json"
    lm.write_text(json.dumps({n: {"landmarks": HALF} for n in names}))
    records = align_folder(raw, lm, tmp_path / "aligned", tmp_path / "r.jsonl", size=32)
    accepted = tmp_path / "accepted.txt"
    accepted.write_text("".join(r["aligned"] + "\n" for r in records))  # as the filter writes it
    subprocess.run([sys.executable, "-m", "workflow.dataset.pack", "--accepted", str(accepted),
                    "--images", str(tmp_path / "aligned"), "--out", str(tmp_path / "db"),
                    "--sizes", "16", "--workers", "1"], cwd=ROOT, check=True, capture_output=True)
    with lmdb.open(str(tmp_path / "db"), readonly=True, lock=False) as env, env.begin() as txn:
        assert txn.get(b"length") == b"4"


def test_aahq_raw_names_differing_in_extension_are_two_files(tmp_path):
    with FakeArtstation() as site:
        site.cat.images["/raw/one.jpg"] = (make_image_bytes(1), "image/jpeg", "one")
        site.cat.images["/raw/two.jpg"] = (make_image_bytes(2), "image/jpeg", "two")
        spec = tmp_path / "aahq.json"
        spec.write_text(json.dumps({
            "0001.png": {"image_url": f"{site.base_url}/raw/one.jpg", "raw_name": "x.jpg",
                         "landmarks": HALF},
            "0002.png": {"image_url": f"{site.base_url}/raw/two.jpg", "raw_name": "x.png",
                         "landmarks": HALF},
            "0003.png": {"image_url": f"{site.base_url}/raw/two.jpg", "raw_name": "y.jpg",
                         "landmarks": {**HALF, "eye_left": [math.nan, 0]}}}))
        out = tmp_path / "out"
        assert aahq.main(["--json", str(spec), "--out", str(out), "--delay", "0", "--no-progress"]) == 0
        recs = {(r["project_id"], r["asset_id"]): r for r in read_records(out / "manifest.jsonl")}
        paths = {recs[("aahq", raw)]["path"] for raw in ("x.jpg", "x.png")}
        assert len(paths) == 2 and all((out / p).is_file() for p in paths)
        assert (out / recs[("aahq", "x.jpg")]["path"]).read_bytes() == make_image_bytes(1)
        assert recs[("aahq_entry", "0003.png")]["status"] == "skipped"  # recorded, with why
        assert "not finite" in recs[("aahq_entry", "0003.png")]["reason"]
        table = json.loads((out / "landmarks.json").read_text())
        assert len(table) == 2


def test_a_file_name_taken_by_another_asset_is_never_overwritten(tmp_path):
    """Ids chosen so that both assets map to the same file stem: the second is recorded as a
    collision, the first file stays."""
    from workflow.dataset.download import Downloader
    from workflow.dataset.http_client import PoliteClient
    from workflow.dataset.manifest import Manifest
    with FakeArtstation() as site:
        site.cat.images["/a.jpg"] = (make_image_bytes(1), "image/jpeg", "a")
        site.cat.images["/b.jpg"] = (make_image_bytes(2), "image/jpeg", "b")
        m = Manifest(tmp_path / "manifest.jsonl")
        d = Downloader(PoliteClient(delay=0), tmp_path, m)
        first = d.download({"project_id": "p_1", "asset_id": "2"}, [site.base_url + "/a.jpg"], "p_1_2")
        second = d.download({"project_id": "p", "asset_id": "1_2"}, [site.base_url + "/b.jpg"], "p_1_2")
        assert first["status"] == "ok" and second["status"] == "skipped"
        assert second["reason"] == "name_collision:p_1/2"
        assert (tmp_path / first["path"]).read_bytes() == make_image_bytes(1)
        m.close()


# ------------------------------------------------------------------------------- worker pools
def children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killed_alignment_leaves_no_worker_behind(tmp_path):
    names = [f"{i:03d}.png" for i in range(40)]
    raw = raw_folder(tmp_path, names[:1])
    for name in names[1:]:
        (raw / name).write_bytes((raw / names[0]).read_bytes())
    lm = tmp_path / "lm.json"
    lm.write_text(json.dumps({n: {"landmarks": HALF} for n in names}))
    proc = subprocess.Popen([sys.executable, "-m", "workflow.dataset.align", "--raw", str(raw),
                             "--landmarks", str(lm), "--out", str(tmp_path / "aligned"),
                             "--records", str(tmp_path / "r.jsonl"), "--size", "256",
                             "--method", "reference", "--workers", "2"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        workers |= children(proc.pid)
        time.sleep(0.05)
    assert len(workers) >= 2, "the pool never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    end = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < end:
        time.sleep(0.1)
    left = [w for w in workers if alive(w)]
    for w in left:  # do not leave them to the machine either
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent"


# ------------------------------------------------------------------------------- command lines
def cli(module, *args, debug=False):
    cmd = [sys.executable, "-m", module, *map(str, args)] + (["--debug"] if debug else [])
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def bad_inputs(tmp: Path) -> list:
    (tmp / "bad.json").write_text("{not json")
    (tmp / "list.json").write_text("[1, 2]")
    (tmp / "raw").mkdir(exist_ok=True)
    (tmp / "records.jsonl").write_text('{"name": "a"}\n{torn')
    (tmp / "reg.yaml").write_text("files: [a: b: c")
    missing = tmp / "missing.json"
    return [
        ("workflow.dataset.aahq", ["--json", tmp / "bad.json", "--out", tmp / "o1"], "bad.json"),
        ("workflow.dataset.aahq", ["--json", tmp / "list.json", "--out", tmp / "o2"], "list.json"),
        ("workflow.dataset.aahq", ["--json", missing, "--out", tmp / "o3"], "missing.json"),
        ("workflow.dataset.ffhq", ["--metadata", tmp / "bad.json", "--out", tmp / "o4"], "bad.json"),
        ("workflow.dataset.ffhq", ["--folder", tmp / "nowhere", "--out", tmp / "o5"], "nowhere"),
        ("workflow.dataset.landmarks", ["--raw", tmp / "raw", "--backend", "file", "--file",
                                        tmp / "bad.json", "--out", tmp / "l.json"], "bad.json"),
        ("workflow.dataset.align", ["--raw", tmp / "raw", "--landmarks", missing, "--out",
                                    tmp / "al", "--records", tmp / "r.jsonl"], "missing.json"),
        ("workflow.dataset.filter", ["--records", tmp / "records.jsonl", "--aligned", tmp / "raw",
                                     "--accepted", tmp / "a.txt", "--rejections", tmp / "rj.jsonl"],
         "records.jsonl"),
        ("workflow.dataset.pack", ["--accepted", missing, "--images", tmp / "raw", "--out",
                                   tmp / "db"], "missing.json"),
        ("workflow.pretrained", ["--registry", tmp / "reg.yaml", "list"], "reg.yaml"),
    ]


def test_command_lines_answer_bad_input_with_one_line(tmp_path):
    for module, args, named in bad_inputs(tmp_path):
        proc = cli(module, *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (module, proc.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], \
            (module, proc.stderr[-2000:])
    module, args, _ = bad_inputs(tmp_path)[0]
    proc = cli(module, *args, debug=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
