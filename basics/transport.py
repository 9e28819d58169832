"""The project's one HTTP transport: requests sessions with a hard deadline per request.

Dataset acquisition (workflow.dataset.http_client) and the pretrained-file fetcher
(workflow.pretrained) both download through `Transport`. From requests and urllib3 it takes
keep-alive connection pools, proxies and CA bundles from the environment (HTTPS_PROXY,
HTTP_PROXY, ALL_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) and certificate checks. It adds what they lack: a
total deadline per request. Their timeout bounds each socket operation, so a server that sends
a byte a second holds a request open for as long as it likes; here a watchdog shuts the
connection's socket down when the deadline passes, whether the request is connecting, reading
the headers or reading the body.

Retrying is the callers' business (they add a minimum delay between requests, Retry-After caps
and challenge detection on top); `BackoffSchedule` is the urllib3 `Retry` they share for
counting attempts and spacing them. Nothing here follows redirects: callers decide per hop.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

CHUNK = 1 << 16

# The watchdog of the request running in this thread; the connection classes below report
# their socket to it. Thread-local because each request runs entirely in its caller's thread.
_ACTIVE = threading.local()


class TransportError(Exception):
    """A request that did not complete; `reason` is a short label, `retryable` says whether
    trying again can help (timeouts, dropped connections, truncated bodies)."""

    def __init__(self, reason: str, retryable: bool):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class BodyTooLarge(Exception):
    """The body went past the caller's byte cap (nothing more is read)."""


class BackoffSchedule(Retry):
    """urllib3's Retry as the shared retry counter, with the project's spacing: `backoff_factor`
    seconds before the first retry, doubling each time, capped at `backoff_max` (urllib3's own
    waits nothing before the first retry). The caller sleeps, adding its jitter and delays."""

    def get_backoff_time(self) -> float:
        n = len(self.history)
        return 0.0 if n == 0 else float(min(self.backoff_max, self.backoff_factor * 2 ** (n - 1)))


def backoff_schedule(retries: int, backoff: float, cap: float) -> BackoffSchedule:
    return BackoffSchedule(total=retries, backoff_factor=backoff, backoff_max=cap,
                           redirect=False, raise_on_status=False)


def count_failure(schedule: BackoffSchedule, url: str, reason: str) -> BackoffSchedule | None:
    """The schedule after one more failed attempt, or None when no retry is left."""
    try:
        return schedule.increment("GET", url, error=TransportError(reason, True))
    except urllib3.exceptions.MaxRetryError:
        return None


