"""pyproject.toml declares what the code needs, where it needs it: the README's main command
(ending with the HTML report) on runtime requirements alone, test-only packages in the test
extra, the console scripts, the licence and the citation file."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).parent))
from dependency_helpers import (PROJECT_PACKAGES, ROOT, declared, dist_of_import,  # noqa: E402
                                imports_of_files, pyproject, requirements)


def test_the_report_needs_nothing_beyond_the_runtime_requirements():
    """`snakemake --report` imports pygments, which pytest also brings: only a runtime
    requirement makes the main command work in an environment without the test extra."""
    assert "reports" in requirements()["snakemake"].extras


def test_torch_floor_is_the_first_release_with_the_device_generic_grad_scaler():
    spec = requirements()["torch"].specifier
    assert not spec.contains("2.2.2") and spec.contains("2.3.0")
    code = (ROOT / "models" / "train").rglob("*.py")
    assert any("torch.amp.GradScaler" in p.read_text() for p in code)


def test_test_only_packages_stay_in_the_test_extra():
    runtime, test = requirements(), requirements("test")
    code = [*(ROOT / "workflow").rglob("*.py"), *(ROOT / "models").rglob("*.py")]
    assert "skimage" not in imports_of_files(code)
    assert "scikit-image" not in runtime and "scikit-image" in test
    assert "pytest" not in runtime


def test_every_import_of_the_packages_is_declared():
    code = [*(ROOT / "workflow").rglob("*.py"), *(ROOT / "models").rglob("*.py")]
    tops = imports_of_files(code) - set(PROJECT_PACKAGES)
    missing = {t for t in tops if dist_of_import(t) not in declared()}
    assert not missing, f"imported by workflow/ or models/ but not in pyproject.toml: {missing}"


def test_tests_and_scripts_need_only_runtime_and_test_requirements():
    files = [*(ROOT / "tests").glob("*.py"), *(ROOT / "scripts").glob("*.py")]
    local = {p.stem for p in files} | set(PROJECT_PACKAGES)
    tops = imports_of_files(files) - local
    allowed = {**requirements(), **requirements("test")}
    allowed_tops = {t for t in tops if dist_of_import(t) in allowed}
    # packaging comes with pip and with snakemake; the others must be declared.
    missing = tops - allowed_tops - {"packaging"}
    assert not missing, f"imported by tests/ or scripts/ but not in the runtime or test extra: {missing}"


SCRIPTS = pyproject()["project"].get("scripts", {})


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_scripts_point_at_callables(name):
    module, attr = SCRIPTS[name].split(":")
    assert callable(getattr(importlib.import_module(module), attr))


def test_console_scripts_cover_the_user_commands():
    targets = set(SCRIPTS.values())
    assert {"workflow.generate:main", "workflow.pretrained:main",
            "workflow.dataset.scrape:main"} <= targets
    assert {f"models.train.console:{t}" for t in ("style_encoder", "blendgan", "psp", "finetune")} <= targets


def test_trainer_scripts_exit_zero_although_main_returns_a_path(monkeypatch):
    from models.train import blendgan, console

    monkeypatch.setattr(blendgan, "main", lambda argv=None: Path("final.pt"))
    assert console.blendgan() == 0


def test_licence_file_matches_the_declared_licence():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "BlendGAN reproduction contributors" in text
    assert pyproject()["project"]["license"] == {"text": "MIT"}


def test_citation_file_cites_the_paper_and_the_project():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert Version(str(cff["version"])) == Version(pyproject()["project"]["version"])
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("BlendGAN") and paper["year"] == 2021
    assert paper["authors"][0] == {"family-names": "Liu", "given-names": "Mingcong"}


def test_ci_runs_the_readme_commands():
    """.ci/run reads the two commands from the README's "Two commands" section: the workflow
    on the runtime requirements alone, ending with the report, then the tests."""
    import re

    section = (ROOT / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    main, tests = [b.strip() for b in re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)]
    assert re.search(r"pip install torch==\S+ -e \. &&", main)  # no extras: runtime only
    assert main.endswith("--report-after-run --report results/report.html")
    assert '-e ".[test]"' in tests and tests.endswith("python -m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "## Two commands" in ci and "pip install" not in ci  # nothing installed beside them
