# BlendGAN reproduction: dataset rebuild -> training -> evaluation -> figures -> report.
# The default config.yaml runs the offline demo on a CPU; see README.md for the paper scale.
from snakemake.utils import min_version, validate

min_version("9.17")  # 9.17: priority as a function of wildcards (train_blendgan)


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


wildcard_constraints:
    dataset="style|face|natural",


# Helpers (functions and constants, no rules), one file per concern.
include: "rules/helpers/jobs.smk"
include: "rules/helpers/config.smk"


check_config()


include: "rules/helpers/datasets.smk"
include: "rules/helpers/acquisition.smk"
include: "rules/helpers/pretrained.smk"
include: "rules/helpers/training.smk"
include: "rules/helpers/evaluation.smk"
# Rules, in the order of the DAG.
include: "rules/pretrained.smk"
include: "rules/acquire.smk"
include: "rules/data.smk"
include: "rules/style_encoder.smk"
include: "rules/blendgan.smk"
include: "rules/psp.smk"
include: "rules/probes.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        dataset_targets(),
        pretrained_targets(),
        training_targets(),
        evaluation_targets(),
