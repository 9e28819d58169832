"""The paper-scale overlay and the profiles: schema, trainer configs, the whole DAG in a dry run."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "workflow" / "configs" / "paper.yaml"
PROFILES = ROOT / "workflow" / "profiles"
DEMO_ONLY_RULES = {"demo_portraits", "demo_ood_reference", "demo_truth_check", "probe_style_encoder", "probe_blendgan"}


def merge(base: dict, over: dict) -> dict:
    """Snakemake's --configfile merge: nested mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def paper_config() -> dict:
    return merge(yaml.safe_load((ROOT / "config.yaml").read_text()),
                 yaml.safe_load(PAPER.read_text()))


def dry_run(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "-p",
           "--configfile", str(ROOT / "config.yaml"), str(PAPER), *extra]
    if not any(e.startswith("--profile") for e in extra):
        cmd += ["--cores", "4"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)


def job_counts(stdout: str) -> dict:
    table = stdout.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M) if m.group(1) != "total"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A run folder with the one input the user must supply (the AAHQ list); FFHQ is a folder
    parameter and the pretrained files are downloaded, so neither has to exist for the DAG."""
    wd = tmp_path_factory.mktemp("paper")
    (wd / "data").mkdir()
    (wd / "data" / "aahq-dataset.json").write_text("{}")
    return wd


@pytest.fixture(scope="module")
def paper_dag(workdir):
    """The paper DAG under the workstation profile (one dry run serves both checks)."""
    proc = dry_run(workdir, "--profile", str(PROFILES / "local"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_paper_overlay_validates_against_the_schema():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    cfg = paper_config()
    jsonschema.Draft202012Validator(schema).validate(cfg)
    assert cfg["alignment"]["size"] == 1024 and cfg["lmdb"]["sizes"] == [256, 512, 1024]
    assert cfg["datasets"]["style"]["source"] == "aahq_json"


def test_paper_sections_are_accepted_by_the_trainers():
    from models.train.blendgan import BlendGANConfig
    from models.train.config import from_dict
    from models.train.finetune import FinetuneConfig
    from models.train.psp import PSPConfig
    from models.train.style_encoder import StyleEncoderConfig

    cfg = paper_config()
    enc = from_dict(StyleEncoderConfig, cfg["style_encoder"])
    bg = from_dict(BlendGANConfig, cfg["blendgan"])
    psp = from_dict(PSPConfig, cfg["psp"])
    ft = from_dict(FinetuneConfig, cfg["finetune"])
    # The supplement's numbers (method 4).
    assert (enc.resolution, enc.loop.batch, enc.loop.total_images // enc.loop.batch) \
        == (256, 256, 500_000)
    assert (bg.resolution, bg.loop.batch, bg.loop.total_images // bg.loop.batch) \
        == (1024, 8, 200_000)
    assert (psp.input_size, psp.loop.batch) == (256, 8)
    assert (ft.loop.batch, ft.loop.total_images) == (1, 1000)
    for c in (enc, bg):
        assert (c.lr, tuple(c.betas)) == (0.002, (0.0, 0.99))
    assert enc.vgg_width == 1.0 and bg.alpha_lr_mult == 1.0 and bg.ema_half_life_images == 2_500
    # Every demo shortcut is undone.
    assert bg.channel_base == 16384 and bg.channel_max == 512 and bg.n_mlp == 8
    assert psp.widths == (64, 128, 256, 512) and psp.units is None


def test_paper_pretrained_paths_are_registry_files():
    from workflow.pretrained import load_registry

    files = {f"pretrained/{e.filename}" for e in load_registry().values()}
    cfg = paper_config()
    assert cfg["style_encoder"]["vgg_weights"] in files
    assert cfg["blendgan"]["stylegan2_checkpoint"] in files
    assert set(cfg["pretrained"]["fetch"]) <= set(load_registry())


def test_paper_dry_run_lists_the_whole_dag(paper_dag, tmp_path):
    paper = job_counts(paper_dag)
    demo = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n",
                           "--cores", "4", "--configfile", str(ROOT / "config.yaml")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr[-3000:]
    demo_rules = set(job_counts(demo.stdout))
    # The demo's one pretrained file is the natural StyleGAN2 shipped with the package: no network.
    assert job_counts(demo.stdout)["fetch_pretrained"] == 1
    assert "pretrained/stylegan2-demo-32px.pt" in demo.stdout
    assert "pretrained/stylegan2-ffhq-config-f.pt" not in demo.stdout
    missing = demo_rules - DEMO_ONLY_RULES - set(paper)
    assert not missing, f"rules of the demo DAG absent at paper scale: {missing}"
    assert {"acquire_style", "acquire_face", "train_style_encoder", "train_blendgan",
            "train_psp", "finetune_blendgan", "probe_psp"} <= set(paper)
    for name in ("vgg19-dcbb9e9d.pth", "stylegan2-ffhq-config-f.pt",
                 "pt_inception-2015-12-05-6726825d.pth", "model_ir_se50.pth"):
        assert f"pretrained/{name}" in paper_dag
    assert paper["fetch_pretrained"] == 7
    assert "python -m workflow.pretrained fetch vgg19 --dir pretrained" in paper_dag


def test_paper_dry_run_names_the_missing_user_input(tmp_path):
    proc = dry_run(tmp_path)
    assert proc.returncode != 0
    assert "data/aahq-dataset.json" in proc.stdout + proc.stderr


def _snakemake_long_options() -> set[str]:
    from snakemake.cli import get_argument_parser

    return {o[2:] for a in get_argument_parser()._actions for o in a.option_strings
            if o.startswith("--")}


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_name_valid_options_and_rules(profile, paper_dag):
    cfg = yaml.safe_load((PROFILES / profile / "config.yaml").read_text())
    unknown = set(cfg) - _snakemake_long_options()
    assert not unknown, f"not Snakemake 9 options: {unknown}"
    # Every rule a profile names exists (train_stylegan2 runs only in the train mode, not at paper scale).
    rules = set(job_counts(paper_dag)) | {"train_stylegan2"}
    assert set(cfg.get("set-resources", {})) <= rules
    assert set(cfg.get("set-threads", {})) <= rules
    for rule in ("train_style_encoder", "train_blendgan", "train_psp", "finetune_blendgan"):
        assert cfg["set-resources"][rule]["gpu"] >= 1
    if profile == "slurm":
        assert cfg["executor"] == "slurm" and cfg["retries"] >= 1
        assert {"slurm_partition", "runtime", "mem_mb"} <= set(cfg["default-resources"])


def test_local_profile_sets_gpus_per_training_rule(paper_dag):
    blocks = paper_dag.split("\nrule ")
    train = [b for b in blocks if b.startswith(("train_style_encoder:", "train_blendgan:"))]
    assert len(train) == 3 and all("gpu=4" in b for b in train)  # train_blendgan: two runs


# Rules whose jobs run the networks: every one asks the cluster for a GPU.
GPU_RULES = {"train_style_encoder", "train_blendgan", "train_psp",
             "finetune_blendgan", "eval_samples", "eval_fid_kid", "eval_stargan_v2",
             "eval_ablation_leakage",
             "eval_ablation_figure", "eval_tsne", "eval_figures"}
# Rules that need the internet: local rules, run on the submitting node.
NETWORK_RULES = {"acquire_style", "acquire_face", "fetch_pretrained"}


def job_resources(stdout: str) -> dict[str, dict[str, str]]:
    """rule -> its jobs' resources, from a dry run's job blocks."""
    out = {}
    for block in re.split(r"^(?:local)?rule ", stdout, flags=re.M)[1:]:
        name = block.split(":", 1)[0]
        line = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        if line:
            out[name] = dict(kv.split("=", 1) for kv in line.group(1).split(", "))
    return out


def test_slurm_profile_dry_run(workdir):
    import snakemake_executor_plugin_slurm  # noqa: F401  (the test extra installs it)

    # A dry run caps threads at --cores; a cluster run does not, so give it plenty.
    proc = dry_run(workdir, "--profile", str(PROFILES / "slurm"), "--cores", "256")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resources = job_resources(proc.stdout)
    print("\n".join(f"{rule}: {res}" for rule, res in sorted(resources.items())))  # -s shows them
    assert GPU_RULES | NETWORK_RULES <= set(resources)
    for rule, res in resources.items():
        if rule in GPU_RULES:
            assert int(res["gpu"]) >= 1 and res["slurm_partition"] == "gpu", (rule, res)
            assert res["tasks_per_gpu"] == "0", rule  # torchrun starts the per-GPU processes
        else:
            assert int(res.get("gpu", 0)) == 0 and res["slurm_partition"] == "cpu", (rule, res)
    memory = {rule: int(res["mem_mb"]) for rule, res in resources.items()}
    assert len(set(memory.values())) >= 4 and memory["eval_tables"] < memory["align"]
    assert "cpus_per_task" not in resources["eval_tables"]  # CPUs follow each rule's threads
    assert "--workers 32" in proc.stdout  # set-threads: align at 32 processes


def test_network_rules_are_local_rules():
    """On a cluster, acquisition and downloads run on the submitting node (compute nodes
    usually have no internet); nothing else does."""
    text = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    blocks = re.split(r"^\s*rule\s*(\w*):\s*$", text, flags=re.M)
    local = set()
    for name, body in zip(blocks[1::2], blocks[2::2]):
        name = name or re.search(r"name:\s*\n\s*f?\"(\w+)", body).group(1)
        if re.search(r"^\s*localrule: True", body, flags=re.M):
            local.add(name)
    assert local == {"acquire_", "fetch_pretrained"}  # acquire_{dataset}: one rule per dataset


def _fetch_run(workdir: Path, overlay: dict, *targets: str) -> subprocess.CompletedProcess:
    (workdir / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "1",
           "--keep-going", *targets, "--configfile", str(ROOT / "config.yaml"), str(workdir / "overlay.yaml")]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)


def test_fetch_rule_links_a_user_file_and_fails_clearly_offline(tmp_path):
    """The rule itself, without network: a file the user has is verified and linked; an
    offline fetch of a missing file fails with the URL and where to put the file."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model_ir_se50.pth").write_bytes(b"not really weights")
    proc = _fetch_run(tmp_path, {"pretrained": {"link_from": str(mine), "offline": True,
                                                "fetch": ["ir_se50", "fid_inception"]}},
                      "pretrained/model_ir_se50.pth",
                      "pretrained/pt_inception-2015-12-05-6726825d.pth")
    assert (tmp_path / "pretrained" / "model_ir_se50.pth").read_bytes() == b"not really weights"
    assert (tmp_path / "pretrained" / "model_ir_se50.pth.sha256").exists()  # pinned on first use
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "error: fid_inception: offline" in out
    assert "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" in out
