"""Registry of pretrained files: list, fetch (resumable, verified) and verify.

    python -m workflow.pretrained list   [--dir pretrained]
    python -m workflow.pretrained fetch  [NAME ...] --dir pretrained [--offline] [--link-from DIR]
                                         [--file NAME=PATH] [--allow-host HOST] [--strict]
    python -m workflow.pretrained verify [NAME ...] --dir pretrained [--strict]

The registry is workflow/pretrained.yaml (name, file name, URL, SHA-256 or its published prefix,
size, licence, users). `fetch` takes each file from, in order: the folder itself (when it
verifies), the folder's download store, a file you already have (`--file NAME=PATH` or
`--link-from DIR`, matched by file name), and only then the network: an HTTP GET into
`DIR/.store/FILE.part` that resumes with a Range request after an interruption, then the
SHA-256 check, then a rename, then a hard link to `DIR/FILE`. The store copy survives a workflow
manager deleting `DIR/FILE` before a rerun, so nothing is downloaded twice.

Safety: http(s) only; redirects followed only to the same host or to hosts the entry (or
--allow-host) names, never from https to http; an HTML page where a weights file was expected is
an error (quota and confirmation pages of file hosts); nothing fetched is ever executed or
unpickled here. Errors are one line and name the file: a checksum mismatch gives the expected and
the actual hash, an offline or unreachable fetch gives the URL and how to place the file by hand.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import os
import shutil
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import yaml

REGISTRY = Path(__file__).with_name("pretrained.yaml")
USER_AGENT = "blendgan-repro-pretrained/0.1 (research reproduction; resumable, verified downloads)"
CHUNK = 1 << 20
REDIRECTS = {301, 302, 303, 307, 308}
RETRY_STATUSES = {429, 500, 502, 503, 504}
STORE = ".store"


class PretrainedError(Exception):
    """A fetch or verification that failed; the message is the one line shown to the user."""


class ChecksumError(PretrainedError):
    pass


class OfflineError(PretrainedError):
    pass


@dataclass(frozen=True)
class Entry:
    name: str
    filename: str
    url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    allow_hosts: tuple = ()
    licence: str = ""
    used_by: tuple = ()
    description: str = ""
    sha256_source: str = ""
    bundled: str | None = None  # a copy shipped in this package (path beside the registry)
    recipe: str = ""            # how a bundled file was made (and how to make it again)

    @property
    def checksum_label(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.sha256_prefix:
            return f"sha256 prefix {self.sha256_prefix} (full hash not published)"
        return "no published hash (trust on first use)"


def load_registry(path: str | Path | None = None) -> dict[str, Entry]:
    path = Path(path or REGISTRY)
    data = yaml.safe_load(path.read_text()) or {}
    entries = {}
    for item in data.get("files") or []:
        item = dict(item)
        for key in ("allow_hosts", "used_by"):
            item[key] = tuple(item.get(key) or ())
        known = {f for f in Entry.__dataclass_fields__}
        entry = Entry(**{k: v for k, v in item.items() if k in known})
        if "/" in entry.filename or entry.filename.startswith("."):
            raise PretrainedError(f"registry: bad file name {entry.filename!r} for {entry.name}")
        if entry.sha256 and len(entry.sha256) != 64:
            raise PretrainedError(f"registry: sha256 of {entry.name} is not 64 hex digits")
        if entry.bundled:
            if not entry.sha256:
                raise PretrainedError(f"registry: bundled file of {entry.name} needs its sha256")
            entry = dataclasses.replace(entry, bundled=str(path.parent / entry.bundled))
        entries[entry.name] = entry
    return entries


def resolve(names, registry: dict[str, Entry]) -> list[Entry]:
    """Entries by registry name or file name; no names = all."""
    if not names:
        return list(registry.values())
    by_file = {e.filename: e for e in registry.values()}
    out = []
    for n in names:
        entry = registry.get(n) or by_file.get(n)
        if entry is None:
            raise PretrainedError(f"unknown pretrained file {n!r}; known: {', '.join(registry)}")
        out.append(entry)
    return out


# ------------------------------------------------------------------------------- verification
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _pin_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verify_file(entry: Entry, path: Path, strict: bool = False, pin: bool = True) -> str:
    """Check ``path`` against the entry; returns its SHA-256 or raises ChecksumError."""
    path = Path(path)
    if entry.size is not None and path.stat().st_size != entry.size:
        raise ChecksumError(
            f"size mismatch for {entry.name} ({path}): expected {entry.size} bytes, "
            f"got {path.stat().st_size}")
    got = sha256_file(path)
    if entry.sha256:
        if got != entry.sha256.lower():
            raise ChecksumError(f"checksum mismatch for {entry.name} ({path}): "
                                f"expected sha256 {entry.sha256}, got {got}")
        return got
    if entry.sha256_prefix:
        if not got.startswith(entry.sha256_prefix.lower()):
            raise ChecksumError(f"checksum mismatch for {entry.name} ({path}): expected sha256 "
                                f"starting {entry.sha256_prefix}, got {got}")
        return got
    if strict:
        raise ChecksumError(f"{entry.name}: no published checksum and --strict given; "
                            f"verify {path} yourself (sha256 {got})")
    pinned = _pin_path(path)
    if pinned.exists():
        want = pinned.read_text().split()[0]
        if got != want:
            raise ChecksumError(f"checksum mismatch for {entry.name} ({path}): expected sha256 "
                                f"{want} (pinned on first use in {pinned.name}), got {got}")
    elif pin:
        pinned.write_text(f"{got}  {entry.filename}\n")
    return got


def _check_not_html(entry: Entry, path: Path):
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise PretrainedError(
            f"{entry.name}: the server returned an HTML page instead of the file (a quota or "
            f"confirmation page?); download {entry.url} in a browser and pass --link-from DIR")


# ----------------------------------------------------------------------------------- download
def _connect(url: str, timeout: float):
    parts = urlsplit(url)
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    raise PretrainedError(f"refusing URL scheme {parts.scheme!r} in {url} (http and https only)")


def _open(url: str, offset: int, allow_hosts, timeout: float, max_redirects: int = 8):
    """GET with a Range from ``offset``, following only allowed redirects.
    Returns (connection, response, final url)."""
    origin = (urlsplit(url).hostname or "").lower()
    allowed = {origin} | {h.lower() for h in allow_hosts}
    current = url
    for _ in range(max_redirects + 1):
        parts = urlsplit(current)
        conn = _connect(current, timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        if resp.status not in REDIRECTS:
            return conn, resp, current
        location = resp.getheader("Location")
        resp.read()
        conn.close()
        if not location:
            raise PretrainedError(f"redirect without Location from {current}")
        target = urljoin(current, location)
        tparts = urlsplit(target)
        if parts.scheme == "https" and tparts.scheme != "https":
            raise PretrainedError(f"refusing redirect from https to {tparts.scheme}: {target}")
        if (tparts.hostname or "").lower() not in allowed:
            raise PretrainedError(
                f"refusing cross-host redirect from {url} to {tparts.hostname} "
                f"(allow it with --allow-host {tparts.hostname} if you trust it)")
        current = target
    raise PretrainedError(f"too many redirects from {url}")


def download(url: str, part: Path, allow_hosts=(), timeout: float = 60.0, retries: int = 3,
             backoff: float = 2.0, log=print) -> Path:
    """Download ``url`` into ``part``, resuming from its current size with a Range request.
    A server that ignores the Range gets a fresh start. Returns ``part`` when the body is
    complete. Network errors are retried (resuming); the last one is raised as OSError."""
    part.parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            conn, resp, final = _open(url, offset, allow_hosts, timeout)
            try:
                if resp.status == 416 and offset:  # the .part already holds the whole body
                    resp.read()
                    return part
                if resp.status == 206:
                    start = _content_range_start(resp.getheader("Content-Range"))
                    if start != offset:
                        raise PretrainedError(f"bad Content-Range from {final}: "
                                              f"{resp.getheader('Content-Range')!r}")
                    mode = "ab"
                    if offset:
                        log(f"resuming {part.name} at byte {offset}")
                elif resp.status == 200:
                    mode = "wb"  # no resume support (or nothing to resume): start over
                    if offset:
                        log(f"{final} ignored the Range request; restarting {part.name}")
                elif resp.status in RETRY_STATUSES:
                    raise ConnectionError(f"HTTP {resp.status} {resp.reason} from {final}")
                else:
                    raise PretrainedError(f"HTTP {resp.status} {resp.reason} from {final}")
                total = resp.getheader("Content-Length")
                expected = int(total) if total and total.isdigit() else None
                written = 0
                with open(part, mode) as f:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        written += len(block)
                    f.flush()
                    os.fsync(f.fileno())
                if expected is not None and written < expected:
                    raise ConnectionError(f"truncated body ({written} of {expected} bytes)")
                return part
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            attempt += 1
            if attempt > retries:
                raise OSError(f"{type(exc).__name__}: {exc}") from None
            wait = backoff * 2 ** (attempt - 1)
            log(f"{url}: {type(exc).__name__}: {exc}; retry {attempt}/{retries} in {wait:.0f}s")
            time.sleep(wait)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------------- fetching
def _link(src: Path, dst: Path):
    """dst -> the bytes of src: hard link, else symlink, else copy (atomic rename at the end)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        try:
            os.symlink(Path(src).resolve(), tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _user_copy(entry: Entry, files: dict, link_from) -> Path | None:
    if entry.name in files:
        p = Path(files[entry.name]).expanduser()
        if not p.is_file():
            raise PretrainedError(f"{entry.name}: the file you named ({p}) does not exist")
        return p
    for folder in link_from or ():
        for candidate in (Path(folder).expanduser() / entry.filename,):
            if candidate.is_file():
                return candidate
    return None


def fetch(entry: Entry, folder: str | Path, *, offline: bool = False, files: dict | None = None,
          link_from=(), allow_hosts=(), strict: bool = False, timeout: float = 60.0,
          retries: int = 3, log=print) -> Path:
    """Make ``folder/entry.filename`` a verified copy of the entry; returns its path."""
    folder = Path(folder)
    target = folder / entry.filename
    store = folder / STORE / entry.filename
    part = store.with_name(store.name + ".part")
    if target.is_file():
        verify_file(entry, target, strict)
        log(f"{entry.name}: {target} present and verified")
        return target
    if target.is_symlink():  # a dangling link left behind: replace it
        target.unlink()
    if store.is_file():
        verify_file(entry, store, strict)
        _link(store, target)
        log(f"{entry.name}: restored {target} from the download store")
        return target
    own = _user_copy(entry, files or {}, link_from)
    if own is None and entry.bundled and Path(entry.bundled).is_file():
        verify_file(entry, Path(entry.bundled), strict, pin=False)
        _link(Path(entry.bundled), target)
        log(f"{entry.name}: {target} from the copy shipped with the project (verified)")
        return target
    if own is not None:
        verify_file(entry, own, strict, pin=False)
        _link(own, target)
        if not entry.sha256 and not entry.sha256_prefix:
            _pin_path(target).write_text(f"{sha256_file(own)}  {entry.filename}\n")
        log(f"{entry.name}: linked {own} -> {target} (verified)")
        return target
    how = (f"download {entry.url} on a machine with internet access and place it at {target} "
           f"(or pass --link-from DIR / set pretrained.files.{entry.name}); expected "
           f"{entry.checksum_label}")
    if offline:
        raise OfflineError(f"{entry.name}: offline and {target} is missing: {how}")
    if not entry.url:
        raise PretrainedError(f"{entry.name}: no URL in the registry: {how}")
    log(f"{entry.name}: downloading {entry.url}")
    try:
        download(entry.url, part, tuple(entry.allow_hosts) + tuple(allow_hosts), timeout,
                 retries, log=log)
    except OSError as exc:
        raise OfflineError(f"{entry.name}: could not reach {entry.url} ({exc}); {how}") from None
    _check_not_html(entry, part)
    try:
        verify_file(entry, part, strict, pin=False)
    except ChecksumError as exc:
        bad = part.with_name(part.name + ".bad")
        os.replace(part, bad)
        raise ChecksumError(f"{exc}; the download was moved to {bad}") from None
    os.replace(part, store)
    if not entry.sha256 and not entry.sha256_prefix:
        _pin_path(store).write_text(f"{sha256_file(store)}  {entry.filename}\n")
        shutil.copyfile(_pin_path(store), _pin_path(target))
    _link(store, target)
    log(f"{entry.name}: {target} downloaded and verified")
    return target


# ---------------------------------------------------------------------------------------- CLI
def _parse_files(items) -> dict:
    out = {}
    for item in items or ():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise PretrainedError(f"--file expects NAME=PATH, got {item!r}")
        out[name] = path
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.pretrained",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default=str(REGISTRY), help="registry YAML")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default="pretrained", help="the pretrained folder")
    common.add_argument("--strict", action="store_true",
                        help="refuse files that have no published checksum")
    common.add_argument("--log", help="also append messages to this file")
    sub.add_parser("list", parents=[common], help="show the registry and what is present")
    for cmd in ("fetch", "verify"):
        p = sub.add_parser(cmd, parents=[common], help=f"{cmd} files (all when no NAME)")
        p.add_argument("names", nargs="*", metavar="NAME", help="registry names or file names")
        if cmd == "fetch":
            p.add_argument("--offline", action="store_true", help="never use the network")
            p.add_argument("--link-from", action="append", default=[], metavar="DIR",
                           help="a folder with files you already have (matched by file name)")
            p.add_argument("--file", action="append", default=[], metavar="NAME=PATH",
                           help="a file you already have for one entry")
            p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                           help="an extra host that redirects may lead to")
            p.add_argument("--timeout", type=float, default=60.0, help="seconds per socket read")
            p.add_argument("--retries", type=int, default=3, help="network retries (resuming)")
    args = parser.parse_args(argv)
    log_file = open(args.log, "a") if getattr(args, "log", None) else None

    def log(msg, err=False):
        print(msg, file=sys.stderr if err else sys.stdout, flush=True)
        if log_file:
            log_file.write(msg + "\n")
            log_file.flush()

    try:
        registry = load_registry(args.registry)
        if args.command == "list":
            for e in registry.values():
                path = Path(args.dir) / e.filename
                state = "present" if path.is_file() else "missing"
                size = f"{e.size:,} B" if e.size else "size ?"
                log(f"{e.name:15s} {state:8s} {e.filename:40s} {size:>14s}  {e.checksum_label}")
                log(f"{'':15s} licence: {e.licence}")
                log(f"{'':15s} used by: {', '.join(e.used_by)}; url: {e.url}")
            return 0
        entries = resolve(args.names, registry)
        if args.command == "verify":
            bad = 0
            for e in entries:
                path = Path(args.dir) / e.filename
                if not path.is_file():
                    log(f"error: {e.name}: {path} is missing", err=True)
                    bad += 1
                    continue
                try:
                    log(f"{e.name}: ok ({verify_file(e, path, args.strict)})")
                except ChecksumError as exc:
                    log(f"error: {exc}", err=True)
                    bad += 1
            return 1 if bad else 0
        files = _parse_files(args.file)
        for e in entries:
            fetch(e, args.dir, offline=args.offline, files=files, link_from=args.link_from,
                  allow_hosts=args.allow_host, strict=args.strict, timeout=args.timeout,
                  retries=args.retries, log=log)
        return 0
    except PretrainedError as exc:
        log(f"error: {exc}", err=True)
        return 1
    finally:
        if log_file:
            log_file.close()


if __name__ == "__main__":
    sys.exit(main())
