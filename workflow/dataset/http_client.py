"""A polite, defensive HTTP GET client for dataset acquisition, on the project's one transport.

Politeness: one request at a time (a lock), a minimum delay between the end of one request and
the start of the next, capped exponential back-off with jitter on 429/5xx/timeouts/resets/
truncated bodies (counted by urllib3's Retry), `Retry-After` honoured, a User-Agent that names
the project. Safety: http(s) only, redirects followed only to the same host or to hosts allowed
explicitly, response bodies capped, and a total deadline per request (connect, headers, body
and redirects) that a slowly dripping server cannot stretch (basics.transport). Repeated 403
challenge pages stop the run with `ChallengeError`: we wait for the site, we do not evade it.
"""
from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from workflow.dataset.values import web_url
from basics.transport import BodyTooLarge, Transport, TransportError, backoff_schedule, count_failure

USER_AGENT = (
    "blendgan-repro-dataset/0.1 (research reproduction of BlendGAN; one request at a time; "
    "honours Retry-After)"
)
RETRY_STATUSES = {429, 500, 502, 503, 504}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CHALLENGE_MARKERS = (b"challenge", b"captcha", b"cf-chl", b"just a moment", b"attention required")


class FetchError(Exception):
    """A request that failed for good; `reason` is a short label for the manifest."""

    def __init__(self, reason: str, url: str, attempts: int, status: int | None = None):
        super().__init__(f"{reason} ({url}, {attempts} attempt(s))")
        self.reason = reason
        self.url = url
        self.attempts = attempts
        self.status = status


