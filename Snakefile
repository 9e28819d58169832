# BlendGAN reproduction: dataset rebuild -> training -> evaluation -> figures -> report.
# The default config.yaml runs the offline demo on a CPU; see README.md for the paper scale.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


wildcard_constraints:
    dataset="style|face",


include: "rules/common.smk"


check_config()


include: "rules/pretrained_common.smk"
include: "rules/pretrained.smk"
include: "rules/acquire.smk"
include: "rules/data.smk"
include: "rules/train_common.smk"
include: "rules/style_encoder.smk"
include: "rules/blendgan.smk"
include: "rules/psp.smk"
include: "rules/evaluate_common.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        dataset_targets(),
        pretrained_targets(),
        training_targets(),
        evaluation_targets(),
