# BlendGAN (SPEC 4.2), one-shot fine-tuning (SPEC 4.4) and the BlendGAN probe.


rule train_blendgan:
    input:
        face=f"{OUT}/data/face/lmdb",
        style=f"{OUT}/data/style/lmdb",
        encoder=model_path("style_encoder"),
        init=pretrained_input(config["blendgan"].get("stylegan2_checkpoint")),
    output:
        checkpoint=model_path("blendgan"),
    params:
        cfg=train_section("blendgan"),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.blendgan", resources.gpu),
    log:
        f"{OUT}/logs/train_blendgan.log",
    benchmark:
        f"{OUT}/benchmarks/train_blendgan.tsv"
    threads: train_threads("blendgan")
    resources:
        gpu=int(config.get("gpus", 0)),
    conda:
        "../envs/train.yaml"
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --face {input.face} --style {input.style} --style-encoder {input.encoder}"
        " --out {params.out} --final {output.checkpoint} > {log} 2>&1"


rule finetune_blendgan:
    input:
        checkpoint=model_path("blendgan"),
        face=f"{OUT}/data/face/lmdb",
        style=f"{OUT}/data/style/lmdb",
    output:
        checkpoint=model_path("finetune"),
    params:
        cfg=train_section("finetune"),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.finetune", resources.gpu),
    log:
        f"{OUT}/logs/finetune_blendgan.log",
    benchmark:
        f"{OUT}/benchmarks/finetune_blendgan.tsv"
    threads: train_threads("finetune")
    resources:
        gpu=int(config.get("gpus", 0)),
    conda:
        "../envs/train.yaml"
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --checkpoint {input.checkpoint} --face {input.face} --reference-lmdb {input.style}"
        " --out {params.out} --final {output.checkpoint} > {log} 2>&1"


rule probe_blendgan:
    input:
        checkpoint=model_path("blendgan"),
        encoder=model_path("style_encoder"),
        style=f"{OUT}/data/style/lmdb",
        truth=f"{OUT}/demo/truth.json",
    output:
        probe=f"{OUT}/eval/blendgan_probe.json",
    params:
        stats=f"{OUT}/models/blendgan/stats.jsonl",
    log:
        f"{OUT}/logs/probe_blendgan.log",
    benchmark:
        f"{OUT}/benchmarks/probe_blendgan.tsv"
    threads: 1
    conda:
        "../envs/train.yaml"
    shell:
        "python -m workflow.evaluate.style_probe blendgan --checkpoint {input.checkpoint}"
        " --encoder {input.encoder} --data {input.style} --truth {input.truth}"
        " --stats {params.stats} --out {output.probe} > {log} 2>&1"
