# Dataset half of the DAG (method 2): raw images -> landmarks -> aligned crops -> filter -> LMDB + card;
# and the demo's data (portraits with their truth, the one-shot fine-tuning reference).


rule demo_portraits:
    output:
        style_raw=directory(f"{OUT}/demo/style/raw"),
        face_raw=directory(f"{OUT}/demo/face/raw"),
        style_landmarks=f"{OUT}/demo/style/landmarks.json",
        face_landmarks=f"{OUT}/demo/face/landmarks.json",
        truth=f"{OUT}/demo/truth.json",
    log:
        f"{OUT}/logs/demo_portraits.log",
    benchmark:
        f"{OUT}/benchmarks/demo_portraits.tsv"
    conda:
        "../envs/data.yaml"
    threads: WORKERS
    params:
        out=lambda w, output: os.path.dirname(output.truth),
        seed=config["seed"],
        n_style=config["demo"]["n_style"],
        n_face=config["demo"]["n_face"],
        canvas=config["demo"]["canvas"],
        identities=config["demo"]["identities"],
    shell:
        "python -m workflow.demo.generate --out {params.out} --seed {params.seed}"
        " --n-style {params.n_style} --n-face {params.n_face} --canvas {params.canvas}"
        " --identities {params.identities} --workers {threads} > {log} 2>&1"


rule demo_natural_faces:
    """The natural set (demo.n_natural): photo-like faces for the natural StyleGAN2 only."""
    output:
        face_raw=directory(f"{NATURAL_DEMO}/face/raw"),
        face_landmarks=f"{NATURAL_DEMO}/face/landmarks.json",
        truth=f"{NATURAL_DEMO}/truth.json",
    log:
        f"{OUT}/logs/demo_natural_faces.log",
    benchmark:
        f"{OUT}/benchmarks/demo_natural_faces.tsv"
    conda:
        "../envs/data.yaml"
    threads: WORKERS
    params:
        out=lambda w, output: os.path.dirname(output.truth),
        seed=config["seed"] + NATURAL_SEED_OFFSET,
        n_face=config["demo"].get("n_natural", 0),
        canvas=config["demo"]["canvas"],
        identities=config["demo"]["identities"],
    shell:
        "python -m workflow.demo.generate --out {params.out} --seed {params.seed}"
        " --n-style 0 --n-face {params.n_face} --canvas {params.canvas}"
        " --identities {params.identities} --workers {threads} > {log} 2>&1"


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


rule landmarks:
    input:
        raw=lambda w: raw_dir(w.dataset),
        given=lambda w: given_landmarks(w.dataset),
    output:
        f"{OUT}/data/{{dataset}}/landmarks.json",
    log:
        f"{OUT}/logs/landmarks_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/landmarks_{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: WORKERS
    params:
        backend=lambda w: dataset_cfg(w.dataset).get("landmarks", "file"),
        given=lambda w, input: f"--file {input.given}" if input.given else "",
    shell:
        "python -m workflow.dataset.landmarks --raw {input.raw} --backend {params.backend}"
        " {params.given} --out {output} --workers {threads} > {log} 2>&1"


rule align:
    input:
        raw=lambda w: raw_dir(w.dataset),
        landmarks=f"{OUT}/data/{{dataset}}/landmarks.json",
    output:
        aligned=directory(f"{OUT}/data/{{dataset}}/aligned"),
        records=f"{OUT}/data/{{dataset}}/alignment.jsonl",
    log:
        f"{OUT}/logs/align_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/align_{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: WORKERS
    params:
        size=config["alignment"]["size"],
        method=config["alignment"]["method"],
        max_pixels=config["alignment"]["max_pixels"],
    shell:
        "python -m workflow.dataset.align --raw {input.raw} --landmarks {input.landmarks}"
        " --out {output.aligned} --records {output.records} --size {params.size}"
        " --method {params.method} --max-pixels {params.max_pixels}"
        " --workers {threads} > {log} 2>&1"


rule filter_faces:
    input:
        records=f"{OUT}/data/{{dataset}}/alignment.jsonl",
        aligned=f"{OUT}/data/{{dataset}}/aligned",
    output:
        accepted=f"{OUT}/data/{{dataset}}/accepted.txt",
        rejections=f"{OUT}/data/{{dataset}}/rejections.jsonl",
    log:
        f"{OUT}/logs/filter_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/filter_{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: WORKERS
    params:
        settings=lambda w: filter_settings(w.dataset),
    shell:
        "python -m workflow.dataset.filter --records {input.records} --aligned {input.aligned}"
        " --settings {params.settings:q} --accepted {output.accepted}"
        " --rejections {output.rejections} --workers {threads} > {log} 2>&1"


rule pack_lmdb:
    input:
        accepted=f"{OUT}/data/{{dataset}}/accepted.txt",
        aligned=f"{OUT}/data/{{dataset}}/aligned",
    output:
        directory(f"{OUT}/data/{{dataset}}/lmdb"),
    log:
        f"{OUT}/logs/pack_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/pack_{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: WORKERS
    params:
        sizes=" ".join(str(s) for s in config["lmdb"]["sizes"]),
        fmt=config["lmdb"]["format"],
        quality=config["lmdb"]["quality"],
    shell:
        "python -m workflow.dataset.pack --accepted {input.accepted} --images {input.aligned}"
        " --out {output} --sizes {params.sizes} --format {params.fmt} --quality {params.quality}"
        " --workers {threads} > {log} 2>&1"


rule dataset_card:
    input:
        records=f"{OUT}/data/{{dataset}}/alignment.jsonl",
        accepted=f"{OUT}/data/{{dataset}}/accepted.txt",
        rejections=f"{OUT}/data/{{dataset}}/rejections.jsonl",
        aligned=f"{OUT}/data/{{dataset}}/aligned",
        lmdb=f"{OUT}/data/{{dataset}}/lmdb",
        raw=lambda w: raw_dir(w.dataset),
    output:
        card=f"{OUT}/data/{{dataset}}/card/card.json",
        markdown=f"{OUT}/data/{{dataset}}/card/card.md",
        sheet=f"{OUT}/data/{{dataset}}/card/contact_sheet.png",
    log:
        f"{OUT}/logs/card_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/card_{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        out_dir=f"{OUT}/data/{{dataset}}/card",
    shell:
        "python -m workflow.dataset.card --name {wildcards.dataset} --records {input.records}"
        " --accepted {input.accepted} --rejections {input.rejections} --aligned {input.aligned}"
        " --raw {input.raw} --lmdb {input.lmdb} --out-dir {params.out_dir} > {log} 2>&1"


rule demo_truth_check:
    input:
        truth=f"{OUT}/demo/truth.json",
        records=expand(f"{OUT}/data/{{dataset}}/alignment.jsonl", dataset=DATASETS),
        rejections=expand(f"{OUT}/data/{{dataset}}/rejections.jsonl", dataset=DATASETS),
    output:
        f"{OUT}/data/demo_truth_check.json",
    log:
        f"{OUT}/logs/demo_truth_check.log",
    benchmark:
        f"{OUT}/benchmarks/demo_truth_check.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        size=config["alignment"]["size"],
        data_dir=lambda w, output: os.path.dirname(output[0]),
    shell:
        "python -m workflow.evaluate.demo_truth --truth {input.truth} --data-dir {params.data_dir}"
        " --size {params.size} --out {output} > {log} 2>&1"
