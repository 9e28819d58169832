# Helpers of the evaluation rules (rules/evaluate.smk). No `import workflow` here.
# Checkpoints: evaluate.checkpoints.<name> replaces the trained model when set; with
# evaluate.checkpoints.blendgan set, nothing is trained for evaluation ("checkpoint mode") and
# figures whose checkpoint is absent (psp, finetune) are left out.

EVAL = f"{OUT}/eval"
FIGURES = ["latent_transfer", "reference_transfer", "ablation", "oneshot", "latent_grid",
           "reference_grid", "indicator_sweep", "interpolation"]
METRICS = ["fid_kid", "diversity_lpips", "style_consistency", "content_preservation",
           "gram_leakage"]


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


def eval_encoder():
    """E_style's file: its own checkpoint, else the generator that embeds it."""
    return eval_model("style_encoder") or eval_model("blendgan")


def encoder_flag():
    path = eval_model("style_encoder")
    return f"--style-encoder {shlex.quote(path)}" if path else ""


def eval_models_input(wildcards=None):
    """Named inputs of the figure rule: only the checkpoints that exist in this mode."""
    return {n: eval_model(n) for n in ("blendgan", "style_encoder", "psp", "finetune") if eval_model(n)}


def figure_names():
    skip = set()
    if not eval_model("psp"):
        skip |= {"latent_transfer", "reference_transfer"}
    if not eval_model("finetune"):
        skip.add("oneshot")
    return [f for f in FIGURES if f not in skip]


def figure_skip_flag():
    skipped = [f for f in FIGURES if f not in figure_names()]
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


def evaluation_targets():
    targets = [f"{EVAL}/metrics/{m}.json" for m in METRICS]
    targets += [f"{EVAL}/figures/{f}.png" for f in figure_names()]
    targets += [f"{EVAL}/figures/tsne.png", f"{EVAL}/metrics.html", f"{EVAL}/metrics.tsv"]
    return targets


def checkpoint_targets(wildcards=None):
    """Inputs of the figures_from_checkpoints target: refuses to train anything."""
    if not checkpoint_mode():
        raise ValueError("figures_from_checkpoints needs evaluate.checkpoints.blendgan (and "
                         "optionally style_encoder, psp, finetune) set to checkpoint files; "
                         "see docs/evaluation.md")
    return evaluation_targets()
