# The natural StyleGAN2, BlendGAN (method 4.2, and the Gram ablation of supplement D),
# one-shot fine-tuning (method 4.4). Helpers in helpers/training.smk.


rule train_stylegan2:
    input:
        face=stylegan2_faces(),
        init=pretrained_input((config.get("stylegan2") or {}).get("init_checkpoint")),
    output:
        checkpoint=model_path("stylegan2"),
    log:
        f"{OUT}/logs/train_stylegan2.log",
    benchmark:
        f"{OUT}/benchmarks/train_stylegan2.tsv"
    conda:
        "../envs/train.yaml"
    threads: train_threads("stylegan2")
    resources:
        gpu=int(config.get("gpus", 0)),
    params:
        cfg=train_section("stylegan2"),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.stylegan2", resources.gpu),
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --data {input.face} --out {params.out} --final {output.checkpoint} > {log} 2>&1"


rule release_stylegan2:
    """The natural StyleGAN2 as shipped in workflow/assets (registry entry demo_stylegan2):
    `snakemake --cores 2 release_stylegan2` trains it from the stylegan2 section and writes the
    file with its SHA-256 and recipe."""
    input:
        checkpoint=model_path("stylegan2"),
    output:
        model=f"{OUT}/release/stylegan2.pt",
        record=f"{OUT}/release/stylegan2.json",
    log:
        f"{OUT}/logs/release_stylegan2.log",
    benchmark:
        f"{OUT}/benchmarks/release_stylegan2.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    shell:
        "python -m models.train.release {input.checkpoint} --out {output.model}"
        " --record {output.record} > {log} 2>&1"


rule train_blendgan:
    """BlendGAN, both runs: {model} blendgan (the paper's generator) and blendgan_gram
    (supplement D's Gram-embedding ablation); see blendgan_run_config in helpers/training.smk."""
    input:
        face=f"{OUT}/data/face/lmdb",
        style=f"{OUT}/data/style/lmdb",
        encoder=model_path("style_encoder"),
        init=pretrained_input(stylegan2_init()),
    output:
        checkpoint=model_path("{model}"),
    log:
        f"{OUT}/logs/train_{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_{{model}}.tsv"
    wildcard_constraints:
        model="|".join(BLENDGAN_MODELS),
    priority: lambda w: blendgan_priority(w.model)
    conda:
        "../envs/train.yaml"
    threads: lambda w: blendgan_threads(w.model)
    resources:
        gpu=int(config.get("gpus", 0)),
    params:
        cfg=lambda w: blendgan_section(w.model),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.blendgan", resources.gpu),
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --face {input.face} --style {input.style} --style-encoder {input.encoder}"
        " --out {params.out} --final {output.checkpoint} > {log} 2>&1"


rule finetune_blendgan:
    input:
        unpack(finetune_inputs),
        checkpoint=model_path("blendgan"),
        face=f"{OUT}/data/face/lmdb",
        style=f"{OUT}/data/style/lmdb",
    output:
        checkpoint=model_path("finetune"),
    log:
        f"{OUT}/logs/finetune_blendgan.log",
    benchmark:
        f"{OUT}/benchmarks/finetune_blendgan.tsv"
    conda:
        "../envs/train.yaml"
    threads: train_threads("finetune")
    resources:
        gpu=int(config.get("gpus", 0)),
    params:
        cfg=finetune_section(),
        reference=lambda w, input: (
            f"--reference {input.reference}"
            if "reference" in input.keys()
            else f"--reference-lmdb {input.style}"
        ),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.finetune", resources.gpu),
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --checkpoint {input.checkpoint} --face {input.face} {params.reference}"
        " --out {params.out} --final {output.checkpoint} > {log} 2>&1"
