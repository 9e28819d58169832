"""t-SNE, figures, the metric table and the evaluation targets of the workflow (CPU, fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from eval_helpers import make_lmdb, tiny_checkpoints, tiny_gram_checkpoint, write_truth  # noqa: E402

from workflow.evaluate import figures, tables, tsne  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("figs")
    lmdb_path, truth = make_lmdb(root / "style", n=30, size=32)
    return {"root": root, "lmdb": lmdb_path, "truth": write_truth(root / "truth.json", truth),
            "ckpt": {**tiny_checkpoints(root / "models"),
                     "blendgan_gram": tiny_gram_checkpoint(root / "models")}}


def test_tsne_separates_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    x = rng.normal(size=(4, 64))[labels] * 6 + rng.normal(size=(200, 64))
    y, timing = tsne.run_tsne(x, seed=0, threads=1)
    assert y.shape == (200, 2) and timing["n"] == 200
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).mean() > 0.95


@pytest.mark.parametrize("with_truth", [True, False])
def test_tsne_cli(tiny, with_truth):
    out = tiny["root"] / f"tsne_{with_truth}"
    argv = ["--style-encoder", tiny["ckpt"]["style_encoder"], "--style-lmdb", str(tiny["lmdb"]),
            "--clusters", "3", "--threads", "1", "--out-png", str(out) + ".png",
            "--out-json", str(out) + ".json", "--embeddings", str(out) + ".npz"]
    if with_truth:
        argv += ["--truth", str(tiny["truth"])]
    assert tsne.main(argv) == 0
    rec = json.loads(Path(str(out) + ".json").read_text())
    assert rec["settings"]["n"] == 30 and ("true style" in rec["settings"]["colour_by"]) == with_truth
    assert Image.open(str(out) + ".png").size[0] > 500
    assert np.load(str(out) + ".npz")["layout"].shape == (30, 2)
    again = str(tiny["root"] / f"tsne_again_{with_truth}")
    reuse = ["--style-encoder", tiny["ckpt"]["style_encoder"], "--style-lmdb", str(tiny["lmdb"]),
             "--codes", str(out) + ".npz", "--clusters", "3", "--threads", "1",
             "--out-png", again + ".png", "--out-json", again + ".json"]
    assert tsne.main(reuse) == 0 and Path(again + ".png").exists()


def test_all_figures_from_tiny_checkpoints(tiny):
    c, out = tiny["ckpt"], tiny["root"] / "figures"
    assert figures.main(["all", "--blendgan", c["blendgan"], "--style-encoder", c["style_encoder"],
                         "--psp", c["psp"], "--finetune", c["finetune"],
                         "--gram-blendgan", c["blendgan_gram"], "--style-lmdb", str(tiny["lmdb"]),
                         "--face-lmdb", str(tiny["lmdb"]), "--faces", "2", "--styles", "2",
                         "--frames", "2", "--cell", "24", "--out-dir", str(out)]) == 0
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(figures.FIGURES)
    with Image.open(out / "interpolation.gif") as gif:
        assert gif.n_frames == 4
    sweep = Image.open(out / "indicator_sweep.png")
    assert sweep.size[0] == 2 + 19 * 26


def test_figures_skip_and_missing_psp(tiny):
    c, out = tiny["ckpt"], tiny["root"] / "figures_skip"
    assert figures.main(["all", "--blendgan", c["blendgan"], "--style-lmdb", str(tiny["lmdb"]),
                         "--skip", "latent_transfer", "reference_transfer", "oneshot", "ablation",
                         "--faces", "1", "--styles", "2", "--frames", "2", "--cell", "16",
                         "--out-dir", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == len(figures.FIGURES) - 4
    with pytest.raises(SystemExit, match="--psp"):
        figures.main(["latent_transfer", "--blendgan", c["blendgan"], "--style-lmdb", str(tiny["lmdb"]),
                      "--face-lmdb", str(tiny["lmdb"]), "--out", str(out / "x.png")])


def test_metric_table_lists_not_computed_with_reason(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"metric": "diversity_lpips", "computed": False, "reason": "no weights"}))
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"metric": "style_consistency", "computed": True, "matched": 0.9,
                             "shuffled": 0.5, "gap": 0.4, "n": 8, "settings": {"indicator": 6}}))
    tables.main(["--metrics", str(a), str(b), "--tsv", str(tmp_path / "t.tsv"),
                 "--html", str(tmp_path / "t.html")])
    tsv = (tmp_path / "t.tsv").read_text()
    assert "not computed\tno weights" in tsv and "0.4" in tsv
    assert "<table>" in (tmp_path / "t.html").read_text()


def snakemake_dry(tmp_path, target, extra_cfg):
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["output_dir"] = str(tmp_path / "out")
    cfg.setdefault("evaluate", {}).update(extra_cfg)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "-n", "--cores", "2", target],
                          capture_output=True, text=True, timeout=300)


def test_figures_from_checkpoints_trains_nothing(tiny, tmp_path):
    c = tiny["ckpt"]
    res = snakemake_dry(tmp_path, "figures_from_checkpoints",
                        {"checkpoints": {"blendgan": c["blendgan"], "style_encoder": None,
                                         "psp": c["psp"], "finetune": None}})
    assert res.returncode == 0, res.stderr[-2000:]
    jobs = {line.split()[0] for line in res.stdout.splitlines()
            if line.strip() and line.split()[0].startswith(("eval_", "train_", "finetune_"))}
    assert not any(j.startswith(("train_", "finetune_")) for j in jobs)
    assert {"eval_figures", "eval_fid_kid", "eval_tsne"} <= jobs
    assert "oneshot.png" not in res.stdout and "latent_transfer.png" in res.stdout


def test_figures_from_checkpoints_without_checkpoints_fails_clearly(tmp_path):
    res = snakemake_dry(tmp_path, "figures_from_checkpoints", {})
    assert res.returncode != 0 and "evaluate.checkpoints.blendgan" in res.stdout + res.stderr
