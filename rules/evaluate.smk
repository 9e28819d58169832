# Evaluation (method 5): sample sets, metrics (JSON), t-SNE, the supplement's figures, the metric
# table, and the targets `evaluation` and `figures_from_checkpoints`. Checkpoints come from the
# training rules or, when evaluate.checkpoints.* are set, from the given files (rules/helpers/evaluation.smk).


rule eval_samples:
    input:
        unpack(eval_models_input),
        style=f"{OUT}/data/style/lmdb",
    output:
        samples=directory(f"{EVAL}/samples"),  # .npy per set + manifest.json (sample_sets.py)
    log:
        f"{OUT}/logs/eval_samples.log",
    benchmark:
        f"{OUT}/benchmarks/eval_samples.tsv"
    conda:
        "../envs/eval.yaml"
    threads: eval_threads()
    resources:
        gpu=eval_gpu(),
    params:
        encoder=encoder_flag(),
        n=eval_setting("samples", 32),
        faces=eval_setting("diversity_faces", 4),
        styles=eval_setting("diversity_styles", 6),
        indicator=eval_setting("indicator", 6),
        truncation=eval_setting("truncation", 1.0),
        size=eval_setting("sample_size", 256),
        device=eval_setting("device", "auto"),
        seed=config["seed"],
    shell:
        "python -m workflow.evaluate.samples --blendgan {input.blendgan} {params.encoder}"
        " --style-lmdb {input.style} --n {params.n} --diversity-faces {params.faces}"
        " --diversity-styles {params.styles} --indicator {params.indicator}"
        " --truncation {params.truncation} --max-size {params.size} --seed {params.seed}"
        " --device {params.device}"
        " --threads {threads} --out {output.samples} > {log} 2>&1"


rule eval_fid_kid:
    input:
        unpack(sampling_models_input),
        weights=eval_weights_input("inception_weights"),
        style=f"{OUT}/data/style/lmdb",
        face=f"{OUT}/data/face/lmdb",
    output:
        metric=report(
            f"{EVAL}/metrics/fid_kid.json",
            caption="../workflow/report/fid_kid.rst",
            category="Metrics",
            subcategory="JSON",
        ),
    log:
        f"{OUT}/logs/eval_fid_kid.log",
    benchmark:
        f"{OUT}/benchmarks/eval_fid_kid.tsv"
    priority: 10  # the longest metric job: start it as soon as the checkpoints exist
    conda:
        "../envs/eval.yaml"
    threads: eval_threads()
    resources:
        gpu=eval_gpu(),
    params:
        encoder=encoder_flag(),
        n=eval_setting("samples", 32),
        n_real=null_flag("--n-real", eval_setting("real_images")),
        indicator=eval_setting("indicator", 6),
        truncation=eval_setting("truncation", 1.0),
        weights=eval_setting("inception_weights", "none"),
        subsets=eval_setting("kid_subsets", 100),
        device=eval_setting("device", "auto"),
        cache=f"{EVAL}/weights",
        real_cache=FID_REAL_CACHE,
        seed=config["seed"],
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow.evaluate.fid --blendgan {input.blendgan}"
        " {params.encoder} --style-lmdb {input.style} --face-lmdb {input.face} --n {params.n}"
        " {params.n_real} --indicator {params.indicator} --truncation {params.truncation}"
        " --weights {params.weights} --cache-dir {params.cache} --real-cache {params.real_cache}"
        " --kid-subsets {params.subsets} --seed {params.seed} --device {params.device}"
        " --threads {threads} --out {output.metric} > {log} 2>&1"


rule eval_stargan_v2:
    input:
        unpack(sampling_models_input),
        weights=eval_weights_input("inception_weights"),
        lpips=eval_weights_input("lpips_weights"),
        backbone=eval_weights_input("lpips_backbone"),
        style=f"{OUT}/data/style/lmdb",
    output:
        metric=report(
            f"{EVAL}/metrics/stargan_v2.json",
            caption="../workflow/report/stargan_v2.rst",
            category="Metrics",
            subcategory="JSON",
        ),
    log:
        f"{OUT}/logs/eval_stargan_v2.log",
    benchmark:
        f"{OUT}/benchmarks/eval_stargan_v2.tsv"
    conda:
        "../envs/eval.yaml"
    threads: eval_threads()
    resources:
        gpu=eval_gpu(),
    params:
        encoder=encoder_flag(),
        sources=eval_setting("stargan_sources", 4),
        outputs=eval_setting("stargan_outputs", 10),
        n_real=null_flag("--n-real", eval_setting("real_images")),
        indicator=eval_setting("indicator", 6),
        truncation=eval_setting("truncation", 1.0),
        weights=eval_setting("inception_weights", "none"),
        lpips=eval_setting("lpips_weights", "none"),
        backbone=eval_setting("lpips_backbone", "none"),
        subsets=eval_setting("kid_subsets", 100),
        device=eval_setting("device", "auto"),
        cache=f"{EVAL}/weights",
        real_cache=FID_REAL_CACHE,
        seed=config["seed"],
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow.evaluate.stargan_v2"
        " --blendgan {input.blendgan} {params.encoder} --style-lmdb {input.style}"
        " --sources {params.sources} --outputs {params.outputs} {params.n_real}"
        " --indicator {params.indicator} --truncation {params.truncation}"
        " --weights {params.weights} --cache-dir {params.cache} --real-cache {params.real_cache}"
        " --lpips-weights {params.lpips} --lpips-backbone {params.backbone}"
        " --kid-subsets {params.subsets} --seed {params.seed} --device {params.device}"
        " --threads {threads} --out {output.metric} > {log} 2>&1"


