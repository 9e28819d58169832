"""A loopback imitation of the Artstation endpoints the scraper uses, with injectable faults.

In the package (not under tests/) because the scrape benchmark serves it too; it binds to
127.0.0.1 only and is never part of a real run.

Endpoints (shapes as on the real site):
  /api/v2/community/channels/channels.json             {"data": [{"id", "name"}], "total_count"}
  /api/v2/community/channels/projects.json?channel_id=&page=&per_page=&sorting=
                                                        {"data": [{"id", "hash_id", ...}], "total_count"}
  /projects/{hash_id}.json                              {"id", "hash_id", "title", "permalink",
                                                         "user": {...}, "tags", "adult_content", "assets"}
  /p/assets/images/{asset_id}/{large|4k}/{name}         image bytes (4k only for some assets)

Sort orders list overlapping subsets in different orders. Faults are set per path as a list of
actions for the first hits (`faults`) or for every hit (`sticky`): 429 (with Retry-After), 500,
503, reset (connection dropped, no answer), slow (answer after `slow_s`), truncate (fewer bytes
than Content-Length), drip (an image at one byte per 50 ms), challenge (403 HTML challenge
page), notimage (HTML-ish bytes served as image/jpeg), redirect:<url>; `raw` serves any JSON
text at a path instead of the catalogue's answer (odd or hostile JSON). Every request is recorded with its arrival time, path, answer and
whether a complete image body went out, so tests can check the rate and "downloaded once".
"""
from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

CHANNEL_ID = 113
CHALLENGE_PAGE = (b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
                  b"<div id='challenge-form'>Checking your browser (captcha)</div></body></html>")


def make_image_bytes(seed: int, size: int = 24, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, quality=90)
    return buf.getvalue()


@dataclass
class Request:
    t: float
    path: str
    answer: str  # "200", "404", "reset", ...
    image: str | None = None  # asset key "<asset_id>" when a complete image body was sent
    user_agent: str = ""
    peer: int = 0  # the client's port: one per TCP connection (keep-alive reuses it)


@dataclass
class Catalogue:
    """Projects with assets; `expected` says what the scraper should end with per asset."""
    projects: dict = field(default_factory=dict)  # hash_id -> project JSON
    listings: dict = field(default_factory=dict)  # sorting -> [hash_id]
    images: dict = field(default_factory=dict)  # path -> (bytes, content_type, asset_id)


