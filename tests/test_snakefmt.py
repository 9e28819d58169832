"""The Snakefile and rules/*.smk are formatted as snakefmt (the Snakemake community's black)
writes them, with the settings in pyproject.toml ([tool.snakefmt])."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_snakefiles_are_snakefmt_clean():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", "Snakefile", "rules"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"run `snakefmt Snakefile rules`:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"
