"""Throughput of the scrape machinery against the loopback fake site with the delay set to zero.

    python scripts/bench_scrape.py [--projects 100] [--assets 5] [--size 512]

Shows that the client, verification and manifest are not the bottleneck: at the default polite
delay (1 s) the site's rate limit is, by a wide margin.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workflow.dataset.download import check_image  # noqa: E402
from workflow.dataset.http_client import PoliteClient  # noqa: E402
from workflow.dataset.loopback_artstation import FakeArtstation, build_catalogue  # noqa: E402
from workflow.dataset.scrape import ArtstationScraper  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--assets", type=int, default=5, help="image assets per project")
    parser.add_argument("--size", type=int, default=512, help="side of the /large/ images (4k: 2x)")

    parser.add_argument("--no-fsync", action="store_true",
                        help="skip fsync (kill-safe still; only power-loss safety is lost)")
    args = parser.parse_args()

    cat = build_catalogue(args.projects, args.assets, image_size=args.size, special=False)
    with FakeArtstation(cat) as site, tempfile.TemporaryDirectory() as out:
        client = PoliteClient(delay=0.0, timeout=10.0, max_retries=2, backoff=0.01, jitter=0.0)
        scraper = ArtstationScraper(client, Path(out), base_url=site.base_url, per_page=50,
                                    progress=False, log=lambda m: None)
        scraper.manifest.fsync = not args.no_fsync
        t0 = time.perf_counter()
        assert scraper.run() == 0
        wall = time.perf_counter() - t0
        n_ok = scraper.downloader.counts["ok"]
        n_bytes = sum(p.stat().st_size for p in (Path(out) / "images").iterdir())
        requests = len(site.requests)
        # the verification (full decode) alone, on the same bytes, for the breakdown
        bodies = [p.read_bytes() for p in (Path(out) / "images").iterdir()]
        t1 = time.perf_counter()
        for body in bodies:
            check_image(body)
        decode = time.perf_counter() - t1

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()} (server and client share the machine)")
    print(f"fsync per file and manifest line: {not args.no_fsync}; images {args.size}px (/4k/ "
          f"{2 * args.size}px for half of them); output in the system temp folder")
    print(f"{n_ok} assets ({n_bytes / 2**20:.1f} MiB, {requests} requests incl. listing, project "
          f"JSON and /4k/ misses) in {wall:.2f} s")
    print(f"throughput: {n_ok / wall:.0f} assets/s, {requests / wall:.0f} requests/s, "
          f"{n_bytes / 2**20 / wall:.1f} MiB/s; of which image verification {decode / wall:.0%}")
    print(f"for scale: the polite default (--delay 1) allows at most 1 request/s")


if __name__ == "__main__":
    main()
