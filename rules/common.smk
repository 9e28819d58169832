# Shared helpers for every rule file. Never `import workflow` here: Snakemake owns that name.
import json

OUT = config["output_dir"]
DATASETS = ["style", "face"]
WORKERS = config.get("workers", 2)


wildcard_constraints:
    dataset="style|face",


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def filter_settings(dataset):
    """The filter section with the dataset's own overrides, as one JSON string."""
    merged = dict(config["filter"])
    merged.update(dataset_cfg(dataset).get("filter") or {})
    return json.dumps(merged, sort_keys=True)


def uses_demo():
    return any(dataset_cfg(d)["source"] == "demo" for d in DATASETS)
