"""Console entry points of the trainers (``[project.scripts]`` in pyproject.toml).

Each trainer's ``main()`` returns the final checkpoint's path for Python callers; a console
script would turn that return value into exit status 1, so these wrappers exit 0 instead.
"""
from __future__ import annotations

import importlib


def _entry(module: str):
    def run() -> int:
        importlib.import_module(f"models.train.{module}").main()
        return 0
    run.__name__ = module
    return run


stylegan2 = _entry("stylegan2")
style_encoder = _entry("style_encoder")
blendgan = _entry("blendgan")
psp = _entry("psp")
finetune = _entry("finetune")
