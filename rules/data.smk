# Dataset half of the DAG (SPEC 2): raw images -> landmarks -> aligned crops -> filter -> LMDB + card.


def raw_dir(dataset):
    cfg = dataset_cfg(dataset)
    source = cfg["source"]
    if source == "demo":
        return f"{OUT}/demo/{dataset}/raw"
    if source == "folder":
        if not cfg.get("folder"):
            raise ValueError(f"datasets.{dataset}.source is 'folder' but datasets.{dataset}.folder is not set")
        return cfg["folder"]
    return f"{OUT}/acquire/{dataset}/images"


def given_landmarks(dataset):
    """The landmark file a source brings, or [] when landmarks must be detected."""
    cfg = dataset_cfg(dataset)
    if cfg.get("landmarks", "file") != "file":
        return []
    source = cfg["source"]
    if source == "demo":
        return f"{OUT}/demo/{dataset}/landmarks.json"
    if source in ("aahq_json", "ffhq_json"):
        return f"{OUT}/acquire/{dataset}/landmarks.json"
    if cfg.get("landmark_file"):
        return cfg["landmark_file"]
    raise ValueError(
        f"datasets.{dataset}.landmarks is 'file' but source {source!r} brings no landmark file: "
        f"set datasets.{dataset}.landmark_file or choose landmarks: dlib | face-alignment"
    )


def dataset_targets():
    targets = [f"{OUT}/data/{d}/card/card.json" for d in DATASETS]
    targets += [f"{OUT}/data/{d}/lmdb" for d in DATASETS]
    if uses_demo():
        targets.append(f"{OUT}/data/demo_truth_check.json")
    return targets


rule demo_portraits:
    output:
        style_raw=directory(f"{OUT}/demo/style/raw"),
        face_raw=directory(f"{OUT}/demo/face/raw"),
        style_landmarks=f"{OUT}/demo/style/landmarks.json",
        face_landmarks=f"{OUT}/demo/face/landmarks.json",
        truth=f"{OUT}/demo/truth.json",
    params:
        out=f"{OUT}/demo",
        seed=config["seed"],
        n_style=config["demo"]["n_style"],
        n_face=config["demo"]["n_face"],
        canvas=config["demo"]["canvas"],
        identities=config["demo"]["identities"],
    log:
        f"{OUT}/logs/demo_portraits.log",
    benchmark:
        f"{OUT}/benchmarks/demo_portraits.tsv"
    threads: WORKERS
    conda:
        "../envs/data.yaml"
    shell:
        "python -m workflow.demo.generate --out {params.out} --seed {params.seed}"
        " --n-style {params.n_style} --n-face {params.n_face} --canvas {params.canvas}"
        " --identities {params.identities} --workers {threads} > {log} 2>&1"


rule landmarks:
    input:
        raw=lambda w: raw_dir(w.dataset),
        given=lambda w: given_landmarks(w.dataset),
    output:
        f"{OUT}/data/{{dataset}}/landmarks.json",
    params:
        backend=lambda w: dataset_cfg(w.dataset).get("landmarks", "file"),
        given=lambda w, input: f"--file {input.given}" if input.given else "",
    log:
        f"{OUT}/logs/landmarks_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/landmarks_{{dataset}}.tsv"
    threads: WORKERS
    conda:
        "../envs/data.yaml"
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
    params:
        size=config["alignment"]["size"],
        method=config["alignment"]["method"],
        max_pixels=config["alignment"]["max_pixels"],
        limit=lambda w: f"--limit {dataset_cfg(w.dataset)['limit']}" if dataset_cfg(w.dataset).get("limit") else "",
    log:
        f"{OUT}/logs/align_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/align_{{dataset}}.tsv"
    threads: WORKERS
    conda:
        "../envs/data.yaml"
    shell:
        "python -m workflow.dataset.align --raw {input.raw} --landmarks {input.landmarks}"
        " --out {output.aligned} --records {output.records} --size {params.size}"
        " --method {params.method} --max-pixels {params.max_pixels} {params.limit}"
        " --workers {threads} > {log} 2>&1"


rule filter_faces:
    input:
        records=f"{OUT}/data/{{dataset}}/alignment.jsonl",
        aligned=f"{OUT}/data/{{dataset}}/aligned",
    output:
        accepted=f"{OUT}/data/{{dataset}}/accepted.txt",
        rejections=f"{OUT}/data/{{dataset}}/rejections.jsonl",
    params:
        settings=lambda w: filter_settings(w.dataset),
    log:
        f"{OUT}/logs/filter_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/filter_{{dataset}}.tsv"
    threads: WORKERS
    conda:
        "../envs/data.yaml"
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
    params:
        sizes=" ".join(str(s) for s in config["lmdb"]["sizes"]),
        fmt=config["lmdb"]["format"],
        quality=config["lmdb"]["quality"],
    log:
        f"{OUT}/logs/pack_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/pack_{{dataset}}.tsv"
    threads: WORKERS
    conda:
        "../envs/data.yaml"
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
    params:
        out_dir=f"{OUT}/data/{{dataset}}/card",
    log:
        f"{OUT}/logs/card_{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/card_{{dataset}}.tsv"
    threads: 1
    conda:
        "../envs/data.yaml"
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
    params:
        size=config["alignment"]["size"],
        data_dir=f"{OUT}/data",
    log:
        f"{OUT}/logs/demo_truth_check.log",
    benchmark:
        f"{OUT}/benchmarks/demo_truth_check.tsv"
    threads: 1
    conda:
        "../envs/data.yaml"
    shell:
        "python -m workflow.evaluate.demo_truth --truth {input.truth} --data-dir {params.data_dir}"
        " --size {params.size} --out {output} > {log} 2>&1"
