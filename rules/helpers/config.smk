# Reading the config: overlays of nested sections (merged), the trainers' defaults, and the checks
# across sections. The schema bounds each value; check_config(), called by the Snakefile right
# after this file is included, checks what must agree across sections, so that `snakemake -n`
# fails at once, naming the keys, instead of a job failing (or silently doing something else)
# hours later. Never `import workflow` here: Snakemake owns that name.


def merged(base, overrides):
    """base with overrides laid over it, nested mappings key by key."""
    out = dict(base)
    for key, value in (overrides or {}).items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


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
        blendgans["ablation.blendgan"] = merged(
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


def check_config():
    """Stop at parse time (a dry run included) when config values contradict each other."""
    problems = config_problems()
    if problems:
        raise ValueError("the configuration does not add up:\n  - " + "\n  - ".join(problems))
