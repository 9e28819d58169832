# Style encoder (method 4.1); helpers in helpers/training.smk.


rule train_style_encoder:
    input:
        style=f"{OUT}/data/style/lmdb",
        vgg=pretrained_input(config["style_encoder"].get("vgg_weights")),
    output:
        checkpoint=model_path("style_encoder"),
    log:
        f"{OUT}/logs/train_style_encoder.log",
    benchmark:
        f"{OUT}/benchmarks/train_style_encoder.tsv"
    conda:
        "../envs/train.yaml"
    threads: train_threads("style_encoder")
    resources:
        gpu=int(config.get("gpus", 0)),
    params:
        cfg=train_section("style_encoder"),
        out=lambda w, output: os.path.dirname(output.checkpoint),
        launcher=lambda w, resources: train_launcher("models.train.style_encoder", resources.gpu),
    shell:
        "{params.launcher} --config-json {params.cfg} --set loop.threads={threads}"
        " --data {input.style} --out {params.out} --final {output.checkpoint} > {log} 2>&1"
