# The datasets (rules/data.smk): per-dataset settings, raw and landmark inputs, the dataset targets.
# Never `import workflow` here: Snakemake owns that name.
import json

# The natural set: the demo's larger set of photo-like faces that only the natural StyleGAN2 trains
# on (demo.n_natural). Its own seed keeps every face set image out of it, and it shares the face
# set's settings (source, landmarks, filter).
NATURAL = "natural"
NATURAL_SEED_OFFSET = 7
NATURAL_DEMO = f"{OUT}/demo_natural"


def dataset_cfg(dataset):
    return config["datasets"]["face" if dataset == NATURAL else dataset]


def uses_natural_set():
    """Whether train_stylegan2 reads the natural set instead of the face set."""
    return (
        dataset_cfg("face")["source"] == "demo"
        and int((config.get("demo") or {}).get("n_natural") or 0) > 0
    )


def stylegan2_faces():
    """The LMDB the natural StyleGAN2 trains on."""
    return f"{OUT}/data/{NATURAL if uses_natural_set() else 'face'}/lmdb"


def filter_settings(dataset):
    """The filter section with the dataset's own overrides, as one JSON string."""
    settings = dict(config["filter"])
    settings.update(dataset_cfg(dataset).get("filter") or {})
    return json.dumps(settings, sort_keys=True)


def uses_demo():
    return any(dataset_cfg(d)["source"] == "demo" for d in DATASETS)


def raw_dir(dataset):
    """The folder of raw images the data rules read: demo output or the acquired set."""
    if dataset == NATURAL:
        return f"{NATURAL_DEMO}/face/raw"
    if dataset_cfg(dataset)["source"] == "demo":
        return f"{OUT}/demo/{dataset}/raw"
    return acquire_paths(dataset)["images"]


def given_landmarks(dataset):
    """The landmark file a source brings, or [] when landmarks are detected or implied."""
    cfg = dataset_cfg(dataset)
    if cfg.get("landmarks", "file") != "file":
        return []
    source = cfg["source"]
    if dataset == NATURAL:
        return f"{NATURAL_DEMO}/face/landmarks.json"
    if source == "demo":
        return f"{OUT}/demo/{dataset}/landmarks.json"
    if source in ACQUIRE_LANDMARK_SOURCES:
        return acquire_paths(dataset)["landmarks"]
    if cfg.get("landmark_file"):
        return cfg["landmark_file"]
    raise ValueError(
        f"datasets.{dataset}.landmarks is 'file' but source {source!r} brings no landmark file: "
        f"set datasets.{dataset}.landmark_file or choose landmarks: dlib | face-alignment | aligned"
    )


def dataset_targets():
    targets = [f"{OUT}/data/{d}/card/card.json" for d in DATASETS]
    targets += [f"{OUT}/data/{d}/lmdb" for d in DATASETS]
    if uses_demo():
        targets.append(f"{OUT}/data/demo_truth_check.json")
    return targets
