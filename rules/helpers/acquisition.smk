# Dataset acquisition (rules/acquire.smk): the sources, the acquire_<dataset> outputs and CLI call.
# Never `import workflow` here: Snakemake owns that name.
import shlex

ACQUIRE_SOURCES = {
    "style": ("demo", "folder", "aahq_json", "artstation"),
    "face": ("demo", "folder", "ffhq_json"),
}
ACQUIRE_LANDMARK_SOURCES = ("aahq_json", "ffhq_json")


def acquire_config(dataset):
    cfg = (config.get("datasets") or {}).get(dataset) or {}
    source = cfg.get("source", "demo")
    if source not in ACQUIRE_SOURCES[dataset]:
        raise ValueError(
            f"datasets.{dataset}.source: {source!r} is not one of {ACQUIRE_SOURCES[dataset]}"
        )
    return cfg


def acquire_source(dataset):
    return acquire_config(dataset).get("source", "demo")


def acquire_enabled(dataset):
    """True when the rule acquire_<dataset> exists (every source but demo)."""
    return acquire_source(dataset) != "demo"


def acquire_dir(dataset):
    return f"{OUT}/acquire/{dataset}"


def acquire_paths(dataset):
    """The outputs of acquire_<dataset> as plain paths: use these as the data rules' inputs
    (keys: manifest, images, and landmarks for the JSON sources)."""
    base = acquire_dir(dataset)
    paths = {"manifest": f"{base}/manifest.jsonl", "images": f"{base}/images"}
    if acquire_source(dataset) in ACQUIRE_LANDMARK_SOURCES:
        paths["landmarks"] = f"{base}/landmarks.json"
    return paths


def acquire_outputs(dataset):
    """The declared outputs of acquire_<dataset> (images/ flagged as a directory)."""
    return {k: directory(v) if k == "images" else v for k, v in acquire_paths(dataset).items()}


def acquire_inputs(dataset):
    cfg = acquire_config(dataset)
    source = cfg.get("source")
    if source == "aahq_json":
        return {"json": cfg["aahq_json"]}
    if source == "ffhq_json":
        return {"json": cfg["ffhq_json"]}
    return {}  # folder: passed as a parameter, so changing the path reruns the job


def _client_flags(delay, download):
    flags = ["--no-progress", "--delay", str(delay)]
    if download.get("timeout") is not None:
        flags += ["--timeout", str(download["timeout"])]
    if download.get("max_retries") is not None:
        flags += ["--max-retries", str(download["max_retries"])]
    for host in download.get("allow_hosts") or ():
        flags += ["--allow-host", str(host)]
    return flags


def acquire_command(dataset):
    """The CLI call (a shell-quoted string) for this dataset's configured source."""
    cfg = acquire_config(dataset)
    source = cfg["source"]
    download = cfg.get("download") or {}
    work = f"{OUT}/acquire/work/{dataset}"
    limit = ["--limit", str(cfg["limit"])] if cfg.get("limit") is not None else []
    common = ["--out", work, "--publish", acquire_dir(dataset)] + limit
    delay = download.get("delay", 1.0)
    if source == "folder":
        # A face folder holds official aligned FFHQ images of one size; a style folder anything.
        size = str(cfg.get("aligned_size") or 0)
        args = ["-m", "workflow.dataset.ffhq", "--folder", cfg["folder"], "--size", size]
        args += ["--label", dataset] + common + _client_flags(delay, download)
    elif source == "aahq_json":
        args = (
            ["-m", "workflow.dataset.aahq", "--json", cfg["aahq_json"]]
            + common
            + _client_flags(delay, download)
        )
    elif source == "ffhq_json":
        args = (
            ["-m", "workflow.dataset.ffhq", "--metadata", cfg["ffhq_json"]]
            + common
            + _client_flags(delay, download)
        )
    elif source == "artstation":
        art = cfg.get("artstation") or {}
        args = (
            ["-m", "workflow.dataset.scrape"]
            + common
            + _client_flags(art.get("delay", delay), download)
        )
        if art.get("base_url"):
            args += ["--base-url", art["base_url"]]
        if art.get("channel"):
            args += ["--channel", str(art["channel"])]
        if art.get("max_projects") is not None:
            args += ["--max-projects", str(art["max_projects"])]
        for sorting in art.get("sortings") or ():
            args += ["--sorting", str(sorting)]
    else:
        raise ValueError(f"no acquisition rule for source {source!r}")
    return "python " + " ".join(shlex.quote(a) for a in args)
