"""Scrape Artstation's Portraits channel into DIR/images and DIR/manifest.jsonl (method 2.1, 7.4).

    python -m workflow.dataset.scrape --base-url URL --out DIR [--max-projects N] [--delay S]

The channel is resolved by name from channels.json; its listing is paged for several sort
orders (each is capped near 10k projects by the site) and de-duplicated by project. Each
project's JSON gives its assets; image assets are fetched as the `/4k/` variant, falling back
to the URL given. Projects tagged NoAI and adult projects are skipped and recorded with the
reason. Rerunning resumes: assets already `ok` or `skipped` are never fetched again.
The result is for research only; the images remain their artists'.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

from tqdm import tqdm

from basics.images import DEFAULT_MAX_PIXELS
from workflow.errors import run_cli

from .artstation_json import BadJSON, channels, listing_page, parse_project
from .download import Downloader
from .download_cli import add_client_args, client_from_args, finish
from .http_client import ChallengeError, FetchError, PoliteClient
from .manifest import Manifest

DEFAULT_BASE_URL = "https://www.artstation.com"
DEFAULT_CHANNEL = "Portraits"
DEFAULT_SORTINGS = ("trending", "latest", "popular")
LISTING_DEPTH = 10_000  # the site stops listing a sort order near this many projects


def candidate_urls(image_url: str) -> list[str]:
    """The larger `/4k/` variant first when the URL has a `/large/` segment, then the URL itself."""
    if "/large/" in image_url:
        return [image_url.replace("/large/", "/4k/", 1), image_url]
    return [image_url]


class ArtstationScraper:
    def __init__(self, client: PoliteClient, out: Path, base_url: str = DEFAULT_BASE_URL,
                 channel: str = DEFAULT_CHANNEL, sortings=DEFAULT_SORTINGS, per_page: int = 50,
                 max_projects: int | None = None, limit: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True, log=print):
        self.client = client
        self.out = Path(out)
        self.base = base_url.rstrip("/")
        self.channel = channel
        self.sortings = list(sortings)
        self.per_page = per_page
        self.max_projects = max_projects
        self.limit = limit  # stop once this many images are ok (this run and earlier ones)
        self.progress = progress
        self.log = log
        self.manifest = Manifest(self.out / "manifest.jsonl")
        # Project-level state (listing position is cheap to redo; project JSON is not).
        self.projects = Manifest(self.out / "state" / "projects.jsonl")
        self.downloader = Downloader(client, self.out, self.manifest, max_pixels)
        self._ok_before = sum(r.get("status") == "ok" for r in self.manifest.records.values())

    # -- listing ------------------------------------------------------------------------
    def resolve_channel(self) -> int:
        if str(self.channel).isdigit():
            return int(self.channel)
        known = channels(self.client.get_json(f"{self.base}/api/v2/community/channels/channels.json"))
        wanted = self.channel.strip().casefold()
        if wanted not in known:
            names = ", ".join(sorted(known)) or "none readable"
            raise SystemExit(f"channel {self.channel!r} not found; available: {names}")
        return known[wanted]

    def list_projects(self, channel_id: int) -> list[str]:
        """Unique project hash ids, in order of first appearance over the sort orders.

        A sort order ends at an empty page, at its total_count, at the site's listing depth,
        or at a page that brings no project new to it (a page served for every page number,
        or a total_count that lies, would otherwise cost a request per page to the depth)."""
        seen: dict[str, None] = {}
        max_pages = math.ceil(LISTING_DEPTH / self.per_page)
        for sorting in self.sortings:
            listed: set[str] = set()
            for page in range(1, max_pages + 1):
                query = urlencode({"channel_id": channel_id, "page": page,
                                   "per_page": self.per_page, "sorting": sorting})
                try:
                    ids, total = listing_page(self.client.get_json(
                        f"{self.base}/api/v2/community/channels/projects.json?{query}"))
                except (FetchError, BadJSON) as exc:
                    reason = exc.reason if isinstance(exc, FetchError) else str(exc)
                    self.log(f"listing {sorting} page {page} failed ({reason}); next sort order")
                    break
                new = [h for h in ids if h not in listed]
                listed.update(new)
                for hash_id in new:
                    seen.setdefault(hash_id, None)
                    if self.max_projects and len(seen) >= self.max_projects:
                        return list(seen)
                if not new:
                    if ids:
                        self.log(f"listing {sorting} page {page} brought no new project; "
                                 f"next sort order")
                    break
                if total is not None and page * self.per_page >= total:
                    break
        return list(seen)

    # -- projects -------------------------------------------------------------------------
    def project_done(self, hash_id: str) -> bool:
        state = self.projects.get(f"{hash_id}/None")
        if state is None or state.get("status") == "failed":
            return False
        return all(self.downloader.done(f"{hash_id}/{a}") for a in state.get("asset_ids", []))

    def process_project(self, hash_id: str) -> None:
        if self.project_done(hash_id):
            self.downloader.counts["kept"] += 1
            return
        try:
            data = self.client.get_json(f"{self.base}/projects/{quote(hash_id, safe='')}.json")
        except FetchError as exc:
            self.projects.append({"project_id": hash_id, "asset_id": None, "status": "failed",
                                  "reason": exc.reason, "attempts": exc.attempts})
            self.log(f"project {hash_id}: {exc.reason}")
            return
        try:
            project = parse_project(hash_id, data, self.base)
        except BadJSON as exc:
            # Recorded as done: the same JSON would only fail the same way on every rerun.
            reason = f"bad_project:{exc}"
            self.downloader.skip({"project_id": hash_id, "asset_id": None}, reason)
            self.projects.append({"project_id": hash_id, "asset_id": None, "status": "skipped",
                                  "reason": reason, "asset_ids": []})
            self.log(f"project {hash_id}: {reason}")
            return
        for asset in project.assets:
            rec = {**project.attribution, "asset_id": asset.asset_id, "url": asset.url}
            if self.downloader.done(f"{hash_id}/{asset.asset_id}"):
                continue
            if project.skip:
                self.downloader.skip(rec, ",".join(project.skip))
            elif asset.skip:
                self.downloader.skip(rec, asset.skip)
            elif self.limit_reached():
                return  # no project record: a rerun with a larger limit comes back here
            else:
                self.downloader.download(rec, candidate_urls(asset.url),
                                         f"{hash_id}_{asset.asset_id}")
        self.projects.append({"project_id": hash_id, "asset_id": None, "status": "ok",
                              "reason": ",".join(project.skip) or None,
                              "asset_ids": [a.asset_id for a in project.assets]})

    def limit_reached(self) -> bool:
        if self.limit is None:
            return False
        return self._ok_before + self.downloader.counts["ok"] >= self.limit

    def run(self) -> int:
        """Scrape; returns the process exit status (0 ok, 3 stopped on challenges)."""
        status = 0
        try:
            channel_id = self.resolve_channel()
            hash_ids = self.list_projects(channel_id)
            if self.max_projects:
                hash_ids = hash_ids[: self.max_projects]
            self.log(f"channel {self.channel!r} (id {channel_id}): {len(hash_ids)} projects "
                     f"over sort orders {', '.join(self.sortings)}")
            for hash_id in tqdm(hash_ids, desc="projects", unit="proj", disable=not self.progress):
                if self.limit_reached():
                    self.log(f"limit of {self.limit} images reached")
                    break
                self.process_project(hash_id)
        except ChallengeError as exc:
            self.log(f"STOPPED: {exc}")
            status = 3
        except FetchError as exc:
            self.log(f"STOPPED: cannot read the channel list: {exc}")
            status = 2
        finally:
            self.manifest.compact()
            self.projects.compact()
            self.manifest.close()
            self.projects.close()
        counts = self.downloader.counts
        self.log(f"assets: {counts['ok']} downloaded, {counts['skipped']} skipped, "
                 f"{counts['failed']} failed this run; {counts['kept']} projects already complete; "
                 f"{self.client.requests_made} requests")
        return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workflow.dataset.scrape",
        description="Scrape an Artstation channel (default: Portraits) politely and resumably. "
                    "Images remain their artists'; use the result for research only.")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="site root (tests: loopback)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--max-projects", type=int, default=None, help="stop after N projects")
    parser.add_argument("--limit", type=int, default=None, help="stop once N images are ok")
    parser.add_argument("--channel", default=DEFAULT_CHANNEL, help="channel name or numeric id")
    parser.add_argument("--sorting", action="append", default=None,
                        help=f"listing sort order, repeatable (default: {' '.join(DEFAULT_SORTINGS)})")
    parser.add_argument("--per-page", type=int, default=50, help="listing page size (default 50)")
    add_client_args(parser)
    args = parser.parse_args(argv)
    scraper = ArtstationScraper(
        client_from_args(args), args.out, base_url=args.base_url, channel=args.channel,
        sortings=args.sorting or DEFAULT_SORTINGS, per_page=args.per_page,
        max_projects=args.max_projects, limit=args.limit, max_pixels=args.max_pixels,
        progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr, flush=True))
    return finish(args, scraper.run(), limit=args.limit)


if __name__ == "__main__":
    sys.exit(run_cli(main))