class _Watchdog:
    """Shuts down the socket of the request in flight once `seconds` have passed."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self._sock = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def start(self):
        self._timer.start()

    def cancel(self):
        self._timer.cancel()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def watch(self, sock):
        with self._lock:
            self._sock = sock
            fired = self.fired
        if fired:
            _shutdown(sock)

    def _fire(self):
        with self._lock:
            self.fired = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)  # wakes a blocked recv() in the request's thread with EOF


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _report(sock):
    dog = getattr(_ACTIVE, "dog", None)
    if dog is not None and sock is not None:
        dog.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    # New sockets are reported before any TLS handshake or proxy tunnel; reused keep-alive
    # connections are reported when their next response is awaited.
    def _new_conn(self):
        sock = super()._new_conn()
        _report(sock)
        return sock

    def getresponse(self, *args, **kwargs):
        _report(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    _new_conn = _WatchedHTTPConnection._new_conn
    getresponse = _WatchedHTTPConnection.getresponse


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy, **kwargs):
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools have classes of their own
            manager.pool_classes_by_scheme = _POOLS
        return manager


class Exchange:
    """One streamed response; its body is read through `chunks` or `read`, within the deadline."""

    def __init__(self, response: requests.Response, dog: _Watchdog):
        self.response = response
        self._dog = dog

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def headers(self) -> dict:
        return {k.lower(): v for k, v in self.response.headers.items()}

    @property
    def url(self) -> str:
        return self.response.url

    def chunks(self, size: int = CHUNK):
        """The body in chunks; TransportError on a timeout, a drop or a truncated body."""
        raw = self.response.raw
        if raw.chunked and raw.supports_chunked_reads():
            source = raw.read_chunked(size, decode_content=False)
        else:  # read1: whatever has arrived, so a slow body still makes progress per chunk
            source = iter(lambda: raw.read1(size, decode_content=False), b"")
        try:
            for chunk in source:
                if self._dog.fired or self._dog.remaining() < 0:
                    raise TransportError("timeout", True)
                yield chunk
        except TransportError:
            raise
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise _translate(exc, self._dog) from None
        # A watchdog shutdown looks like a normal end of a body without Content-Length.
        if self._dog.fired:
            raise TransportError("timeout", True)

    def read(self, cap: int) -> bytes:
        """The whole body; BodyTooLarge once it passes `cap` bytes."""
        parts, total = [], 0
        for chunk in self.chunks(min(CHUNK, cap + 1)):
            parts.append(chunk)
            total += len(chunk)
            if total > cap:
                raise BodyTooLarge(total)
        return b"".join(parts)


class Transport:
    """A keep-alive session (one connection per host) whose requests each end by a deadline."""

    def __init__(self, user_agent: str):
        self.session = requests.Session()
        # What trust_env would do per request, done once per host: requests' own proxy lookup
        # in the environment costs more than a loopback request, and trust_env would also send
        # ~/.netrc credentials, which image hosts have no business receiving.
        self.session.trust_env = False
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or \
            os.environ.get("CURL_CA_BUNDLE") or True
        self._proxies: dict[tuple, dict] = {}
        self.session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "identity"})
        adapter = _WatchedAdapter(pool_connections=8, pool_maxsize=1,
                                  max_retries=Retry(total=0, redirect=False, raise_on_status=False))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @contextmanager
    def open(self, url: str, *, timeout: float, deadline: float, headers: dict | None = None):
        """GET `url` (redirects are not followed), streamed: yields an Exchange. `timeout`
        bounds each connect and socket read, `deadline` the whole exchange, body included."""
        deadline = max(float(deadline), 0.001)
        per_op = max(min(float(timeout), deadline), 0.001)
        dog = _Watchdog(deadline)
        _ACTIVE.dog = dog
        dog.start()
        response = None
        try:
            try:
                response = self.session.get(url, headers=headers, stream=True,
                                            allow_redirects=False, timeout=(per_op, per_op),
                                            proxies=self.proxies_for(url))
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise _translate(exc, dog) from None
            yield Exchange(response, dog)
        finally:
            dog.cancel()
            _ACTIVE.dog = None
            if response is not None:
                response.close()  # back to the pool when the body was read, else closed

    def proxies_for(self, url: str) -> dict:
        """The environment's proxies for this URL's scheme and host (NO_PROXY applied)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self._proxies:
            self._proxies[key] = requests.utils.get_environ_proxies(url)
        return self._proxies[key]

    def close(self):
        self.session.close()


def _translate(exc: Exception, dog: _Watchdog) -> TransportError:
    if dog.fired or isinstance(exc, (requests.Timeout, socket.timeout, TimeoutError,
                                     urllib3.exceptions.TimeoutError)):
        return TransportError("timeout", True)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, urllib3.exceptions.LocationParseError)):
        return TransportError("unsupported_url", False)
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportError("tls_error", False)
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                        urllib3.exceptions.ProtocolError)) and "IncompleteRead" in repr(exc):
        return TransportError("truncated", True)
    cause = exc
    while cause.__context__ is not None and isinstance(cause, (requests.RequestException,
                                                               urllib3.exceptions.HTTPError)):
        cause = cause.__context__
    return TransportError(f"connection:{type(cause).__name__}", True)
