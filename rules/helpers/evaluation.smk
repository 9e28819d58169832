# The evaluation (rules/evaluate.smk): checkpoints, inputs, flags and targets of its rules.
# Never `import workflow` here: Snakemake owns that name.
# Checkpoints: evaluate.checkpoints.<name> replaces the trained model when set; with
# evaluate.checkpoints.blendgan set, nothing is trained for evaluation ("checkpoint mode") and
# figures whose checkpoint is absent (psp, finetune, blendgan_gram) are left out.
import shlex
import sys

EVAL = f"{OUT}/eval"
# Figures of the eval_figures job; Fig. 4 (ablation.png) has its own rule, since it waits for the
# Gram-embedding generator (rules/blendgan.smk: train_blendgan, model blendgan_gram).
FIGURES = [
    "latent_transfer",
    "reference_transfer",
    "ablation_retrieval",
    "oneshot",
    "latent_grid",
    "reference_grid",
    "indicator_sweep",
    "interpolation",
]
METRICS = [
    "fid_kid",
    "stargan_v2",
    "diversity_lpips",
    "style_consistency",
    "content_preservation",
    "gram_leakage",
    "ablation_leakage",
]

# Cached Inception features of the real sets (workflow.evaluate.fid), keyed by a fingerprint of
# the dataset, the selection and the weights; shared by the FID/KID and StarGAN v2 jobs.
FID_REAL_CACHE = f"{EVAL}/cache/fid_real"


def eval_cfg():
    return config.get("evaluate") or {}


def given_checkpoint(name):
    return (eval_cfg().get("checkpoints") or {}).get(name)


def checkpoint_mode():
    return bool(given_checkpoint("blendgan"))


def eval_model(name):
    """The checkpoint evaluation reads: given, trained, or None (absent in checkpoint mode)."""
    if given_checkpoint(name):
        return given_checkpoint(name)
    if checkpoint_mode():
        return None
    return model_path(name)


def eval_gram_model():
    """The Gram-embedding BlendGAN of the ablation: given, trained (ablation.enabled), or None."""
    if given_checkpoint("blendgan_gram"):
        return given_checkpoint("blendgan_gram")
    if checkpoint_mode() or not ablation_enabled():
        return None
    return model_path("blendgan_gram")


def eval_encoder():
    """E_style's file: its own checkpoint, else the generator that embeds it."""
    return eval_model("style_encoder") or eval_model("blendgan")


def encoder_flag():
    path = eval_model("style_encoder")
    return f"--style-encoder {shlex.quote(path)}" if path else ""


def eval_models_input(wildcards=None):
    """Named inputs of the figure rule: only the checkpoints that exist in this mode."""
    return {
        n: eval_model(n) for n in ("blendgan", "style_encoder", "psp", "finetune") if eval_model(n)
    }


def sampling_models_input(wildcards=None):
    """Inputs of the jobs that draw from the generator (FID/KID, StarGAN v2 protocol): the
    generator and E_style, not pSp or the fine-tuned generator."""
    return {n: eval_model(n) for n in ("blendgan", "style_encoder") if eval_model(n)}


def ablation_models_input(wildcards=None):
    """Inputs of the ablation rules: both generators (the Gram one when there is one)."""
    models = {n: eval_model(n) for n in ("blendgan", "style_encoder") if eval_model(n)}
    if eval_gram_model():
        models["gram"] = eval_gram_model()
    return models


def ablation_setting(key, default=None):
    value = (config.get("ablation") or {}).get(key, default)
    return default if value is None else value


def figure_names():
    skip = set()
    if not eval_model("psp"):
        skip |= {"latent_transfer", "reference_transfer"}
    if not eval_model("finetune"):
        skip.add("oneshot")
    return [f for f in FIGURES if f not in skip]


def figure_skip_flag():
    skipped = [f for f in FIGURES if f not in figure_names()] + ["ablation"]  # its own rule
    return ("--skip " + " ".join(skipped)) if skipped else ""


def optional_flag(flag, name):
    path = eval_model(name)
    return f"{flag} {shlex.quote(path)}" if path else ""


def eval_truth():
    return f"{OUT}/demo/truth.json" if uses_demo() else []


def eval_setting(key, default=None):
    value = eval_cfg().get(key, default)
    return default if value is None else value


def null_flag(flag, value):
    return f"{flag} {value}" if value is not None else ""


def eval_weights_input(key):
    """A weights file named in the evaluate section as an input (so a fetch rule runs first);
    nothing for null or 'auto'."""
    value = eval_cfg().get(key)
    return value if value and value != "auto" else []


def eval_threads():
    return int(eval_setting("threads", 2))


def eval_gpu():
    """GPUs of an evaluation job that runs the networks (samples, FID, ablation, t-SNE,
    figures): one when the config has GPUs and evaluate.device does not force the CPU."""
    return int(int(config.get("gpus", 0)) > 0 and eval_setting("device", "auto") != "cpu")


def evaluation_targets():
    targets = [f"{EVAL}/metrics/{m}.json" for m in METRICS]
    targets += [f"{EVAL}/figures/{f}.png" for f in figure_names()]
    if eval_gram_model():
        targets.append(f"{EVAL}/figures/ablation.png")
    targets += [f"{EVAL}/figures/tsne.png", f"{EVAL}/metrics.html", f"{EVAL}/metrics.tsv"]
    targets.append(f"{EVAL}/results.tsv")
    return targets


def checkpoint_targets(wildcards=None):
    """Inputs of the figures_from_checkpoints target: refuses to train anything."""
    if not checkpoint_mode():
        raise ValueError(
            "figures_from_checkpoints needs evaluate.checkpoints.blendgan (and "
            "optionally style_encoder, psp, finetune) set to checkpoint files; "
            "see docs/evaluation.md"
        )
    if not eval_gram_model() and not NOTED_NO_GRAM:
        NOTED_NO_GRAM.append(True)
        print(
            "figures_from_checkpoints: evaluate.checkpoints.blendgan_gram is not set, so supplement "
            "Fig. 4 (figures/ablation.png) is left out and metrics/ablation_leakage.json says "
            "'not computed'; the embedding-level ablation (ablation_retrieval.png, "
            "gram_leakage.json) is still made.",
            file=sys.stderr,
        )
    return evaluation_targets()


NOTED_NO_GRAM = []  # print the note above once, not once per DAG evaluation