rule eval_diversity:
    input:
        weights=eval_weights_input("lpips_weights"),
        backbone=eval_weights_input("lpips_backbone"),
        samples=f"{EVAL}/samples",
    output:
        metric=report(
            f"{EVAL}/metrics/diversity_lpips.json",
            caption="../workflow/report/diversity_lpips.rst",
            category="Metrics",
            subcategory="JSON",
        ),
    log:
        f"{OUT}/logs/eval_diversity.log",
    benchmark:
        f"{OUT}/benchmarks/eval_diversity.tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    params:
        weights=eval_setting("lpips_weights", "none"),
        backbone=eval_setting("lpips_backbone", "none"),
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow.evaluate.lpips diversity"
        " --samples {input.samples} --weights {params.weights} --backbone {params.backbone}"
        " --out {output.metric} > {log} 2>&1"


rule eval_consistency:
    input:
        unpack(eval_models_input),
        samples=f"{EVAL}/samples",
    output:
        metric=report(
            f"{EVAL}/metrics/style_consistency.json",
            caption="../workflow/report/style_consistency.rst",
            category="Metrics",
            subcategory="JSON",
        ),
    log:
        f"{OUT}/logs/eval_consistency.log",
    benchmark:
        f"{OUT}/benchmarks/eval_consistency.tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    params:
        encoder=encoder_flag(),
        seed=config["seed"],
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow.evaluate.consistency"
        " --samples {input.samples} --blendgan {input.blendgan} {params.encoder}"
        " --seed {params.seed} --out {output.metric} > {log} 2>&1"


rule eval_content:
    input:
        arcface=eval_weights_input("arcface_weights"),
        samples=f"{EVAL}/samples",
    output:
        metric=report(
            f"{EVAL}/metrics/content_preservation.json",
            caption="../workflow/report/content_preservation.rst",
            category="Metrics",
            subcategory="JSON",
        ),
    log:
        f"{OUT}/logs/eval_content.log",
    benchmark:
        f"{OUT}/benchmarks/eval_content.tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    params:
        arcface=eval_setting("arcface_weights", "none"),
        seed=config["seed"],
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow.evaluate.identity --samples {input.samples}"
        " --arcface {params.arcface} --seed {params.seed} --out {output.metric} > {log} 2>&1"


rule eval_leakage:
    input:
        arcface=eval_weights_input("arcface_weights"),
        encoder=eval_encoder(),
        style=f"{OUT}/data/style/lmdb",
        truth=eval_truth(),
    output:
        metric=report(
            f"{EVAL}/metrics/gram_leakage.json",
            caption="../workflow/report/gram_leakage.rst",
            category="Metrics",
            subcategory="JSON",
        ),
    log:
        f"{OUT}/logs/eval_leakage.log",
    benchmark:
        f"{OUT}/benchmarks/eval_leakage.tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    params:
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
        n=eval_setting("leakage_images", 200),
        arcface=eval_setting("arcface_weights", "none"),
        seed=config["seed"],
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow.evaluate.leakage --style-encoder {input.encoder}"
        " --style-lmdb {input.style} {params.truth} --n {params.n} --arcface {params.arcface}"
        " --seed {params.seed}"
        " --out {output.metric} > {log} 2>&1"


rule eval_ablation_leakage:
    input:
        unpack(ablation_models_input),
        arcface=eval_weights_input("arcface_weights"),
        style=f"{OUT}/data/style/lmdb",
        truth=eval_truth(),
    output:
        metric=report(
            f"{EVAL}/metrics/ablation_leakage.json",
            caption="../workflow/report/ablation_leakage.rst",
            category="Metrics",
            subcategory="JSON",
        ),
    log:
        f"{OUT}/logs/eval_ablation_leakage.log",
    benchmark:
        f"{OUT}/benchmarks/eval_ablation_leakage.tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        gpu=eval_gpu(),
    params:
        encoder=encoder_flag(),
        gram=lambda w, input: input.get("gram", "none"),
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
        faces=ablation_setting("faces", 12),
        references=ablation_setting("references", 8),
        arcface=eval_setting("arcface_weights", "none"),
        device=eval_setting("device", "auto"),
        seed=config["seed"],
    shell:
        "OMP_NUM_THREADS={threads} python -m workflow.evaluate.ablation --blendgan {input.blendgan}"
        " {params.encoder} --gram-blendgan {params.gram} --style-lmdb {input.style} {params.truth}"
        " --faces {params.faces} --references {params.references} --arcface {params.arcface}"
        " --seed {params.seed} --device {params.device} --threads {threads}"
        " --out {output.metric} > {log} 2>&1"