def build_catalogue(n_projects: int = 12, assets_per_project: int = 3, image_size: int = 24,
                    special: bool = True) -> Catalogue:
    """A deterministic site. With `special`, some projects are NoAI / adult / mixed types."""
    cat = Catalogue()
    order = []
    for i in range(n_projects):
        hash_id = f"P{i:03d}x"
        assets = []
        for j in range(assets_per_project):
            aid = 1000 * (i + 1) + j
            name = f"portrait-{aid}.jpg"
            large = f"/p/assets/images/{aid}/large/{name}"
            asset = {"id": aid, "asset_type": "image", "has_image": True, "width": image_size,
                     "height": image_size, "image_url": large, "title": None, "position": j}
            cat.images[large] = (make_image_bytes(aid, image_size), "image/jpeg", str(aid))
            if aid % 2 == 0:  # the 4k variant exists for even ids only (fallback otherwise)
                cat.images[large.replace("/large/", "/4k/")] = (
                    make_image_bytes(aid + 7, image_size * 2), "image/jpeg", str(aid))
            assets.append(asset)
        tags = ["portrait", "character"]
        adult = False
        if special:
            if i % 5 == 1:
                tags.append(["No AI", "no-ai", "NoAI", "NO_AI"][i % 4])
            if i % 7 == 3:
                adult = True
            if i % 4 == 2:  # mixed asset types
                assets.append({"id": 1000 * (i + 1) + 90, "asset_type": "video", "has_image": False,
                               "image_url": None, "player_embedded": "<iframe/>"})
                assets.append({"id": 1000 * (i + 1) + 91, "asset_type": "cover", "has_image": True,
                               "image_url": f"/p/assets/covers/{i}/large/c.jpg"})
                assets.append({"id": 1000 * (i + 1) + 92, "asset_type": "model3d", "has_image": True,
                               "image_url": f"/p/assets/models/{i}/large/m.jpg"})
        cat.projects[hash_id] = {
            "id": 9_000_000 + i, "hash_id": hash_id, "title": f"Portrait study {i}",
            "permalink": f"https://www.artstation.com/artwork/{hash_id}",
            "user": {"id": 50 + i, "username": f"artist{i}", "full_name": f"Artist Number {i}"},
            "tags": tags, "adult_content": adult, "assets": assets,
        }
        order.append(hash_id)
    # Overlapping sort orders: trending = all but the last two, latest = reversed tail half plus
    # a few from the head, popular = every third plus the last two (only reachable there).
    cat.listings["trending"] = order[: max(1, n_projects - 2)]
    cat.listings["latest"] = list(reversed(order[n_projects // 2:])) + order[:2]
    cat.listings["popular"] = order[::3] + order[-2:]
    return cat


class FakeArtstation:
    def __init__(self, catalogue: Catalogue | None = None, slow_s: float = 1.0,
                 retry_after: str = "1"):
        self.cat = catalogue or build_catalogue()
        self.faults: dict[str, list[str]] = {}
        self.sticky: dict[str, str] = {}
        self.challenge_everything = False
        self.raw: dict[str, bytes] = {}  # path -> JSON body served instead of the catalogue's
        self.slow_s = slow_s
        self.retry_after = retry_after
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> str:
        handler = _make_handler(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self):
        self._stopping.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- helpers for tests -------------------------------------------------------------------
    def record(self, req: Request):
        with self._lock:
            self.requests.append(req)

    def next_action(self, path: str) -> str | None:
        with self._lock:
            if path in self.sticky:
                return self.sticky[path]
            queue = self.faults.get(path)
            if queue:
                return queue.pop(0)
        return None

    def images_sent(self) -> dict[str, int]:
        """asset id -> number of complete image bodies sent."""
        out: dict[str, int] = {}
        for r in list(self.requests):
            if r.image:
                out[r.image] = out.get(r.image, 0) + 1
        return out

    def asset_paths(self, asset_id) -> list[str]:
        return [p for p, (_, _, aid) in self.cat.images.items() if aid == str(asset_id)]


def _make_handler(site: FakeArtstation):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed
        # ACK would hold the body back 40 ms per request (real servers disable Nagle too).
        disable_nagle_algorithm = True

        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):  # noqa: N802
            t = time.monotonic()
            split = urlsplit(self.path)
            path = split.path
            ua = self.headers.get("User-Agent", "")
            action = "challenge" if site.challenge_everything else site.next_action(path)
            peer = self.client_address[1]
            if action is not None and action != "ok":
                site.record(Request(t, self.path, action, user_agent=ua, peer=peer))
                return self.fault(action, path)
            status, body, ctype, image = self.route(path, parse_qs(split.query))
            site.record(Request(t, self.path, str(status), image if status == 200 else None, ua, peer))
            self.send(status, body, ctype)

        # -- routing --------------------------------------------------------------------------
        def route(self, path, query):
            cat = site.cat
            if path in site.raw:  # any JSON text, served for every hit (and every page)
                return 200, site.raw[path], "application/json", None
            if path == "/api/v2/community/channels/channels.json":
                data = [{"id": 7, "name": "Anime & Manga"}, {"id": CHANNEL_ID, "name": "Portraits"},
                        {"id": 95, "name": "Characters"}]
                return 200, _json({"data": data, "total_count": len(data)}), "application/json", None
            if path == "/api/v2/community/channels/projects.json":
                if query.get("channel_id", [""])[0] != str(CHANNEL_ID):
                    return 200, _json({"data": [], "total_count": 0}), "application/json", None
                sorting = query.get("sorting", ["trending"])[0]
                if sorting not in ("trending", "latest", "popular"):
                    return 400, _json({"error": "bad sorting"}), "application/json", None
                page = int(query.get("page", ["1"])[0])
                per_page = int(query.get("per_page", ["30"])[0])
                ids = cat.listings[sorting]
                chunk = ids[(page - 1) * per_page: page * per_page]
                data = [_listing_item(h, cat.projects[h]) for h in chunk]
                return 200, _json({"data": data, "total_count": len(ids)}), "application/json", None
            if path.startswith("/projects/") and path.endswith(".json"):
                project = cat.projects.get(path[len("/projects/"):-len(".json")])
                if project is None:
                    return 404, _json({"error": "not found"}), "application/json", None
                if isinstance(project, dict) and isinstance(project.get("assets"), list):
                    project = dict(project, assets=[
                        dict(a, image_url=site.base_url + a["image_url"])
                        if isinstance(a, dict) and isinstance(a.get("image_url"), str)
                        and a["image_url"].startswith("/") else a
                        for a in project["assets"]])
                return 200, _json(project), "application/json", None
            if path in cat.images:
                body, ctype, aid = cat.images[path]
                return 200, body, ctype, aid
            return 404, b"not found", "text/plain", None

        def image_headers(self, body):
            """A 200 image response's headers, announcing all of ``body``."""
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def send(self, status, body, ctype, extra=()):
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if self.close_connection:  # as real servers do, so clients do not reuse it
                    self.send_header("Connection", "close")
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        # -- faults ---------------------------------------------------------------------------
        def fault(self, action, path):
            self.close_connection = True
            if action == "429":
                return self.send(429, b"slow down", "text/plain", [("Retry-After", site.retry_after)])
            if action in ("500", "503"):
                return self.send(int(action), b"oops", "text/plain")
            if action == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if action == "slow":
                site._stopping.wait(site.slow_s)
                status, body, ctype, _ = self.route(path, {})
                return self.send(status, body, ctype)
            if action == "truncate":
                body = site.cat.images.get(path, (b"x" * 1000,))[0]
                try:
                    self.image_headers(body)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
            if action == "drip":  # a valid image, one byte every 50 ms
                body = site.cat.images.get(path, (b"x" * 1000,))[0]
                try:
                    self.image_headers(body)
                    for i in range(len(body)):
                        if site._stopping.wait(0.05):
                            return
                        self.wfile.write(body[i:i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
            if action == "challenge":
                return self.send(403, CHALLENGE_PAGE, "text/html; charset=utf-8")
            if action == "notimage":
                return self.send(200, b"<?php system($_GET['c']); ?>\n#!/bin/sh\nrm -rf /\n", "image/jpeg")
            if action.startswith("redirect:"):
                return self.send(302, b"", "text/plain", [("Location", action[len("redirect:"):])])
            if action == "404":
                return self.send(404, b"not found", "text/plain")
            raise ValueError(f"unknown fault {action}")

    return Handler


def _listing_item(hash_id: str, project) -> dict:
    item = {"hash_id": hash_id}
    if isinstance(project, dict):  # tests also plant projects that are not objects
        item.update(id=project.get("id"), title=project.get("title"), user=project.get("user"),
                    hide_as_adult=project.get("adult_content"))
    return item


def _json(obj) -> bytes:
    return json.dumps(obj).encode("utf-8")
