"""Type and range checks for the JSON the Artstation endpoints return (method 2.1).

The site's JSON is untrusted input: any field may be missing, null, of another type, huge or
hostile, and valid JSON of an unexpected shape must not stop a scrape. Each reader here takes
what it can use and says what it could not, so that the scraper records a reason instead of
crashing, and a rerun passes the record instead of crashing at the same place again.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .values import ident, text, web_url


class BadJSON(ValueError):
    """JSON of a shape the scraper cannot use; the message is the manifest's reason."""


def tag_names(tags) -> list[str] | None:
    """Tag names from a list of strings or {"name": ...} objects; None when `tags` is not a
    list (a project whose opt-outs cannot be read is not scraped)."""
    if tags is None:
        return []
    if isinstance(tags, str):
        return [tags]
    if not isinstance(tags, list):
        return None
    names = []
    for tag in tags:
        name = tag.get("name") if isinstance(tag, dict) else tag
        if isinstance(name, str):
            names.append(name)
    return names


def is_noai(tags) -> bool:
    """True when any tag equals "noai" ignoring case, spaces, hyphens (and underscores)."""
    return any(re.sub(r"[\s\-_]+", "", name).lower() == "noai" for name in tag_names(tags) or ())


def channels(data) -> dict[str, int]:
    """Channel name (case-folded) -> id, from channels.json; malformed entries are ignored."""
    items = data.get("data") if isinstance(data, dict) else data
    out = {}
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        cid = item.get("id")
        if isinstance(cid, str) and cid.isdigit():
            cid = int(cid)
        if isinstance(cid, int) and not isinstance(cid, bool) and cid >= 0:
            out.setdefault(item["name"].strip().casefold(), cid)
    return out


def listing_page(data) -> tuple[list[str], int | None]:
    """(project hash ids, total_count or None) of one listing page; BadJSON when the page is
    not an object with a list of projects. Items without a usable id are skipped."""
    if not isinstance(data, dict):
        raise BadJSON("listing is not a JSON object")
    items = data.get("data")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise BadJSON("listing data is not a list")
    ids = []
    for item in items:
        if isinstance(item, dict):
            hash_id = ident(item.get("hash_id")) or ident(item.get("id"))
            if hash_id is not None:
                ids.append(hash_id)
    total = data.get("total_count")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        total = None
    return ids, total


@dataclass
class Asset:
    asset_id: str
    url: str | None = None  # the image URL when it is a usable http(s) URL
    skip: str | None = None  # why this asset is not downloaded (None: download it)


@dataclass
class Project:
    attribution: dict
    skip: list = field(default_factory=list)  # project-level reasons (noai_tag, adult_content, ...)
    assets: list = field(default_factory=list)


def parse_project(hash_id: str, data, base_url: str) -> Project:
    """A project's attribution, opt-outs and assets; BadJSON when it has no usable asset list."""
    if not isinstance(data, dict):
        raise BadJSON("project is not a JSON object")
    user = data.get("user") if isinstance(data.get("user"), dict) else {}
    project = Project({
        "project_id": hash_id,
        "artist": text(user.get("full_name")) or text(user.get("username")),
        "artist_username": text(user.get("username")),
        "title": text(data.get("title")),
        "project_url": web_url(data.get("permalink")) or f"{base_url}/artwork/{hash_id}",
    })
    tags = tag_names(data.get("tags"))
    if tags is None:
        project.skip.append("bad_tags")  # the NoAI opt-out cannot be checked
    elif is_noai(tags):
        project.skip.append("noai_tag")
    if data.get("adult_content") not in (None, False, 0, "", "false"):
        project.skip.append("adult_content")
    assets = data.get("assets")
    if assets is None:
        assets = []
    if not isinstance(assets, list):
        raise BadJSON("assets is not a list")
    seen = set()
    for position, raw in enumerate(assets):
        asset = _parse_asset(position, raw)
        if asset.asset_id not in seen:  # an id listed twice is one asset
            seen.add(asset.asset_id)
            project.assets.append(asset)
    return project


def _parse_asset(position: int, raw) -> Asset:
    if not isinstance(raw, dict):
        return Asset(f"#{position}", skip="bad_asset:not_an_object")
    asset_id = ident(raw.get("id"))
    if asset_id is None:
        return Asset(f"#{position}", skip="bad_asset:id")
    url = web_url(raw.get("image_url"))
    kind = raw.get("asset_type")
    if kind != "image":
        return Asset(asset_id, url, f"asset_type:{text(kind) or type(kind).__name__}"[:80])
    if not raw.get("has_image", True) or not raw.get("image_url"):
        return Asset(asset_id, url, "no_image")
    if url is None:
        return Asset(asset_id, None, "bad_asset:image_url")
    return Asset(asset_id, url)
