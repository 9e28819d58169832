# Shared helpers for the .smk files. Never `import workflow` here (Snakemake owns that name).
import json
import os
import shlex

# Every job imports the project from this checkout, so a conda environment (--sdm conda) needs
# no install of it and a run from another --directory finds it too. Set inside the job's shell:
# Snakemake drops PYTHONPATH from the environment of conda jobs. Braces are doubled because
# Snakemake formats the prefix like a shell command.
_CHECKOUT = shlex.quote(workflow.basedir).replace("{", "{{").replace("}", "}}")
shell.prefix("set -euo pipefail; export PYTHONPATH=%s${{PYTHONPATH:+:$PYTHONPATH}}; " % _CHECKOUT)

OUT = config["output_dir"]
DATASETS = ["style", "face"]
WORKERS = config.get("workers", 2)


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def filter_settings(dataset):
    """The filter section with the dataset's own overrides, as one JSON string."""
    merged = dict(config["filter"])
    merged.update(dataset_cfg(dataset).get("filter") or {})
    return json.dumps(merged, sort_keys=True)


def uses_demo():
    return any(dataset_cfg(d)["source"] == "demo" for d in DATASETS)


def raw_dir(dataset):
    """The folder of raw images the data rules read: demo output or the acquired set."""
    if dataset_cfg(dataset)["source"] == "demo":
        return f"{OUT}/demo/{dataset}/raw"
    return acquire_paths(dataset)["images"]


def given_landmarks(dataset):
    """The landmark file a source brings, or [] when landmarks are detected or implied."""
    cfg = dataset_cfg(dataset)
    if cfg.get("landmarks", "file") != "file":
        return []
    source = cfg["source"]
    if source == "demo":
        return f"{OUT}/demo/{dataset}/landmarks.json"
    if source in ACQUIRE_LANDMARK_SOURCES:
        return acquire_paths(dataset)["landmarks"]
    if cfg.get("landmark_file"):
        return cfg["landmark_file"]
    raise ValueError(
        f"datasets.{dataset}.landmarks is 'file' but source {source!r} brings no landmark file: "
        f"set datasets.{dataset}.landmark_file or choose landmarks: dlib | face-alignment | aligned"
    )


def dataset_targets():
    targets = [f"{OUT}/data/{d}/card/card.json" for d in DATASETS]
    targets += [f"{OUT}/data/{d}/lmdb" for d in DATASETS]
    if uses_demo():
        targets.append(f"{OUT}/data/demo_truth_check.json")
    return targets


# ---------------------------------------------------------------- acquisition (rules/acquire.smk)

ACQUIRE_SOURCES = {
    "style": ("demo", "folder", "aahq_json", "artstation"),
    "face": ("demo", "folder", "ffhq_json"),
}
ACQUIRE_LANDMARK_SOURCES = ("aahq_json", "ffhq_json")


def acquire_config(dataset):
    cfg = (config.get("datasets") or {}).get(dataset) or {}
    source = cfg.get("source", "demo")
    if source not in ACQUIRE_SOURCES[dataset]:
        raise ValueError(
            f"datasets.{dataset}.source: {source!r} is not one of {ACQUIRE_SOURCES[dataset]}"
        )
    return cfg


def acquire_source(dataset):
    return acquire_config(dataset).get("source", "demo")


def acquire_enabled(dataset):
    """True when the rule acquire_<dataset> exists (every source but demo)."""
    return acquire_source(dataset) != "demo"


def acquire_dir(dataset):
    return f"{OUT}/acquire/{dataset}"


def acquire_paths(dataset):
    """The outputs of acquire_<dataset> as plain paths: use these as the data rules' inputs
    (keys: manifest, images, and landmarks for the JSON sources)."""
    base = acquire_dir(dataset)
    paths = {"manifest": f"{base}/manifest.jsonl", "images": f"{base}/images"}
    if acquire_source(dataset) in ACQUIRE_LANDMARK_SOURCES:
        paths["landmarks"] = f"{base}/landmarks.json"
    return paths


def acquire_outputs(dataset):
    """The declared outputs of acquire_<dataset> (images/ flagged as a directory)."""
    return {k: directory(v) if k == "images" else v for k, v in acquire_paths(dataset).items()}


def acquire_inputs(dataset):
    cfg = acquire_config(dataset)
    source = cfg.get("source")
    if source == "aahq_json":
        return {"json": cfg["aahq_json"]}
    if source == "ffhq_json":
        return {"json": cfg["ffhq_json"]}
    return {}  # folder: passed as a parameter, so changing the path reruns the job


def _client_flags(delay, download):
    flags = ["--no-progress", "--delay", str(delay)]
    if download.get("timeout") is not None:
        flags += ["--timeout", str(download["timeout"])]
    if download.get("max_retries") is not None:
        flags += ["--max-retries", str(download["max_retries"])]
    for host in download.get("allow_hosts") or ():
        flags += ["--allow-host", str(host)]
    return flags


