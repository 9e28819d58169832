# BlendGAN reproduction: dataset rebuild -> training -> evaluation -> figures -> report.
# The default config.yaml runs the offline demo on a CPU; see README.md for the paper scale.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/acquire.smk"
include: "rules/data.smk"


rule all:
    input:
        dataset_targets(),
    default_target: True