class ChallengeError(RuntimeError):
    """The site answered with several 403 challenge pages in a row: stop, do not evade."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


@dataclass
class Response:
    url: str  # final URL after allowed redirects
    status: int
    headers: dict
    body: bytes
    attempts: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass
class PoliteClient:
    delay: float = 1.0  # minimum seconds between the end of a request and the next start
    timeout: float = 30.0  # seconds per connect and per socket read
    max_retries: int = 5  # retries after the first attempt
    backoff: float = 2.0  # first back-off; doubles each retry
    backoff_cap: float = 120.0  # longest back-off between two attempts
    retry_after_cap: float = 900.0  # a longer Retry-After fails the request instead of blocking
    max_bytes: int = 64 * 2**20  # response body cap
    allow_hosts: tuple = ()  # extra hosts a redirect may go to
    challenge_limit: int = 3  # consecutive 403 challenge pages before ChallengeError
    max_redirects: int = 5
    user_agent: str = USER_AGENT
    jitter: float = 0.25  # back-off and delay are stretched by up to this fraction
    seed: int | None = None
    deadline: float | None = None  # total seconds per attempt, redirects included (None: 4 x timeout)
    sleep: callable = time.sleep
    clock: callable = time.monotonic
    requests_made: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _last_end: float | None = field(default=None, init=False, repr=False)
    _challenges: int = field(default=0, init=False, repr=False)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self.allow_hosts = tuple(h.lower() for h in self.allow_hosts)
        if self.deadline is None:
            self.deadline = max(4 * self.timeout, 1.0)
        self.transport = Transport(self.user_agent)

    # -- public API -------------------------------------------------------------------------
    def get(self, url: str, max_bytes: int | None = None, accept: str = "*/*") -> Response:
        """GET with retries; returns a 200 response or raises FetchError / ChallengeError."""
        cap = self.max_bytes if max_bytes is None else max_bytes
        schedule = backoff_schedule(self.max_retries, self.backoff, self.backoff_cap)
        attempts = 0
        while True:
            attempts += 1
            try:
                resp = self._get_following_redirects(url, cap, accept)
                resp.attempts = attempts
                return resp
            except _Retryable as exc:
                schedule = count_failure(schedule, url, exc.reason)
                if schedule is None:
                    raise FetchError(exc.reason, url, attempts, exc.status) from None
                wait = schedule.get_backoff_time() * (1.0 + self.jitter * self._rng.random())
                if exc.retry_after is not None:
                    if exc.retry_after > self.retry_after_cap:
                        raise FetchError(
                            f"retry_after_too_long:{exc.retry_after:.0f}s", url, attempts, exc.status
                        ) from None
                    wait = max(wait, exc.retry_after)
                self.sleep(wait)
            except FetchError as exc:
                exc.attempts = attempts
                raise

    def get_json(self, url: str, max_bytes: int = 16 * 2**20):
        resp = self.get(url, max_bytes=max_bytes, accept="application/json")
        try:
            return json.loads(resp.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise FetchError("bad_json", url, resp.attempts, resp.status) from None

    def close(self):
        self.transport.close()

    # -- internals --------------------------------------------------------------------------
    def _get_following_redirects(self, url: str, cap: int, accept: str) -> Response:
        if not web_url(url):
            raise FetchError("unsupported_url", str(url)[:200], 1)
        origin = _host(url)
        current = url
        end = self.clock() + self.deadline  # one budget for the whole chain of redirects
        for _ in range(self.max_redirects + 1):
            status, headers, body = self._request_once(current, cap, accept, end)
            if status in REDIRECT_STATUSES:
                location = headers.get("location")
                if not location:
                    raise FetchError("redirect_without_location", url, 1, status)
                try:
                    target = urljoin(current, location)
                except ValueError:
                    raise FetchError("redirect_refused:bad_location", url, 1, status) from None
                if not web_url(target):
                    raise FetchError("redirect_refused:scheme", url, 1, status)
                host = _host(target)
                if host != origin and not self._allowed(target):
                    raise FetchError(f"redirect_refused:{host}", url, 1, status)
                current = target
                continue
            return Response(current, status, headers, body, 1)
        raise FetchError("too_many_redirects", url, 1)

    def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return _host(url) in self.allow_hosts or (parts.hostname or "").lower() in self.allow_hosts

    def _wait_turn(self):
        # The delay runs from the end of the previous request, so the server never sees two
        # request starts closer than `delay`, however long each one took.
        if self._last_end is not None:
            gap = self.delay * (1.0 + self.jitter * self._rng.random()) if self.delay > 0 else 0.0
            remaining = self._last_end + gap - self.clock()
            if remaining > 0:
                self.sleep(remaining)

    def _request_once(self, url: str, cap: int, accept: str, end: float):
        if not web_url(url):
            raise FetchError("unsupported_url", str(url)[:200], 1)
        with self._lock:  # one request at a time, process-wide for this client
            self._wait_turn()
            self.requests_made += 1
            try:
                left = end - self.clock()
                if left <= 0:
                    raise _Retryable("timeout")
                with self.transport.open(url, timeout=self.timeout, deadline=left,
                                         headers={"Accept": accept}) as exchange:
                    status, headers = exchange.status, exchange.headers
                    length = headers.get("content-length", "")
                    if status == 200 and length.isdigit() and int(length) > cap:
                        raise FetchError(f"too_large:{length}", url, 1, status)
                    body = self._read_capped(exchange, cap, url, status)
            except TransportError as exc:
                if not exc.retryable:
                    raise FetchError(exc.reason, url, 1) from None
                raise _Retryable(exc.reason) from None
            finally:
                self._last_end = self.clock()
        return self._classify(url, status, headers, body)

    @staticmethod
    def _read_capped(exchange, cap: int, url: str, status: int) -> bytes:
        if status != 200:  # error bodies are only sniffed (challenge pages), never kept whole
            parts, total = [], 0
            try:
                for chunk in exchange.chunks(min(1 << 16, cap + 1)):
                    parts.append(chunk)
                    total += len(chunk)
                    if total > min(cap, 1 << 16):
                        break
            except TransportError:
                pass  # the status already says what happened
            return b"".join(parts)
        try:
            return exchange.read(cap)
        except BodyTooLarge:
            raise FetchError(f"too_large:>{cap}", url, 1, status) from None

    def _classify(self, url: str, status: int, headers: dict, body: bytes):
        if status == 200:
            self._challenges = 0
            return status, headers, body
        if status in REDIRECT_STATUSES:
            return status, headers, body
        if status == 403 and _looks_like_challenge(headers, body):
            self._challenges += 1
            if self._challenges >= self.challenge_limit:
                raise ChallengeError(
                    f"{self._challenges} consecutive HTTP 403 challenge pages (last: {url}). "
                    "The site is asking us to slow down or prove we are a browser; this tool does "
                    "not evade that. Stop, wait, and rerun later with a larger --delay "
                    "(the manifest resumes where this run stopped)."
                )
            raise FetchError("http_403_challenge", url, 1, status)
        if status in RETRY_STATUSES:
            raise _Retryable(f"http_{status}", parse_retry_after(headers.get("retry-after")), status)
        raise FetchError(f"http_{status}", url, 1, status)


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def _looks_like_challenge(headers: dict, body: bytes) -> bool:
    if "text/html" not in headers.get("content-type", "").lower():
        return False
    head = body[:65536].lower()
    return any(marker in head for marker in CHALLENGE_MARKERS) or b"<html" in head
