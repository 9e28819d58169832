# Pretrained files (method 6): fetched, resumably and verified, into the pretrained folder.
#
# One job per registry file that the config needs (helpers in helpers/pretrained.smk). The demo
# config needs one, the natural StyleGAN2 shipped in workflow/assets (copied and verified), so the
# default run never touches the network. The job is a local rule: on a
# cluster it runs on the submitting node, which usually is the one with internet access.
# Downloads go through <dir>/.store/, which Snakemake never deletes, so an interrupted or forced
# job resumes (HTTP Range) instead of starting over.


rule fetch_pretrained:
    output:
        f"{PRETRAINED_DIR}/{{pretrained_file}}",
    log:
        f"{OUT}/logs/pretrained/{{pretrained_file}}.log",
    benchmark:
        f"{OUT}/benchmarks/pretrained/{{pretrained_file}}.tsv"
    wildcard_constraints:
        pretrained_file=PRETRAINED_FILE_REGEX,
    localrule: True
    conda:
        "../envs/data.yaml"
    threads: 1
    params:
        cmd=lambda w: pretrained_fetch_command(w.pretrained_file),
    shell:
        "{params.cmd} --log {log:q}"
