"""The one HTTP transport (basics.transport) under both of its users, the acquisition client
and the pretrained-file fetcher: a total deadline that a dripping server cannot stretch,
keep-alive connections, proxies from the environment and a progress bar on large downloads."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from workflow import pretrained as pt
from workflow.dataset.http_client import FetchError, PoliteClient
from workflow.dataset.loopback_artstation import FakeArtstation

DRIP_SECONDS = 30.0  # how long the dripping server keeps going before it gives up
BOUND = 8.0  # seconds a request may take at most here: far below the drip, and loose
             # enough for a loaded machine


class DripServer:
    """A raw-socket server that answers painfully slowly: one byte every `every` seconds, in
    the status line and headers (`headers`), or in a body with (`body`) or without
    (`body_unsized`) a Content-Length. Never silent for long enough to trip a socket timeout."""

    def __init__(self, mode: str, every: float = 0.05):
        self.mode, self.every = mode, every
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/weights.bin"

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            try:
                conn.recv(65536)
                if self.mode == "headers":
                    head, drip = b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 10_000
                elif self.mode == "body":  # the first 1000 bytes at once, then the drip
                    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"b" * 1000
                    drip = b"b" * 99_000
                else:
                    head, drip = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b"b" * 100_000
                conn.sendall(head)
                end = time.monotonic() + DRIP_SECONDS
                for byte in drip:
                    if self.stop.is_set() or time.monotonic() > end:
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.every)
            except OSError:
                return  # the client hung up: what we want

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture(params=["headers", "body", "body_unsized"])
def drip(request):
    server = DripServer(request.param)
    yield server
    server.close()


def test_acquisition_client_deadline_holds_against_a_drip(drip):
    client = PoliteClient(delay=0, timeout=0.5, deadline=1.0, max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(FetchError) as err:
        client.get(drip.url)
    assert err.value.reason == "timeout"
    assert time.monotonic() - t0 < BOUND


def test_weights_fetcher_deadline_holds_against_a_drip(drip, tmp_path):
    part = tmp_path / "weights.bin.part"
    t0 = time.monotonic()
    with pytest.raises(OSError, match="timeout"):
        pt.download(drip.url, part, timeout=0.5, deadline=2.0, retries=0, log=lambda m: None)
    assert time.monotonic() - t0 < BOUND
    if drip.mode == "body":  # what arrived is kept: the next attempt resumes after it
        assert 1000 <= part.stat().st_size < 100_000


def test_the_deadline_spans_retries_separately(tmp_path):
    """Each attempt has its own deadline: two attempts take about two deadlines, not more."""
    server = DripServer("headers")
    try:
        client = PoliteClient(delay=0, timeout=0.5, deadline=0.6, max_retries=1, backoff=0.01)
        t0 = time.monotonic()
        with pytest.raises(FetchError) as err:
            client.get(server.url)
        assert err.value.attempts == 2 and time.monotonic() - t0 < BOUND
    finally:
        server.close()


def test_keep_alive_reuses_one_connection():
    with FakeArtstation() as site:
        client = PoliteClient(delay=0, timeout=2)
        paths = [p for p in site.cat.images if "/large/" in p][:10]
        for path in paths:
            assert client.get(site.base_url + path).status == 200
        assert len(site.requests) == 10
        assert len({r.peer for r in site.requests}) == 1  # one TCP connection for all ten


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        ProxyHandler.seen.append(self.path)  # a proxy gets the absolute URL
        body = b"via the proxy " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def proxy(monkeypatch):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ProxyHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{httpd.server_address[1]}")
    ProxyHandler.seen.clear()
    yield ProxyHandler.seen
    httpd.shutdown()
    httpd.server_close()


def test_proxies_come_from_the_environment(proxy, tmp_path, monkeypatch):
    # example.invalid cannot resolve: only a proxy can answer these
    resp = PoliteClient(delay=0, timeout=2, max_retries=0).get("http://images.example.invalid/a.jpg")
    assert resp.body == b"via the proxy http://images.example.invalid/a.jpg"
    part = pt.download("http://weights.example.invalid/w.pth", tmp_path / "w.pth.part",
                       retries=0, log=lambda m: None)
    assert part.read_bytes() == b"via the proxy http://weights.example.invalid/w.pth"
    assert proxy == ["http://images.example.invalid/a.jpg", "http://weights.example.invalid/w.pth"]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # hosts listed there are reached directly
    with FakeArtstation() as site:
        path = next(p for p in site.cat.images if "/large/" in p)
        assert PoliteClient(delay=0, timeout=2).get(site.base_url + path).status == 200
        assert len(site.requests) == 1 and len(proxy) == 2


def test_large_downloads_show_a_progress_bar(tmp_path, capsys):
    with FakeArtstation() as site:
        path = next(p for p in site.cat.images if "/large/" in p)
        pt.download(site.base_url + path, tmp_path / "big.jpg.part", progress=True,
                    log=lambda m: None)
        err = capsys.readouterr().err
        assert "big.jpg" in err and "%|" in err and "B" in err, err  # tqdm's bar, in bytes
        pt.download(site.base_url + path, tmp_path / "quiet.jpg.part", progress=None,
                    log=lambda m: None)
        assert "quiet.jpg" not in capsys.readouterr().err  # small, and not a terminal
