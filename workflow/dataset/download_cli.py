"""Command-line pieces every downloader shares (scrape, aahq, ffhq): the politeness and safety
options, the client they configure, and publishing the work folder after a successful run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from basics.images import DEFAULT_MAX_PIXELS
from workflow.errors import add_debug_flag

from .http_client import USER_AGENT, PoliteClient
from .publish import publish


def add_client_args(parser: argparse.ArgumentParser, delay: float = 1.0) -> None:
    g = parser.add_argument_group("politeness and safety")
    g.add_argument("--delay", type=float, default=delay,
                   help=f"minimum seconds between requests (default {delay})")
    g.add_argument("--timeout", type=float, default=30.0,
                   help="seconds per connect and per socket read (default 30)")
    g.add_argument("--max-retries", type=int, default=5,
                   help="retries on 429/5xx/timeouts/resets, capped exponential back-off (default 5)")
    g.add_argument("--backoff", type=float, default=2.0, help="first back-off in seconds (default 2)")
    g.add_argument("--backoff-cap", type=float, default=120.0, help="longest back-off (default 120)")
    g.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="a host that redirects may lead to (repeatable; default: same host only)")
    g.add_argument("--max-bytes", type=int, default=64 * 2**20, help="response size cap")
    g.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="decoded pixel cap")
    g.add_argument("--challenge-limit", type=int, default=3,
                   help="stop after this many consecutive 403 challenge pages (default 3)")
    g.add_argument("--user-agent", default=USER_AGENT)
    g.add_argument("--deadline", type=float, default=None,
                   help="total seconds per request, however slowly the server answers "
                        "(default 4 x --timeout)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug_flag(parser)
    parser.add_argument("--publish", type=Path, default=None, metavar="DIR",
                        help="after a successful run, expose images/ (as links), manifest.jsonl and "
                             "landmarks.json under DIR; --out stays the resumable work folder")


def client_from_args(args) -> PoliteClient:
    return PoliteClient(delay=args.delay, timeout=args.timeout, max_retries=args.max_retries,
                        backoff=args.backoff, backoff_cap=args.backoff_cap,
                        allow_hosts=tuple(args.allow_host), max_bytes=args.max_bytes,
                        challenge_limit=args.challenge_limit, user_agent=args.user_agent,
                        deadline=args.deadline)


def finish(args, status: int, keys=None, limit: int | None = None) -> int:
    """Publish (the records in `keys`, at most `limit` ok ones) when asked and the run
    succeeded; returns the exit status."""
    if status == 0 and args.publish is not None:
        n = publish(args.out, args.publish, keys, limit)
        print(f"published {n} images to {args.publish}", file=sys.stderr)
    return status
