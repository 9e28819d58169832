"""Expected failures of the command lines: one line that names the file and the reason.

A missing or unreadable input, a file that is not what it should be, a setting out of range:
the user needs the file and the reason, not a traceback. The dataset and pretrained command
lines run their `main` through `run_cli`, which prints `error: <message>` and exits with status
2 for those; `--debug` (or BLENDGAN_DEBUG=1 in the environment) re-raises them with their
traceback. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

EXIT_INPUT = 2


class InputError(ValueError):
    """A user's file or setting that cannot be used; the message names it and says why."""


def expected_errors() -> tuple:
    import lmdb

    from basics.images import ImageRejected
    return (OSError, ValueError, yaml.YAMLError, lmdb.Error, ImageRejected)


def add_debug_flag(parser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an expected failure (a missing or bad "
                             "input file, a bad setting) instead of one line")


def read_json(path, what: str = "JSON file"):
    """The parsed content of `path`; InputError naming the file when it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{path}: not a valid {what} ({exc})") from None


def read_jsonl(path, what: str = "JSON-lines file") -> list:
    """One parsed value per non-empty line; InputError naming the file and line otherwise."""
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not a valid {what}: line {number} is not JSON "
                                 f"({exc})") from None
    return out


def read_yaml(path, what: str = "YAML file"):
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise InputError(f"{path}: not a valid {what} ({reason})") from None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run_cli(main, argv=None) -> int:
    """Run `main(argv)`; expected failures become one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("BLENDGAN_DEBUG", "") not in ("", "0")
    try:
        status = main(argv)
    except expected_errors() as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        return EXIT_INPUT
    return status if isinstance(status, int) else 0
