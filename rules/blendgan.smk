# The natural StyleGAN2, BlendGAN (method 4.2), one-shot fine-tuning (method 4.4), the BlendGAN probe.


rule train_stylegan2:
    input:
        face=f"{OUT}/data/face/lmdb",
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
    input:
        face=f"{OUT}/data/face/lmdb",
        style=f"{OUT}/data/style/lmdb",
        encoder=model_path("style_encoder"),
        init=pretrained_input(stylegan2_init()),
    output:
        checkpoint=model_path("blendgan"),
    log:
        f"{OUT}/logs/train_blendgan.log",
    benchmark:
        f"{OUT}/benchmarks/train_blendgan.tsv"
    priority: 20  # the critical path (pSp, fine-tuning, evaluation wait for it): before the ablation
    conda:
        "../envs/train.yaml"
    threads: train_threads("blendgan")
    resources:
        gpu=int(config.get("gpus", 0)),
    params:
        cfg=blendgan_section(),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.blendgan", resources.gpu),
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --face {input.face} --style {input.style} --style-encoder {input.encoder}"
        " --out {params.out} --final {output.checkpoint} > {log} 2>&1"


rule train_blendgan_gram:
    input:
        face=f"{OUT}/data/face/lmdb",
        style=f"{OUT}/data/style/lmdb",
        encoder=model_path("style_encoder"),
        init=pretrained_input(stylegan2_init()),
    output:
        checkpoint=model_path("blendgan_gram"),
    log:
        f"{OUT}/logs/train_blendgan_gram.log",
    benchmark:
        f"{OUT}/benchmarks/train_blendgan_gram.tsv"
    conda:
        "../envs/train.yaml"
    threads: train_threads("blendgan", blendgan_config(ablation_cfg().get("blendgan")))
    resources:
        gpu=int(config.get("gpus", 0)),
    params:
        cfg=gram_blendgan_section(),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.blendgan", resources.gpu),
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --face {input.face} --style {input.style} --style-encoder {input.encoder}"
        " --out {params.out} --final {output.checkpoint} > {log} 2>&1"


rule demo_ood_reference:
    output:
        image=f"{OUT}/demo/ood/reference.png",
        truth=f"{OUT}/demo/ood/reference.json",
    log:
        f"{OUT}/logs/demo_ood_reference.log",
    benchmark:
        f"{OUT}/benchmarks/demo_ood_reference.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        out=lambda w, output: os.path.dirname(output.image),
        seed=config["seed"],
        size=config["alignment"]["size"],
    shell:
        "python -m workflow.demo.ood --out {params.out} --seed {params.seed} --size {params.size}"
        " > {log} 2>&1"


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


rule probe_finetune:
    input:
        base=model_path("blendgan"),
        finetune=model_path("finetune"),
        style=f"{OUT}/data/style/lmdb",
        face=f"{OUT}/data/face/lmdb",
    output:
        probe=f"{OUT}/eval/finetune_probe.json",
    log:
        f"{OUT}/logs/probe_finetune.log",
    benchmark:
        f"{OUT}/benchmarks/probe_finetune.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    params:
        seed=config["seed"],
    shell:
        "python -m workflow.evaluate.finetune_probe --base {input.base} --finetune {input.finetune}"
        " --style-lmdb {input.style} --face-lmdb {input.face} --seed {params.seed}"
        " --out {output.probe} > {log} 2>&1"


rule probe_blendgan:
    input:
        checkpoint=model_path("blendgan"),
        encoder=model_path("style_encoder"),
        style=f"{OUT}/data/style/lmdb",
        truth=f"{OUT}/demo/truth.json",
    output:
        probe=f"{OUT}/eval/blendgan_probe.json",
    log:
        f"{OUT}/logs/probe_blendgan.log",
    benchmark:
        f"{OUT}/benchmarks/probe_blendgan.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    params:
        stats=f"{OUT}/models/blendgan/stats.jsonl",
    shell:
        "python -m workflow.evaluate.style_probe blendgan --checkpoint {input.checkpoint}"
        " --encoder {input.encoder} --data {input.style} --truth {input.truth}"
        " --stats {params.stats} --out {output.probe} > {log} 2>&1"
