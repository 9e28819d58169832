# pSp encoder (method 4.3) against the frozen BlendGAN generator at i = 18, and its probe.


rule train_psp:
    input:
        face=f"{OUT}/data/face/lmdb",
        generator=model_path("blendgan"),
        lpips=pretrained_input(config["psp"].get("lpips_weights")),
        lpips_backbone=pretrained_input(config["psp"].get("lpips_backbone")),
        arcface=pretrained_input(config["psp"].get("arcface_weights")),
    output:
        checkpoint=model_path("psp"),
    log:
        f"{OUT}/logs/train_psp.log",
    benchmark:
        f"{OUT}/benchmarks/train_psp.tsv"
    conda:
        "../envs/train.yaml"
    threads: train_threads("psp")
    resources:
        gpu=int(config.get("gpus", 0)),
    params:
        cfg=train_section("psp"),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.psp", resources.gpu),
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --face {input.face} --generator {input.generator}"
        " --out {params.out} --final {output.checkpoint} > {log} 2>&1"


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
