# Probes: quick checks of each trained stage, written beside the evaluation (eval/*_probe.json).
# The style encoder's and BlendGAN's compare with the demo's ground truth (demo runs only);
# pSp's reads its training statistics; the fine-tuning one compares it with its base generator.


rule probe_style_encoder:
    input:
        checkpoint=model_path("style_encoder"),
        style=f"{OUT}/data/style/lmdb",
        truth=f"{OUT}/demo/truth.json",
    output:
        probe=f"{OUT}/eval/style_encoder_probe.json",
    log:
        f"{OUT}/logs/probe_style_encoder.log",
    benchmark:
        f"{OUT}/benchmarks/probe_style_encoder.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    shell:
        "python -m workflow.evaluate.style_probe encoder --checkpoint {input.checkpoint}"
        " --data {input.style} --truth {input.truth} --out {output.probe} > {log} 2>&1"


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


rule probe_psp:
    input:
        checkpoint=model_path("psp"),
    output:
        probe=f"{OUT}/eval/psp_probe.json",
    log:
        f"{OUT}/logs/probe_psp.log",
    benchmark:
        f"{OUT}/benchmarks/probe_psp.tsv"
    conda:
        "../envs/train.yaml"
    threads: 1
    params:
        stats=f"{OUT}/models/psp/stats.jsonl",
    shell:
        "python -m workflow.evaluate.style_probe psp --stats {params.stats}"
        " --out {output.probe} > {log} 2>&1"


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
