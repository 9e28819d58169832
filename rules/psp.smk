# pSp encoder (method 4.3) against the frozen BlendGAN generator at i = 18.


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
