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
manager deleting `DIR/FILE` before a rerun, so nothing is downloaded twice. Downloads go through
the project's HTTP transport (basics.transport): keep-alive, proxies from the environment
(HTTPS_PROXY, NO_PROXY), a progress bar for large files on a terminal, and a deadline per attempt.

Safety: http(s) only; redirects followed only to the same host or to hosts the entry (or
--allow-host) names, never from https to http; an HTML page where a weights file was expected is
an error (quota and confirmation pages of file hosts), and a body that fails a check (HTML, size,
checksum) is moved aside to FILE.part.bad, never resumed from; nothing fetched is ever executed or
unpickled here. Errors are one line and name the file: a checksum mismatch gives the expected and
the actual hash, an offline or unreachable fetch gives the URL and how to place the file by hand.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tqdm import tqdm

from basics.files import atomic_write, link_or_copy, sha256_file
from basics.transport import Transport, TransportError, backoff_schedule, count_failure
from workflow.errors import add_debug_flag, read_yaml, run_cli

REGISTRY = Path(__file__).with_name("pretrained.yaml")
USER_AGENT = "blendgan-repro-pretrained/0.1 (research reproduction; resumable, verified downloads)"
CHUNK = 1 << 20
REDIRECTS = {301, 302, 303, 307, 308}
RETRY_STATUSES = {429, 500, 502, 503, 504}
STORE = ".store"
DEADLINE = 3600.0  # seconds per download attempt; a slower link resumes in the next attempt
PROGRESS_MIN_BYTES = 16 * 2**20  # smaller files download without a progress bar


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
    data = read_yaml(path, "pretrained-file registry") or {}
    if not isinstance(data, dict):
        raise PretrainedError(f"{path}: the registry is a mapping with a `files` list")
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
def _pin_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _pin(path: Path, digest: str, filename: str) -> None:
    """Record a trust-on-first-use hash beside `path` (checked by every later verify)."""
    atomic_write(_pin_path(path), f"{digest}  {filename}\n")


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
        _pin(path, got, entry.filename)
    return got


def _check_not_html(entry: Entry, path: Path):
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise PretrainedError(
            f"{entry.name}: the server returned an HTML page instead of the file (a quota or "
            f"confirmation page?); download {entry.url} in a browser and pass --link-from DIR")


# ----------------------------------------------------------------------------------- download
def _check_redirect(url: str, current: str, target: str, allowed: set):
    parts, tparts = urlsplit(current), urlsplit(target)
    if tparts.scheme not in ("http", "https"):
        raise PretrainedError(f"refusing redirect to {tparts.scheme!r}: {target}")
    if parts.scheme == "https" and tparts.scheme != "https":
        raise PretrainedError(f"refusing redirect from https to {tparts.scheme}: {target}")
    if (tparts.hostname or "").lower() not in allowed:
        raise PretrainedError(
            f"refusing cross-host redirect from {url} to {tparts.hostname} "
            f"(allow it with --allow-host {tparts.hostname} if you trust it)")


