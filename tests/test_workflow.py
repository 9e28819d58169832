"""End-to-end: the real Snakefile on a small demo config, lint, and kill-then-resume."""
import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "workers": 2,
    "demo": {"n_style": 60, "n_face": 40, "canvas": 448, "identities": 16},
    "alignment": {"size": 128, "method": "fast", "max_pixels": 50_000_000},
    "lmdb": {"sizes": [32, 64, 128], "format": "jpeg", "quality": 95},
}


def tiny_loop(total, every, batch):
    return {"batch": batch, "total_images": total, "log_every": every, "snapshot_every": every,
            "eval_every": every, "threads": 1}


# Training and evaluation cut to seconds: the whole DAG must run, not learn.
TINY_TRAINING = {
    "style_encoder": {"holdout": 12, "loop": tiny_loop(256, 128, 32)},
    "blendgan": {"eval_images": 8, "loop": {**tiny_loop(48, 24, 4), "sample_every": 24}},
    "psp": {"holdout": 6, "eval_images": 6, "loop": {**tiny_loop(24, 12, 4), "sample_every": 12}},
    "finetune": {"loop": {**tiny_loop(4, 2, 1), "sample_every": 2}},
    "ablation": {"faces": 2, "references": 2,
                 "blendgan": {"eval_images": 8, "loop": {**tiny_loop(24, 24, 4), "sample_every": 24}}},
    "evaluate": {"samples": 8, "real_images": 8, "kid_subsets": 10, "diversity_faces": 2,
                 "diversity_styles": 3, "leakage_images": 40, "tsne_images": 60,
                 "figure_faces": 2, "figure_styles": 3, "threads": 1},
}


def merge(cfg: dict, overrides: dict) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            merge(cfg[key], value)
        else:
            cfg[key] = value


def make_workdir(path: Path, overrides=()) -> Path:
    """A working directory holding the default config with the small overrides merged in."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    merge(cfg, SMALL)
    for extra in overrides:
        merge(cfg, extra)
    cfg["output_dir"] = "results"
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return path


def snakemake(workdir: Path, *args, **kw):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# The dataset half of the DAG; the training and evaluation stages have their own end-to-end test.
DATASET_TARGETS = [f"results/data/{d}/{f}" for d in ("style", "face") for f in ("card/card.json", "lmdb")]
DATASET_TARGETS.append("results/data/demo_truth_check.json")


def lmdb_items(path: Path) -> dict:
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return dict(txn.cursor())


def test_lint_is_clean():
    out = snakemake(ROOT, "--lint")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Congratulations" in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    work = make_workdir(tmp_path_factory.mktemp("run"))
    out = snakemake(work, *DATASET_TARGETS)
    assert out.returncode == 0, out.stderr[-4000:]
    return work / "results"


def test_demo_dataset_stage(finished_run):
    data = finished_run / "data"
    truth = json.loads((finished_run / "demo" / "truth.json").read_text())
    for dataset in ("style", "face"):
        card = json.loads((data / dataset / "card" / "card.json").read_text())
        raw = truth["datasets"][dataset]
        assert card["raw_images"] == len(raw)
        assert card["accepted"] + card["rejected"] == len(raw)
        items = lmdb_items(data / dataset / "lmdb")
        assert int(items[b"length"]) == card["accepted"] > 0
        assert {f"{s}-{i:05d}".encode() for s in (32, 64, 128) for i in range(card["accepted"])} <= set(items)
        assert (data / dataset / "card" / "contact_sheet.png").stat().st_size > 1000
        # Every planted defect ends with a recorded reason.
        rejected = {json.loads(line)["name"] for line in (data / dataset / "rejections.jsonl").read_text().splitlines()}
        for name, t in raw.items():
            if t["defect"] and not t["defect"].startswith("duplicate"):
                assert name in rejected, (name, t["defect"])
    check = json.loads((data / "demo_truth_check.json").read_text())
    assert set(check) == {"style", "face"}
    for dataset in ("style", "face"):
        assert check[dataset]["recall"] >= 0.8
        assert check[dataset]["landmark_error_pct_of_size"]["max"] < 1.0
    assert (finished_run / "logs").is_dir() and (finished_run / "benchmarks").is_dir()


def test_kill_and_rerun_gives_identical_outputs(finished_run, tmp_path):
    work = make_workdir(tmp_path / "killed")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2",
           *DATASET_TARGETS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    aligned = work / "results" / "data" / "style" / "aligned"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if aligned.is_dir() and len(list(aligned.glob("*.png"))) >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    snakemake(work, "--unlock")
    out = snakemake(work, "--rerun-incomplete", *DATASET_TARGETS)
    assert out.returncode == 0, out.stderr[-4000:]
    for dataset in ("style", "face"):
        a, b = finished_run / "data" / dataset, work / "results" / "data" / dataset
        for name in ("alignment.jsonl", "accepted.txt", "rejections.jsonl", "card/card.json"):
            assert filecmp.cmp(a / name, b / name, shallow=False), name
        assert lmdb_items(a / "lmdb") == lmdb_items(b / "lmdb")
        assert sorted(p.name for p in (a / "aligned").iterdir()) == sorted(p.name for p in (b / "aligned").iterdir())


@pytest.mark.slow
def test_whole_demo_dag_ends_with_the_report(tmp_path):
    """The default target (data, four trainers, probes, metrics, figures) and the HTML report."""
    work = make_workdir(tmp_path / "all", [TINY_TRAINING])
    out = snakemake(work, "--report-after-run", "--report", "results/report.html")
    assert out.returncode == 0, out.stderr[-6000:]
    res = work / "results"
    from models.checkpoint import load_generator, load_psp_encoder, load_style_encoder

    for name in ("blendgan", "finetune"):
        g = load_generator(res / "models" / name / f"{name}.pt")
        assert g.generate(torch.randn(1, g.style_dim)).shape[-1] == g.resolution
    load_style_encoder(res / "models" / "style_encoder" / "style_encoder.pt")
    load_psp_encoder(res / "models" / "psp" / "psp.pt")
    assert (res / "report.html").stat().st_size > 100_000
    assert any((res / "eval").glob("*.json"))
