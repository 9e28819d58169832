"""Config values that make no sense fail at `snakemake -n`, clearly: the schema bounds every
number, and rules/helpers/config.smk checks what must agree across sections."""
import ast
import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture()
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def set_key(cfg, dotted, value):
    node = cfg
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


@pytest.mark.parametrize("key, value", [
    ("blendgan.resolution", 48),               # not a power of two
    ("blendgan.resolution", -32),
    ("finetune.resolution", 100),
    ("psp.input_size", 24),
    ("psp.loss_size", -1),
    ("blendgan.channel_base", -5),
    ("blendgan.style_dim", 0),
    ("style_encoder.pool_size", 0),
    ("blendgan.loop.batch", 0),                # ZeroDivisionError at the first step
    ("style_encoder.loop.total_images", -5),   # exited 0 with an untrained "final" checkpoint
    ("psp.loop.accum", 0),
    ("style_encoder.temperature", 0),          # NaN loss for the whole run
    ("style_encoder.temperature", -0.5),
    ("blendgan.mixing", 1.5),
    ("blendgan.reference_fraction", -0.1),
    ("style_encoder.augment.flip", 2),
    ("blendgan.betas", [0.0, 1.0]),
    ("blendgan.betas", [0.0]),
    ("blendgan.lr", 0),
    ("blendgan.indicator_max", 19),
    ("blendgan.path_decay", 1.5),
    ("psp.num_layers", 7),
    ("blendgan.loop.device", "gpu"),
    ("filter.max_second_face_ratio", 2.0),
])
def test_schema_bounds_every_number(config, key, value):
    set_key(config, key, value)
    with pytest.raises(WorkflowError) as exc:
        validate(config, SCHEMA)
    assert key.split(".")[-1] in str(exc.value)


def test_default_and_paper_configs_pass_the_bounds(config):
    validate(copy.deepcopy(config), SCHEMA)
    paper = yaml.safe_load((ROOT / "workflow" / "configs" / "paper.yaml").read_text())

    def merge(a, b):
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                merge(a[k], v)
            else:
                a[k] = v
    merge(config, paper)
    validate(config, SCHEMA)


def test_cross_check_defaults_are_the_trainers_defaults():
    from models.train.blendgan import BlendGANConfig
    from models.train.finetune import FinetuneConfig
    from models.train.psp import PSPConfig
    from models.train.style_encoder import StyleEncoderConfig
    from models.train.stylegan2 import StyleGAN2Config
    text = (ROOT / "rules" / "helpers" / "config.smk").read_text()
    block = re.search(r"TRAINER_DEFAULTS = (\{.*?\n\})", text, re.S).group(1)
    defaults = ast.literal_eval(block)
    for section, cls in [("style_encoder", StyleEncoderConfig), ("blendgan", BlendGANConfig),
                         ("psp", PSPConfig), ("finetune", FinetuneConfig),
                         ("stylegan2", StyleGAN2Config)]:
        cfg = cls()
        for key, value in defaults[section].items():
            got = getattr(cfg.loop, key) if key in ("batch", "accum") else getattr(cfg, key)
            assert got == value, (section, key)


def dry_run(tmp_path, edits):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for key, value in edits.items():
        set_key(cfg, key, value)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
                           "--directory", str(tmp_path), "-n", "-q"], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("edits, words", [
    ({"style_encoder.style_dim": 64}, "blendgan.style_dim 128 differs from style_encoder.style_dim 64"),
    ({"blendgan.resolution": 512}, "blendgan.resolution 512 is above the largest LMDB size 256"),
    ({"style_encoder.resolution": 512}, "style_encoder.resolution 512 is above"),
    ({"lmdb.sizes": [64, 512]}, "lmdb.sizes go up to 512 but alignment.size is 256"),
    ({"gpus": 3}, "blendgan.loop.batch 4 is not divisible by gpus x blendgan.loop.accum = 3 x 1"),
    ({"blendgan.loop.batch": 0}, "batch"),
    ({"blendgan.stylegan2_checkpoint": "train", "stylegan2.resolution": 64},
     "stylegan2.resolution 64 differs from blendgan.resolution 32"),
])
def test_dry_run_fails_early_on_settings_that_disagree(tmp_path, edits, words):
    proc = dry_run(tmp_path, edits)
    assert proc.returncode != 0 and words in proc.stdout + proc.stderr, proc.stderr[-3000:]


def test_train_mode_puts_the_natural_stylegan2_before_blendgan(tmp_path):
    """blendgan.stylegan2_checkpoint: train -> the DAG trains the StyleGAN2 and both BlendGANs
    start from its output."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    set_key(cfg, "blendgan.stylegan2_checkpoint", "train")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
                           "--directory", str(tmp_path), "-n", "-p",
                           "results/models/blendgan/blendgan.pt",  # train_blendgan, both runs
                           "results/models/blendgan_gram/blendgan_gram.pt"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "rule train_stylegan2:" in out and "fetch_pretrained" not in out
    ckpt = "results/models/stylegan2/stylegan2.pt"
    assert out.count(f'"stylegan2_checkpoint": "{ckpt}"') == 2, out[-3000:]


def _stylegan2_dry_run(tmp_path, n_natural):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    set_key(cfg, "demo.n_natural", n_natural)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
                           "--directory", str(tmp_path), "-n", "-p", "release_stylegan2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_natural_stylegan2_trains_on_the_natural_set_with_its_own_seed(tmp_path):
    """demo.n_natural > 0: the StyleGAN2 reads data/natural/lmdb, generated with seed + 7 so
    that no face set image is in it; 0: it reads the face set."""
    out = _stylegan2_dry_run(tmp_path, 8000)
    assert "--data results/data/natural/lmdb" in out, out[-3000:]
    natural = out.split("rule demo_natural_faces:", 1)[1].split("\nrule ", 1)[0]
    assert "--seed 7 --n-style 0 --n-face 8000" in natural, natural
    assert "rule demo_portraits:" not in out  # the face set itself is not needed

    out = _stylegan2_dry_run(tmp_path, 0)
    assert "--data results/data/face/lmdb" in out and "demo_natural_faces" not in out, out[-3000:]


def test_top_level_seed_reaches_every_trainer(tmp_path):
    """`seed: 1` seeds every trainer; a section's own loop.seed still wins."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["seed"] = 1
    set_key(cfg, "psp.loop.seed", 7)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
                           "--directory", str(tmp_path), "-n", "-p", "all"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seeds = {}
    for block in proc.stdout.split("\nrule ")[1:]:
        name = block.split(":", 1)[0]
        if "--config-json" in block:
            seeds.setdefault(name, []).append(set(re.findall(r'"seed": (\d+)', block)))
    assert seeds == {"train_style_encoder": [{"1"}],
                     "train_blendgan": [{"1"}, {"1"}],  # the main run and the Gram ablation
                     "train_psp": [{"7"}], "finetune_blendgan": [{"1"}]}, seeds