@contextmanager
def _open(transport: Transport, url: str, offset: int, allow_hosts, timeout: float,
          deadline: float, max_redirects: int = 8):
    """GET with a Range from ``offset``, following only allowed redirects, all within
    ``deadline`` seconds. Yields (exchange, final url)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise PretrainedError(f"refusing URL scheme {urlsplit(url).scheme!r} in {url} "
                              f"(http and https only)")
    origin = (urlsplit(url).hostname or "").lower()
    allowed = {origin} | {h.lower() for h in allow_hosts}
    headers = {"Accept": "*/*"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    end = time.monotonic() + deadline
    current = url
    for _ in range(max_redirects + 1):
        with transport.open(current, timeout=timeout, deadline=end - time.monotonic(),
                            headers=headers) as exchange:
            if exchange.status not in REDIRECTS:
                yield exchange, current
                return
            location = exchange.headers.get("location")
        if not location:
            raise PretrainedError(f"redirect without Location from {current}")
        target = urljoin(current, location)
        _check_redirect(url, current, target, allowed)
        current = target
    raise PretrainedError(f"too many redirects from {url}")


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:64].lower().startswith((b"<!doctype html", b"<html"))


def download(url: str, part: Path, allow_hosts=(), timeout: float = 60.0, retries: int = 3,
             backoff: float = 2.0, log=print, deadline: float = DEADLINE,
             progress: bool | None = None, transport: Transport | None = None) -> Path:
    """Download ``url`` into ``part``, resuming from its current size with a Range request.
    A server that ignores the Range gets a fresh start. Returns ``part`` when the body is
    complete. Each attempt ends within ``deadline`` seconds (a slow link keeps what it got
    and the next attempt resumes from there); network errors are retried, the last one is
    raised as OSError. An HTML page where the file was expected is refused before any of it
    is written. ``progress``: a progress bar (None: on a terminal, for large bodies)."""
    part.parent.mkdir(parents=True, exist_ok=True)
    transport = transport or Transport(USER_AGENT)
    schedule = backoff_schedule(retries, backoff, 300.0)
    attempt = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            with _open(transport, url, offset, allow_hosts, timeout, deadline) as (resp, final):
                if resp.status == 416 and offset:  # the .part already holds the whole body
                    return part
                if resp.status == 206:
                    start = _content_range_start(resp.headers.get("content-range"))
                    if start != offset:
                        raise PretrainedError(f"bad Content-Range from {final}: "
                                              f"{resp.headers.get('content-range')!r}")
                    mode = "ab"
                    if offset:
                        log(f"resuming {part.name} at byte {offset}")
                elif resp.status == 200:
                    mode = "wb"  # no resume support (or nothing to resume): start over
                    if offset:
                        log(f"{final} ignored the Range request; restarting {part.name}")
                elif resp.status in RETRY_STATUSES:
                    raise TransportError(f"HTTP {resp.status} from {final}", True)
                else:
                    raise PretrainedError(f"HTTP {resp.status} from {final}")
                length = resp.headers.get("content-length", "")
                expected = int(length) if length.isdigit() else None
                _write_body(resp, part, mode, offset if mode == "ab" else 0, expected, final,
                            progress)
                return part
        except TransportError as exc:
            if not exc.retryable:
                raise OSError(exc.reason) from None
            attempt += 1
            schedule = count_failure(schedule, url, exc.reason)
            if schedule is None:
                raise OSError(exc.reason) from None
            wait = schedule.get_backoff_time()
            log(f"{url}: {exc.reason}; retry {attempt}/{retries} in {wait:.0f}s")
            time.sleep(wait)


def _write_body(resp, part: Path, mode: str, offset: int, expected: int | None, url: str,
                progress: bool | None):
    total = offset + expected if expected is not None else None
    show = progress if progress is not None else (
        sys.stderr.isatty() and (total is None or total >= PROGRESS_MIN_BYTES))
    written, f = 0, None
    with tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
              desc=part.name.removesuffix(".part"), disable=not show, file=sys.stderr,
              leave=False) as bar:
        try:
            for block in resp.chunks(CHUNK):
                if f is None:  # opened only now, so a refused page never truncates the .part
                    if offset == 0 and _looks_like_html(block[:512]):
                        raise PretrainedError(
                            f"{url} sent an HTML page instead of the file (a quota or "
                            f"confirmation page?); download it in a browser and pass "
                            f"--link-from DIR")
                    f = open(part, mode)
                f.write(block)
                written += len(block)
                bar.update(len(block))
            if f is None:
                f = open(part, mode)
            f.flush()
            os.fsync(f.fileno())
        finally:
            if f is not None:
                f.close()
    if expected is not None and written < expected:
        raise TransportError(f"truncated body ({written} of {expected} bytes)", True)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------------- fetching
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
          retries: int = 3, log=print, deadline: float = DEADLINE,
          progress: bool | None = None) -> Path:
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
        link_or_copy(store, target)
        log(f"{entry.name}: restored {target} from the download store")
        return target
    own = _user_copy(entry, files or {}, link_from)
    if own is None and entry.bundled and Path(entry.bundled).is_file():
        verify_file(entry, Path(entry.bundled), strict, pin=False)
        link_or_copy(entry.bundled, target)
        log(f"{entry.name}: {target} from the copy shipped with the project (verified)")
        return target
    if own is not None:
        verify_file(entry, own, strict, pin=False)
        link_or_copy(own, target)
        if not entry.sha256 and not entry.sha256_prefix:
            _pin(target, sha256_file(own), entry.filename)
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
    if part.is_file() and entry.size is not None and part.stat().st_size > entry.size:
        part.unlink()  # longer than the file: not a prefix a Range request could complete
    try:
        download(entry.url, part, tuple(entry.allow_hosts) + tuple(allow_hosts), timeout,
                 retries, log=log, deadline=deadline, progress=progress)
    except OSError as exc:
        raise OfflineError(f"{entry.name}: could not reach {entry.url} ({exc}); {how}") from None
    # A body that fails a check never stays where the next fetch would resume from it.
    try:
        _check_not_html(entry, part)
        verify_file(entry, part, strict, pin=False)
    except PretrainedError as exc:
        bad = part.with_name(part.name + ".bad")
        os.replace(part, bad)
        raise type(exc)(f"{exc}; the download was moved to {bad}") from None
    # Renamed by hand, not written through basics.files.atomic_output: the .part outlives an
    # interrupted run so that the next one resumes it, and only a verified body takes the name.
    os.replace(part, store)
    if not entry.sha256 and not entry.sha256_prefix:
        digest = sha256_file(store)
        _pin(store, digest, entry.filename)
        _pin(target, digest, entry.filename)
    link_or_copy(store, target)
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
    add_debug_flag(common)
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
            p.add_argument("--timeout", type=float, default=60.0,
                           help="seconds per connect and per socket read")
            p.add_argument("--deadline", type=float, default=DEADLINE,
                           help="seconds per download attempt, however the server trickles "
                                "(a slower link resumes in the next attempt)")
            p.add_argument("--retries", type=int, default=3, help="network retries (resuming)")
            p.add_argument("--no-progress", action="store_true", help="no progress bar")
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
                  retries=args.retries, log=log, deadline=args.deadline,
                  progress=False if args.no_progress else None)
        return 0
    except PretrainedError as exc:
        log(f"error: {exc}", err=True)
        return 1
    finally:
        if log_file:
            log_file.close()


if __name__ == "__main__":
    sys.exit(run_cli(main))
