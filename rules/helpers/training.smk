# The trainers (rules/style_encoder.smk, blendgan.smk, psp.smk): their config sections, threads
# and launcher, the model paths and training targets, the two BlendGAN runs (the paper's and the
# Gram ablation), one-shot fine-tuning. Never `import workflow` here: Snakemake owns that name.
import json
import shlex


def seeded(cfg):
    """A trainer section whose loop.seed defaults to the config's top-level seed, so that one
    `seed:` changes every stage (a section's own loop.seed still wins)."""
    return merged({"loop": {"seed": int(config.get("seed", 0))}}, cfg)


def train_section(name):
    """The config section of one trainer, as a shell-quoted JSON string for --config-json."""
    return shlex.quote(json.dumps(seeded(config.get(name) or {}), sort_keys=True))


# ------------------------------------------------ the natural StyleGAN2 BlendGAN starts from
TRAIN_STYLEGAN2 = "train"  # blendgan.stylegan2_checkpoint value: the workflow trains it first


def stylegan2_init():
    """The StyleGAN2 checkpoint BlendGAN starts from: a file, the output of train_stylegan2
    (value "train"), or None (from scratch)."""
    value = (config.get("blendgan") or {}).get("stylegan2_checkpoint")
    return model_path("stylegan2") if value == TRAIN_STYLEGAN2 else value


def blendgan_config(overrides=None):
    """The blendgan section (+ overrides) with stylegan2_checkpoint resolved to a file."""
    cfg = seeded(merged(config.get("blendgan") or {}, overrides))
    cfg["stylegan2_checkpoint"] = stylegan2_init()
    return cfg


def train_threads(name, cfg=None):
    cfg = config.get(name) or {} if cfg is None else cfg
    return int((cfg.get("loop") or {}).get("threads") or 1)


def train_launcher(module, nproc):
    """python -m <module>, or torchrun with one process per GPU of the job's `gpu` resource."""
    nproc = int(nproc or 0)
    if nproc > 1:
        return f"python -m torch.distributed.run --standalone --nproc_per_node={nproc} -m {module}"
    return f"python -m {module}"


def model_path(name):
    return f"{OUT}/models/{name}/{name}.pt"


def training_targets():
    targets = [model_path(n) for n in ("style_encoder", "blendgan", "psp", "finetune")]
    if stylegan2_init() == model_path("stylegan2"):
        targets.append(model_path("stylegan2"))
    targets += [f"{OUT}/eval/psp_probe.json", f"{OUT}/eval/finetune_probe.json"]
    if uses_demo():
        targets += [f"{OUT}/eval/style_encoder_probe.json", f"{OUT}/eval/blendgan_probe.json"]
    return targets


# ------------------------------------------------ the BlendGAN runs (train_blendgan)
# train_blendgan trains both, told apart by its {model} wildcard, the model folder. blendgan is
# the paper's generator (method 4.2); blendgan_gram is supplement D's ablation (z_s = the frozen
# encoder's Gram vector), which the targets ask for only when ablation.enabled.
BLENDGAN_MODELS = ("blendgan", "blendgan_gram")


def ablation_cfg():
    return config.get("ablation") or {}


def ablation_enabled():
    return bool(ablation_cfg().get("enabled"))


def blendgan_run_config(model):
    """The trainer config of one BlendGAN run: the blendgan section, or for blendgan_gram that
    section + ablation.blendgan overrides, with every stylised sample reference-guided."""
    if model == "blendgan":
        return blendgan_config()
    cfg = blendgan_config(ablation_cfg().get("blendgan"))
    cfg.update(style_embedding="gram", reference_fraction=1.0)
    return cfg


def blendgan_section(model):
    """One BlendGAN run's config, as a shell-quoted JSON string for --config-json."""
    return shlex.quote(json.dumps(blendgan_run_config(model), sort_keys=True))


def blendgan_threads(model):
    """blendgan.loop.threads; the ablation's own ablation.blendgan.loop.threads when set."""
    return train_threads("blendgan", blendgan_run_config(model))


def blendgan_priority(model):
    """The paper's generator is the critical path (pSp, fine-tuning and evaluation wait for it):
    it goes before the ablation."""
    return 20 if model == "blendgan" else 0


# ------------------------------------------------ one-shot fine-tuning (finetune_blendgan)
def finetune_reference_file():
    """The fine-tuning reference file, or None for image reference_index of the AAHQ LMDB."""
    ref = (config.get("finetune") or {}).get("reference", "auto")
    if ref == "auto":
        return f"{OUT}/demo/ood/reference.png" if dataset_cfg("style")["source"] == "demo" else None
    return ref


def finetune_inputs(wildcards=None):
    ref = finetune_reference_file()
    return {"reference": ref} if ref else {}


def finetune_section():
    """The finetune section with `reference` resolved to the file the rule reads (or null)."""
    cfg = dict(seeded(config.get("finetune") or {}), reference=finetune_reference_file())
    return shlex.quote(json.dumps(cfg, sort_keys=True))