rule eval_ablation_figure:
    input:
        unpack(ablation_models_input),
        style=f"{OUT}/data/style/lmdb",
        truth=eval_truth(),
    output:
        png=report(
            f"{EVAL}/figures/ablation.png",
            caption="../workflow/report/ablation.rst",
            category="Figures",
            subcategory="ablation",
        ),
    log:
        f"{OUT}/logs/eval_ablation_figure.log",
    benchmark:
        f"{OUT}/benchmarks/eval_ablation_figure.tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    resources:
        gpu=eval_gpu(),
    params:
        encoder=encoder_flag(),
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
        faces=eval_setting("figure_faces", 4),
        styles=eval_setting("figure_styles", 5),
        device=eval_setting("device", "auto"),
        seed=config["seed"],
    shell:
        "python -m workflow.evaluate.figures ablation --blendgan {input.blendgan} {params.encoder}"
        " --gram-blendgan {input.gram} --style-lmdb {input.style} {params.truth}"
        " --faces {params.faces} --styles {params.styles} --seed {params.seed}"
        " --device {params.device} --threads {threads} --out {output.png} > {log} 2>&1"


rule eval_tsne:
    input:
        encoder=eval_encoder(),
        style=f"{OUT}/data/style/lmdb",
        truth=eval_truth(),
    output:
        png=report(
            f"{EVAL}/figures/tsne.png",
            caption="../workflow/report/tsne.rst",
            category="Figures",
            subcategory="Supplement Fig. 1",
        ),
        json=f"{EVAL}/figures/tsne.json",
    log:
        f"{OUT}/logs/eval_tsne.log",
    benchmark:
        f"{OUT}/benchmarks/eval_tsne.tsv"
    conda:
        "../envs/eval.yaml"
    threads: eval_threads()
    resources:
        gpu=eval_gpu(),
    params:
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
        n=null_flag("--n", eval_setting("tsne_images")),
        device=eval_setting("device", "auto"),
        seed=config["seed"],
    shell:
        "python -m workflow.evaluate.tsne --style-encoder {input.encoder} --style-lmdb {input.style}"
        " {params.truth} {params.n} --threads {threads} --seed {params.seed}"
        " --device {params.device} --out-png {output.png} --out-json {output.json} > {log} 2>&1"


rule eval_figures:
    input:
        unpack(eval_models_input),
        style=f"{OUT}/data/style/lmdb",
        face=f"{OUT}/data/face/lmdb",
    output:
        **{
            f: report(
                f"{EVAL}/figures/{f}.png",
                caption=f"../workflow/report/{f}.rst",
                category="Figures",
                subcategory=f,
            )
            for f in figure_names()
        },
        gif=report(
            f"{EVAL}/figures/interpolation.gif",
            caption="../workflow/report/interpolation.rst",
            category="Figures",
            subcategory="interpolation",
        ),
    log:
        f"{OUT}/logs/eval_figures.log",
    benchmark:
        f"{OUT}/benchmarks/eval_figures.tsv"
    conda:
        "../envs/eval.yaml"
    threads: eval_threads()
    resources:
        gpu=eval_gpu(),
    params:
        encoder=encoder_flag(),
        psp=optional_flag("--psp", "psp"),
        finetune=optional_flag("--finetune", "finetune"),
        skip=figure_skip_flag(),
        outdir=lambda w, output: os.path.dirname(output.gif),
        faces=eval_setting("figure_faces", 4),
        styles=eval_setting("figure_styles", 5),
        seed=config["seed"],
        device=eval_setting("device", "auto"),
    shell:
        "python -m workflow.evaluate.figures all --blendgan {input.blendgan} {params.encoder}"
        " {params.psp} {params.finetune} {params.skip} --style-lmdb {input.style}"
        " --face-lmdb {input.face} --faces {params.faces} --styles {params.styles}"
        " --seed {params.seed} --device {params.device} --threads {threads}"
        " --out-dir {params.outdir} > {log} 2>&1"


rule eval_tables:
    input:
        metrics=expand(f"{EVAL}/metrics/{{m}}.json", m=METRICS),
    output:
        tsv=f"{EVAL}/metrics.tsv",
        results=report(
            f"{EVAL}/results.tsv",
            caption="../workflow/report/results_table.rst",
            category="Metrics",
            subcategory="Table",
        ),
        html=report(
            f"{EVAL}/metrics.html",
            caption="../workflow/report/metrics.rst",
            category="Metrics",
            subcategory="Table",
        ),
    log:
        f"{OUT}/logs/eval_tables.log",
    benchmark:
        f"{OUT}/benchmarks/eval_tables.tsv"
    conda:
        "../envs/eval.yaml"
    threads: 1
    shell:
        "python -m workflow.evaluate.tables --metrics {input.metrics} --tsv {output.tsv}"
        " --results-tsv {output.results} --html {output.html} > {log} 2>&1"


rule evaluation:
    input:
        evaluation_targets(),


rule figures_from_checkpoints:
    input:
        checkpoint_targets,
