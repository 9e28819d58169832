# What every job shares: its shell prefix (strict bash, this checkout on PYTHONPATH), the output
# folder OUT, the two datasets and the default worker count. Included first, by the Snakefile
# (and alone by tests/test_envs.py). Never `import workflow` here: Snakemake owns that name.
import os  # os.path in the rules' params
import shlex

# Every job imports the project from this checkout, so a conda environment (--sdm conda) needs
# no install of it and a run from another --directory finds it too. Set inside the job's shell:
# Snakemake drops PYTHONPATH from the environment of conda jobs. Braces are doubled because
# Snakemake formats the prefix like a shell command.
_CHECKOUT = shlex.quote(workflow.basedir).replace("{", "{{").replace("}", "}}")
shell.prefix("set -euo pipefail; export PYTHONPATH=%s${{PYTHONPATH:+:$PYTHONPATH}}; " % _CHECKOUT)

OUT = config["output_dir"]
DATASETS = ["style", "face"]
WORKERS = config.get("workers", 2)
