# Helpers of the training rules (style_encoder.smk, blendgan.smk, psp.smk). No `import workflow` here.
import json
import os
import shlex


def train_section(name):
    """The config section of one trainer, as a shell-quoted JSON string for --config-json."""
    return shlex.quote(json.dumps(config.get(name) or {}, sort_keys=True))


def train_threads(name):
    return int(((config.get(name) or {}).get("loop") or {}).get("threads") or 1)


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
    targets.append(f"{OUT}/eval/psp_probe.json")
    if uses_demo():
        targets += [f"{OUT}/eval/style_encoder_probe.json", f"{OUT}/eval/blendgan_probe.json"]
    return targets
