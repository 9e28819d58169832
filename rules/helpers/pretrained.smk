# The pretrained files (rules/pretrained.smk; registry: workflow/pretrained.yaml; CLI:
# workflow.pretrained). Never `import workflow` here: Snakemake owns that name (the `workflow`
# used below is Snakemake's own object).
#
# A config key whose value is "<pretrained.dir>/<registry file name>" (for instance
# style_encoder.vgg_weights: pretrained/vgg19-dcbb9e9d.pth) makes that file a target of the fetch
# job; names listed in pretrained.fetch are fetched too. Training rules declare such paths as
# inputs with pretrained_input(path), which orders the fetch before them.
import os
import re
import shlex

import yaml

PRETRAINED = config.get("pretrained") or {}
PRETRAINED_DIR = os.path.normpath(PRETRAINED.get("dir") or "pretrained")
PRETRAINED_REGISTRY = os.path.join(workflow.basedir, "workflow", "pretrained.yaml")
with open(PRETRAINED_REGISTRY) as _f:
    PRETRAINED_ENTRIES = {e["name"]: e for e in (yaml.safe_load(_f) or {}).get("files") or []}
PRETRAINED_BY_FILE = {e["filename"]: e for e in PRETRAINED_ENTRIES.values()}
PRETRAINED_FILE_REGEX = "|".join(re.escape(f) for f in sorted(PRETRAINED_BY_FILE))

for _key, _names in (
    ("pretrained.fetch", PRETRAINED.get("fetch") or []),
    ("pretrained.files", list(PRETRAINED.get("files") or {})),
):
    for _name in _names:
        if _name not in PRETRAINED_ENTRIES:
            raise ValueError(
                f"{_key}: unknown pretrained file {_name!r}; "
                f"known: {', '.join(PRETRAINED_ENTRIES)}"
            )


def _config_strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "pretrained":
                yield from _config_strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _config_strings(value)
    elif isinstance(node, str):
        yield node


def pretrained_path(name):
    """Where registry entry `name` lives once fetched."""
    return os.path.join(PRETRAINED_DIR, PRETRAINED_ENTRIES[name]["filename"])


def pretrained_needed():
    """Registry names this config needs: referenced by a config value, or in pretrained.fetch."""
    used = {os.path.normpath(s) for s in _config_strings(config) if "/" in s}
    names = [n for n in PRETRAINED_ENTRIES if pretrained_path(n) in used]
    names += [n for n in PRETRAINED.get("fetch") or [] if n not in names]
    return names


def pretrained_targets():
    return [pretrained_path(n) for n in pretrained_needed()]


def pretrained_input(path):
    """A file-valued config key as an input of a training step ([] when unset); when it
    points into the pretrained folder, the fetch job runs first."""
    return path if path else []


def pretrained_fetch_command(filename):
    """The CLI call (shell-quoted) that fetches one registry file into the pretrained folder."""
    name = PRETRAINED_BY_FILE[filename]["name"]
    args = ["-m", "workflow.pretrained", "fetch", name, "--dir", PRETRAINED_DIR]
    if PRETRAINED.get("offline"):
        args.append("--offline")
    link_from = PRETRAINED.get("link_from")
    for folder in [link_from] if isinstance(link_from, str) else link_from or []:
        args += ["--link-from", folder]
    if name in (PRETRAINED.get("files") or {}):
        args += ["--file", f"{name}={PRETRAINED['files'][name]}"]
    for host in PRETRAINED.get("allow_hosts") or []:
        args += ["--allow-host", host]
    if PRETRAINED.get("strict"):
        args.append("--strict")
    return "python " + " ".join(shlex.quote(a) for a in args)
