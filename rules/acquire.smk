# Dataset acquisition (method 2.1): raw images + manifest (+ landmark file) per dataset.
#
# Helpers: rules/helpers/jobs.smk (OUT), acquisition.smk (acquire_*). For each dataset
# (`style`, `face`) whose `datasets.<name>.source` is not `demo`, one rule produces
#   {OUT}/acquire/<name>/manifest.jsonl
#   {OUT}/acquire/<name>/images/            (directory)
#   {OUT}/acquire/<name>/landmarks.json     (aahq_json and ffhq_json sources only)
# The CLIs download into {OUT}/acquire/work/<name>/, which is not a declared output, so a failed,
# killed or forced job resumes there instead of starting over (Snakemake deletes the outputs of
# such jobs), and publish links into the declared outputs only after a successful run.
# Never `import workflow` here: Snakemake defines a global of that name.

for _dataset in [d for d in DATASETS if acquire_enabled(d)]:

    rule:
        name:
            f"acquire_{_dataset}"
        input:
            **acquire_inputs(_dataset),
        output:
            **acquire_outputs(_dataset),
        log:
            f"{OUT}/logs/acquire/{_dataset}.log",
        benchmark:
            f"{OUT}/benchmarks/acquire/{_dataset}.tsv"
        localrule: True  # on a cluster: the submitting node, usually the one with internet
        conda:
            "../envs/data.yaml"
        threads: 1
        params:
            cmd=acquire_command(_dataset),
        shell:
            "{params.cmd} > {log:q} 2>&1"