def acquire_command(dataset):
    """The CLI call (a shell-quoted string) for this dataset's configured source."""
    cfg = acquire_config(dataset)
    source = cfg["source"]
    download = cfg.get("download") or {}
    work = f"{OUT}/acquire/work/{dataset}"
    limit = ["--limit", str(cfg["limit"])] if cfg.get("limit") is not None else []
    common = ["--out", work, "--publish", acquire_dir(dataset)] + limit
    delay = download.get("delay", 1.0)
    if source == "folder":
        # A face folder holds official aligned FFHQ images of one size; a style folder anything.
        size = str(cfg.get("aligned_size") or 0)
        args = ["-m", "workflow.dataset.ffhq", "--folder", cfg["folder"], "--size", size]
        args += ["--label", dataset] + common + _client_flags(delay, download)
    elif source == "aahq_json":
        args = (
            ["-m", "workflow.dataset.aahq", "--json", cfg["aahq_json"]]
            + common
            + _client_flags(delay, download)
        )
    elif source == "ffhq_json":
        args = (
            ["-m", "workflow.dataset.ffhq", "--metadata", cfg["ffhq_json"]]
            + common
            + _client_flags(delay, download)
        )
    elif source == "artstation":
        art = cfg.get("artstation") or {}
        args = (
            ["-m", "workflow.dataset.scrape"]
            + common
            + _client_flags(art.get("delay", delay), download)
        )
        if art.get("base_url"):
            args += ["--base-url", art["base_url"]]
        if art.get("channel"):
            args += ["--channel", str(art["channel"])]
        if art.get("max_projects") is not None:
            args += ["--max-projects", str(art["max_projects"])]
        for sorting in art.get("sortings") or ():
            args += ["--sorting", str(sorting)]
    else:
        raise ValueError(f"no acquisition rule for source {source!r}")
    return "python " + " ".join(shlex.quote(a) for a in args)


# ---------------------------------------------------------------- settings that must agree
# The schema bounds each value; these are the checks across sections, run when the workflow
# is parsed so that `snakemake -n` fails at once, naming the keys, instead of a job failing
# (or silently doing something else) hours later.

# Defaults of the trainers' config dataclasses (models/train/*.py) for keys a section may omit;
# tests/test_config_bounds.py keeps them equal to the dataclasses.
TRAINER_DEFAULTS = {
    "style_encoder": {"style_dim": 512, "resolution": 256, "batch": 256, "accum": 1},
    "blendgan": {"style_dim": 512, "resolution": 1024, "batch": 8, "accum": 1},
    "stylegan2": {"style_dim": 512, "resolution": 1024, "batch": 32, "accum": 1},
    "psp": {"batch": 8, "accum": 1},
    "finetune": {"batch": 1, "accum": 1},
}


def trainer_value(section, key, cfg=None):
    cfg = config.get(section) or {} if cfg is None else cfg
    where = cfg.get("loop") or {} if key in ("batch", "accum") else cfg
    value = where.get(key)
    return TRAINER_DEFAULTS[section][key] if value is None else value


def config_problems():
    problems = []
    largest = max(config["lmdb"]["sizes"])
    aligned = config["alignment"].get("size", 1024)
    if largest > aligned:
        problems.append(
            f"lmdb.sizes go up to {largest} but alignment.size is {aligned}: "
            f"the LMDB would hold upsampled crops"
        )
    blendgans = {"blendgan": config.get("blendgan") or {}}
    ablation = config.get("ablation") or {}
    if ablation.get("enabled"):
        blendgans["ablation.blendgan"] = _overlay(
            config.get("blendgan") or {}, ablation.get("blendgan")
        )
    encoder_dim = trainer_value("style_encoder", "style_dim")
    for name, cfg in blendgans.items():
        res = trainer_value("blendgan", "resolution", cfg)
        if res > largest:
            problems.append(
                f"{name}.resolution {res} is above the largest LMDB size {largest} "
                f"(lmdb.sizes): the training images would be upsampled"
            )
        dim = trainer_value("blendgan", "style_dim", cfg)
        if (
            name == "blendgan"
            and cfg.get("style_embedding", "encoder") == "encoder"
            and dim != encoder_dim
        ):
            problems.append(
                f"blendgan.style_dim {dim} differs from style_encoder.style_dim "
                f"{encoder_dim}: the generator's style mapping reads the encoder's codes"
            )
    if (config.get("blendgan") or {}).get("stylegan2_checkpoint") == "train":
        for key in ("resolution", "style_dim"):
            mine, theirs = trainer_value("stylegan2", key), trainer_value("blendgan", key)
            if mine != theirs:
                problems.append(
                    f"stylegan2.{key} {mine} differs from blendgan.{key} {theirs}: "
                    f"BlendGAN starts from that StyleGAN2 (stylegan2_checkpoint: train)"
                )
        if trainer_value("stylegan2", "resolution") > largest:
            problems.append(f"stylegan2.resolution is above the largest LMDB size {largest}")
    res = trainer_value("style_encoder", "resolution")
    if res > largest:
        problems.append(
            f"style_encoder.resolution {res} is above the largest LMDB size "
            f"{largest} (lmdb.sizes): the training images would be upsampled"
        )
    processes = max(int(config.get("gpus") or 0), 1)
    for section in TRAINER_DEFAULTS:
        batch, accum = trainer_value(section, "batch"), trainer_value(section, "accum")
        if batch % (processes * accum):
            problems.append(
                f"{section}.loop.batch {batch} is not divisible by gpus x "
                f"{section}.loop.accum = {processes} x {accum}"
            )
    return problems


def _overlay(base, overrides):
    out = dict(base)
    for key, value in (overrides or {}).items():
        out[key] = _overlay(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def check_config():
    """Stop at parse time (a dry run included) when config values contradict each other."""
    problems = config_problems()
    if problems:
        raise ValueError("the configuration does not add up:\n  - " + "\n  - ".join(problems))
